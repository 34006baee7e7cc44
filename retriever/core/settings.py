"""One typed settings schema for every configurable component (index kinds, fusion, rerankers, trainers).

A component declares its settings once, as a :class:`Schema` of :class:`Setting`
entries (name, type, default, check, help). :meth:`Schema.parse` turns what a user
wrote (spec strings such as ``bm25(k1=0.9)``, ``--set KEY=VALUE`` pairs, or typed
values read back from a manifest) into typed values with defaults filled in, before
any work starts. Every error is a :class:`SettingError` that names the component and
the setting::

    bm25: setting 'k1' must be a number, got 'abc'
    rrf: setting 'k' must be at least 1, got -1
    dense: unknown setting 'colour'; known: model, factory, max_seq_length, ...

Floats must be finite (``nan`` and ``inf`` are refused); integers are whole numbers
written without a decimal point; booleans are ``true/false``, ``yes/no`` or ``1/0``.

Settings dataclasses (trainer settings) declare the same checks in field metadata
with :func:`option` and get their schema from :func:`schema_of`.

Example:
    >>> schema = Schema("rrf", (Setting("k", int, 60, at_least(1), "rank offset"),))
    >>> schema.parse({"k": "20"})
    {'k': 20}
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from retriever.core.errors import SettingError


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED = _Marker("REQUIRED")
"""Default of a setting that must be given."""
OMIT = _Marker("OMIT")
"""Default of a setting that stays absent from the parsed settings unless given."""

Check = Callable[[Any], "str | None"]
"""A value check: None when the value is fine, else what is wrong (``"must be at least 1"``)."""
Rule = Callable[[Mapping[str, Any]], "tuple[str, str] | None"]
"""A check across settings: None, or (the setting to blame, what is wrong)."""

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def at_least(low: float) -> Check:
    """Values ``>= low``."""
    return lambda value: None if value >= low else f"must be at least {low}"


def above(low: float) -> Check:
    """Values ``> low``."""
    return lambda value: None if value > low else f"must be greater than {low}"


def within(low: float, high: float, high_open: bool = False) -> Check:
    """Values in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    inside = (lambda v: low <= v < high) if high_open else (lambda v: low <= v <= high)
    return lambda value: None if inside(value) else f"must be within [{low}, {high}{')' if high_open else ']'}"


def one_of(*choices: Any) -> Check:
    """One of ``choices``."""
    return lambda value: None if value in choices else f"must be one of {', '.join(map(str, choices))}"


@dataclass(frozen=True)
class Setting:
    """One named, typed setting.

    Attributes:
        name: the key users write (``k1``).
        type: ``int``, ``float``, ``bool`` or ``str``.
        default: the value when not given; :data:`REQUIRED` or :data:`OMIT` for none.
        check: a value check (see :func:`at_least`, :func:`one_of`), applied to given values.
        help: one line for documentation and error messages.
        nullable: ``None`` (written ``none`` or left empty) is a valid value.
    """

    name: str
    type: type
    default: Any = REQUIRED
    check: Check | None = None
    help: str = ""
    nullable: bool = False

    def convert(self, value: Any, component: str) -> Any:
        """``value`` (a string or an already typed value) as this setting's type, checked.

        Raises:
            SettingError: the value has the wrong type or fails the check.
        """
        if self.nullable and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))):
            return None
        typed = _typed(self.type, value)
        if typed is _BAD:
            raise SettingError(component, self.name, f"must be {_TYPE_NAMES[self.type]}, got {value!r}")
        if self.type is float and not math.isfinite(typed):
            raise SettingError(component, self.name, f"must be a finite number, got {value!r}")
        problem = self.check(typed) if self.check else None
        if problem:
            raise SettingError(component, self.name, f"{problem}, got {value!r}")
        return typed


