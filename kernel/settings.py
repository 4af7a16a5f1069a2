"""Declared, typed settings.

Every setting is declared by the plugin that owns it (``butterfly_add_settings``)
with a type and a default. Values come, lowest to highest precedence, from the
default, ``butterfly.toml``, ``BUTTERFLY_<SECTION>_<KEY>`` environment variables and
CLI flags. An unknown key or a bad value is a :class:`~kernel.errors.ConfigError`
that names the key and where the value came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.errors import ConfigError

ENV_PREFIX = "BUTTERFLY_"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def as_bool(value: Any) -> bool:
    """Convert ``true/false/1/0/yes/no/on/off`` (any case) or a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def as_list(value: Any) -> list[str]:
    """Convert a TOML list or a comma-separated string to a list of strings."""
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    raise ValueError(f"expected a list or a comma-separated string, got {value!r}")


def as_int(value: Any) -> int:
    """Convert to ``int``; floats with a fraction and booleans are refused."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def as_float(value: Any) -> float:
    """Convert to ``float`` (booleans are refused)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def as_str(value: Any) -> str:
    """Convert scalars to ``str``; lists and tables are refused."""
    if isinstance(value, list | dict):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    bool: as_bool,
    int: as_int,
    float: as_float,
    str: as_str,
    list: as_list,
}


