"""Which names look secret: one word list for every plugin that hides values.

The trace plugin masks such parameters in the access log, ruqi masks them in job
payloads, wuxing masks the values of such items. A name looks secret when, with
case, ``-``, ``_``, ``|``, ``.`` and spaces ignored, it contains one of
:data:`SECRET_WORDS` (``password``, ``newPassword``, ``X-Api-Key``,
``s|db_password``, ``access_token``), or when its last word is ``key`` or ``keys``
(``s|ssh_key``, ``privateKey``, ``key``) — but not ``monkey`` or ``key_count``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: Words whose presence anywhere in a normalised name marks it secret.
SECRET_WORDS = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "cookie",
    "session",
    "signature",
    "jwt",
)
#: What a masked value is replaced by in replies (logs may use their own marker).
MASK = "********"
_SEPARATORS = str.maketrans("", "", "-_|. ")
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_CACHE_LIMIT = 4096
_verdicts: dict[str, bool] = {}


def normalise_name(name: str) -> str:
    """``X-Api_Key`` → ``xapikey``: the form :data:`SECRET_WORDS` are matched against."""
    return name.lower().translate(_SEPARATORS)


def _last_word(name: str) -> str:
    words = _WORDS.findall(name)
    return words[-1].lower() if words else ""


def is_secret_name(name: Any, extra_words: Iterable[str] = ()) -> bool:
    """True when a value named ``name`` must not be shown to everyone or logged.

    :param name: a parameter, header, payload key or item name (non-strings are never secret)
    :param extra_words: more words, matched like :data:`SECRET_WORDS` (e.g. ``[trace] redact_keys``)
    :return: the verdict
    """
    if not isinstance(name, str):
        return False
    extra = tuple(extra_words)
    if not extra:
        # PERF: names repeat endlessly (parameters, item names); remember each verdict.
        verdict = _verdicts.get(name)
        if verdict is not None:
            return verdict
    normalised = normalise_name(name)
    words = SECRET_WORDS + tuple(normalise_name(word) for word in extra if word.strip())
    verdict = any(word in normalised for word in words) or _last_word(name) in ("key", "keys")
    if not extra and len(_verdicts) < _CACHE_LIMIT:
        _verdicts[name] = verdict
    return verdict


def mask_secrets(value: Any, mask: str = MASK) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced, at any depth.

    Empty values (``None``, ``""``) stay as they are, so a reader can still see that
    nothing is set.

    :param value: a JSON-like value (dicts, lists, scalars)
    :param mask: the replacement
    :return: the masked copy (``value`` itself is not changed)
    """
    if isinstance(value, dict):
        return {
            key: mask if is_secret_name(key) and item not in (None, "") else mask_secrets(item, mask)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(item, mask) for item in value]
    return value