@dataclass(frozen=True)
class Schema:
    """The settings of one component, checked together.

    Attributes:
        component: the name errors start with (``bm25``, ``rrf``, ``train sparse``).
        settings: the settings, in the order they are filled in.
        rules: checks across settings (e.g. ``heads`` must divide ``d_model``).
    """

    component: str
    settings: tuple[Setting, ...]
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"schema {self.component!r} declares a setting twice")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings)

    def __getitem__(self, name: str) -> Setting:
        for setting in self.settings:
            if setting.name == name:
                return setting
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        """Every setting that has a default, with it."""
        return {s.name: s.default for s in self.settings if s.default is not REQUIRED and s.default is not OMIT}

    def parse(self, given: Mapping[str, Any], fill: bool = True) -> dict[str, Any]:
        """Typed, checked settings from ``given``, in schema order.

        Args:
            given: name -> value (strings from a spec or ``--set``, or typed values).
            fill: add the defaults of settings not given (required ones must then be given).

        Raises:
            SettingError: an unknown name, a missing required setting, a value of the
                wrong type or out of range, or a broken rule.
        """
        unknown = [name for name in given if name not in self.names]
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            raise SettingError(self.component, unknown[0],
                               f"unknown setting{plural} {', '.join(map(repr, unknown))}; "
                               f"known: {', '.join(self.names)}", prefix=False)
        out: dict[str, Any] = {}
        for setting in self.settings:
            if setting.name in given:
                out[setting.name] = setting.convert(given[setting.name], self.component)
            elif fill and setting.default is REQUIRED:
                raise SettingError(self.component, setting.name, "is required" +
                                   (f" ({setting.help})" if setting.help else ""))
            elif fill and setting.default is not OMIT:
                out[setting.name] = setting.default
        if fill:
            for rule in self.rules:
                broken = rule(out)
                if broken:
                    raise SettingError(self.component, broken[0], broken[1])
        return out

    def describe(self) -> str:
        """One line per setting: ``name (type, default): help``."""
        lines = []
        for s in self.settings:
            default = "required" if s.default is REQUIRED else "unset" if s.default is OMIT else f"default {s.default!r}"
            lines.append(f"{s.name} ({s.type.__name__}, {default}){': ' + s.help if s.help else ''}")
        return "\n".join(lines)


def option(default: Any, check: Check | None = None, help: str = "") -> Any:
    """A dataclass field carrying a setting's check and help (read by :func:`schema_of`)."""
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def schema_of(cls: type, component: str, rules: Sequence[Rule] = ()) -> Schema:
    """The schema of a settings dataclass: field names, types (``int | None`` is nullable),
    defaults, and the checks declared with :func:`option`."""
    hints = typing.get_type_hints(cls)
    settings = []
    for f in dataclasses.fields(cls):
        kinds = [t for t in typing.get_args(hints[f.name]) if t is not type(None)] or [hints[f.name]]
        nullable = type(None) in typing.get_args(hints[f.name])
        settings.append(Setting(f.name, kinds[0], f.default, f.metadata.get("check"), f.metadata.get("help", ""),
                                nullable))
    return Schema(component, tuple(settings), tuple(rules))


def validate(instance: Any, schema: Schema) -> None:
    """Check a settings dataclass instance against its schema (call from ``__post_init__``)."""
    schema.parse({f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)})


def from_strings(cls: type, schema: Schema, options: Mapping[str, Any]) -> Any:
    """An instance of the settings dataclass ``cls`` from ``KEY=VALUE`` strings (or typed values)."""
    return cls(**schema.parse(options, fill=False))


_BAD = _Marker("BAD")


def _typed(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else _BAD
    if kind is str:
        return value if isinstance(value, str) else _BAD if isinstance(value, (dict, list)) else str(value)
    if isinstance(value, bool):
        return _BAD
    if kind is int:
        if isinstance(value, int):
            return value
        try:
            return int(value.strip()) if isinstance(value, str) else _BAD
        except ValueError:
            return _BAD
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value.strip()) if isinstance(value, str) else _BAD
    except ValueError:
        return _BAD