@dataclass
class Setting:
    """One declared setting."""

    section: str
    key: str
    type: Any
    default: Any
    help: str = ""
    secret: bool = False
    choices: tuple[Any, ...] | None = None
    owner: str = ""

    @property
    def env_name(self) -> str:
        """The environment variable that overrides it: ``BUTTERFLY_<SECTION>_<KEY>``."""
        return f"{ENV_PREFIX}{self.section}_{self.key}".upper()

    def convert(self, value: Any, origin: str) -> Any:
        """Convert a raw value, raising :class:`ConfigError` that names the key."""
        if value is None:
            return None
        converter = CONVERTERS.get(self.type, self.type)
        try:
            converted = converter(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad value for [{self.section}] {self.key} (from {origin}): {exc}") from None
        if self.choices is not None and converted not in self.choices:
            choices = ", ".join(map(str, self.choices))
            raise ConfigError(
                f"bad value for [{self.section}] {self.key} (from {origin}): {converted!r} is not one of {choices}"
            )
        return converted


class Section(Mapping[str, Any]):
    """Read-only view of one section's resolved values, by key or attribute."""

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        self._name = name
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"no setting [{self._name}] {key}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Settings:
    """The registry of declared settings and their resolved values.

    :param file_data: the parsed ``butterfly.toml`` (``{section: {key: value}}``)
    :param environ: the environment to read ``BUTTERFLY_*`` variables from
    :param overrides: ``{"section.key": value}`` from CLI flags or tests
    :param config_path: where ``file_data`` came from, for error messages
    """

    def __init__(
        self,
        file_data: dict[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        config_path: str | None = None,
    ) -> None:
        self.file_data = file_data or {}
        self.environ = dict(os.environ if environ is None else environ)
        self.overrides = dict(overrides or {})
        self.config_path = config_path or "butterfly.toml"
        self.declared: dict[tuple[str, str], Setting] = {}
        self.values: dict[tuple[str, str], Any] = {}
        self.origins: dict[tuple[str, str], str] = {}
        self.ignored_sections: set[str] = set()
        self._sections: dict[str, Section] = {}

    def add(
        self,
        section: str,
        key: str,
        type: Any,
        default: Any,
        help: str = "",
        *,
        secret: bool = False,
        choices: tuple[Any, ...] | None = None,
        owner: str = "",
    ) -> None:
        """Declare setting ``[section] key`` with a converter ``type`` and a default.

        :param type: ``str``, ``int``, ``float``, ``bool``, ``list`` or any callable
            converting a raw value (raise ``ValueError`` on bad input)
        :param secret: masked in ``butterfly config`` output and logs
        :raises ConfigError: when the same key is declared twice
        """
        name = (section, key)
        if name in self.declared:
            other = self.declared[name].owner or "another plugin"
            raise ConfigError(f"setting [{section}] {key} declared twice ({other} and {owner or 'unknown'})")
        self.declared[name] = Setting(section, key, type, default, help, secret, choices, owner)
        self._sections.pop(section, None)

    def raw(self, section: str, key: str, default: Any = None) -> Any:
        """A value before declaration (used for the few settings read pre-plugins)."""
        override = self.overrides.get(f"{section}.{key}")
        if override is not None:
            return override
        env = self.environ.get(f"{ENV_PREFIX}{section}_{key}".upper())
        if env is not None:
            return env
        return self.file_data.get(section, {}).get(key, default)

    def resolve(self) -> None:
        """Compute every value; reject unknown sections/keys and bad values."""
        sections = {section for section, _ in self.declared}
        for section, table in self.file_data.items():
            if section in self.ignored_sections:
                continue
            if section not in sections:
                valid = ", ".join(sorted(sections))
                raise ConfigError(f"unknown section [{section}] in {self.config_path}; valid sections: {valid}")
            if not isinstance(table, dict):
                raise ConfigError(f"[{section}] in {self.config_path} must be a table")
            for key in table:
                if (section, key) not in self.declared:
                    valid = ", ".join(sorted(k for s, k in self.declared if s == section))
                    raise ConfigError(f"unknown setting [{section}] {key} in {self.config_path}; valid keys: {valid}")
        for dotted in self.overrides:
            section, _, key = dotted.partition(".")
            if (section, key) not in self.declared and section not in self.ignored_sections:
                raise ConfigError(f"unknown setting [{section}] {key} (from the command line)")
        for env_name in self.environ:
            section, _, key = (
                env_name[len(ENV_PREFIX) :].lower().partition("_") if env_name.startswith(ENV_PREFIX) else ("", "", "")
            )
            if section in sections and (section, key) not in self.declared:
                raise ConfigError(f"unknown setting [{section}] {key} (from environment variable {env_name})")
        for name, setting in self.declared.items():
            self.values[name], self.origins[name] = self._value_of(setting)
        self._sections.clear()

    def _value_of(self, setting: Setting) -> tuple[Any, str]:
        dotted = f"{setting.section}.{setting.key}"
        if self.overrides.get(dotted) is not None:
            return setting.convert(self.overrides[dotted], "the command line"), "cli"
        if setting.env_name in self.environ:
            return setting.convert(self.environ[setting.env_name], f"environment variable {setting.env_name}"), "env"
        table = self.file_data.get(setting.section, {})
        if setting.key in table:
            return setting.convert(table[setting.key], self.config_path), "file"
        return setting.convert(setting.default, "the default") if setting.default is not None else None, "default"

    def get(self, section: str, key: str) -> Any:
        """The resolved value of ``[section] key``."""
        try:
            return self.values[(section, key)]
        except KeyError:
            if (section, key) in self.declared:
                setting = self.declared[(section, key)]
                self.values[(section, key)], self.origins[(section, key)] = self._value_of(setting)
                return self.values[(section, key)]
            raise ConfigError(f"no setting [{section}] {key} is declared") from None

    def section(self, name: str) -> Section:
        """All resolved values of section ``name`` as a read-only :class:`Section`."""
        cached = self._sections.get(name)
        if cached is None:
            keys = [key for section, key in self.declared if section == name]
            cached = self._sections[name] = Section(name, {key: self.get(name, key) for key in keys})
        return cached

    def describe(self) -> list[dict[str, Any]]:
        """Every setting with its value (secrets masked), origin and help, sorted."""
        rows = []
        for (section, key), setting in sorted(self.declared.items()):
            value = self.get(section, key)
            if setting.secret and value:
                value = "********"
            rows.append(
                {
                    "section": section,
                    "key": key,
                    "value": value,
                    "origin": self.origins.get((section, key), "default"),
                    "env": setting.env_name,
                    "help": setting.help,
                    "owner": setting.owner,
                }
            )
        return rows


def read_config_file(path: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    """Read ``butterfly.toml`` (or ``path``); a missing default file gives ``{}``.

    :raises ConfigError: when an explicit ``path`` is missing or the TOML is invalid
    """
    explicit = path is not None
    candidate = Path(path) if path is not None else Path("butterfly.toml")
    if not candidate.exists():
        if explicit:
            raise ConfigError(f"config file not found: {candidate}")
        return {}, str(candidate)
    try:
        with candidate.open("rb") as handle:
            return tomllib.load(handle), str(candidate)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {candidate}: {exc}") from None
