"""W3C Trace Context ``tracestate``: check an incoming value, bound what is sent on.

``tracestate`` is the vendors' part of a trace
(https://www.w3.org/TR/trace-context/#tracestate-header): an ordered list of
``key=value`` members that travels with ``traceparent``. Butterfly adds no member of its
own; it keeps a valid incoming value with the request's trace and sends it on wherever
the ``traceparent`` goes (MQ messages, ruqi ``http`` jobs, in-process calls).

A value is checked as Level 1 of the specification says: at most 32 members, each
``key=value`` with the specification's key and value grammar, keys unique; empty members
and the blanks around members are allowed and dropped. Anything else makes the whole
header invalid, and an invalid header is ignored, never an error. What is sent on is
bounded at 512 characters (the specification's "propagate at least"): whole members
are kept in order, and members past the limit are dropped from the end.
"""

from __future__ import annotations

import re

#: Most list members a valid value has.
MAX_MEMBERS = 32
#: Longest list sent on (the specification's recommended propagation limit).
MAX_PROPAGATED = 512
#: Longest header value looked at: 32 members of the longest key and value (256 each),
#: comma-separated. Anything longer is ignored unread.
MAX_HEADER_LENGTH = MAX_MEMBERS * (256 + 1 + 256) + MAX_MEMBERS - 1

# key   = simple-key / multi-tenant-key
# simple-key       = lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
# multi-tenant-key = tenant-id "@" system-id
# tenant-id        = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
# system-id        = lcalpha 0*13( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
# value = 0*255(chr) nblk-chr;  chr = %x20 / nblk-chr;  nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
_MEMBER = re.compile(
    r"([a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)


def parse(value: object) -> str | None:
    """What to keep and send on of a ``tracestate`` value, or ``None`` when there is nothing
    (no value, an invalid one, or only empty members).

    The kept value is the valid members in their order, comma-separated, without the
    blanks around them, cut at :data:`MAX_PROPAGATED` characters by dropping whole
    members from the end.

    :param value: the header value (several ``tracestate`` headers arrive comma-joined,
        which is how the specification combines them)
    """
    if not isinstance(value, str) or len(value) > MAX_HEADER_LENGTH:
        return None
    members: list[str] = []
    keys: set[str] = set()
    for part in value.split(","):
        member = part.strip(" \t")
        if not member:
            continue
        match = _MEMBER.fullmatch(member)
        if match is None:
            return None
        key = match[1]
        if key in keys or len(members) == MAX_MEMBERS:
            return None
        keys.add(key)
        members.append(member)
    size = -1  # no comma before the first member
    for kept, member in enumerate(members):
        size += 1 + len(member)
        if size > MAX_PROPAGATED:
            members = members[:kept]
            break
    return ",".join(members) or None
