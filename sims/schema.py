"""Configurations declared once, and everything derived from the declaration.

A configuration is a frozen dataclass whose annotations carry each field's type, its range
(``annotated_types``' ``Ge``, ``Gt``, ``Le``, ``Lt``), its valid values (``Literal``) and its help
text (:func:`about`). From that one declaration come:

- :func:`check`: a mapping read from a TOML or JSON file, or gathered from flags, checked by
  pydantic in strict mode (no "3" for 3, no 1.5 or true for an integer) into the dataclass; an
  unknown key, a wrong type or a value out of range is one line naming where, the key and the rule;
- :func:`add_flags` and :func:`given`: one command-line flag per field, with its help text, its
  choices and its default;
- :func:`reference`: a table of every key with its type, default, range and help.

Cross-field rules (a window whose ends are ordered, a data set large enough) stay in each
configuration's own ``validate`` or ``check``, which starts with :func:`check_fields`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from theory.arguments import rule

STRICT = ConfigDict(extra="forbid", strict=True)  # every configuration's __pydantic_config__

BOUNDS = {at.Ge: ">=", at.Gt: ">", at.Le: "<=", at.Lt: "<"}
UNIONS = (types.UnionType, typing.Union)  # X | None, and Literal[...] | None


def about(text: str) -> FieldInfo:
    """The help text of a field, as the last item of its ``Annotated`` annotation."""
    return Field(description=text)


@dataclasses.dataclass(frozen=True)
class Key:
    """What the declaration says of one field: its Python type with the annotations peeled
    off (``base``: int, float, str, bool or a dataclass), whether it is a list (``many``: None,
    ``...`` for any length, or a fixed length) and may be None, its choices, bounds and help."""

    name: str
    base: type
    many: Any  # None, ... (any length) or a fixed length
    optional: bool
    choices: tuple[Any, ...]
    bounds: tuple[tuple[str, Any], ...]
    help: str
    default: Any

    @property
    def rule(self) -> str:
        """The range or the valid values, e.g. ``> 0, <= 1`` or ``relu, tanh, gelu``."""
        if self.choices:
            return ", ".join(map(str, self.choices))
        return ", ".join(f"{sign} {value}" for sign, value in self.bounds)

    @property
    def type_text(self) -> str:
        name = self.base.__name__
        if self.many is Ellipsis:
            name = f"list of {name}"
        elif self.many is not None:
            name = f"list of {self.many} {name}"
        return f"{name} or none" if self.optional else name


def _peel(hint: Any) -> tuple[Any, list[Any]]:
    """``hint`` without ``Annotated``, and the metadata it carried."""
    if typing.get_origin(hint) is Annotated:
        inner, *extra = typing.get_args(hint)
        deeper, more = _peel(inner)
        return deeper, [*more, *extra]
    return hint, []


def keys(cls: type) -> list[Key]:
    """The declared fields of the configuration dataclass ``cls``, in order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    found = []
    for field in dataclasses.fields(cls):
        hint, meta = _peel(hints[field.name])
        optional = False
        if typing.get_origin(hint) in UNIONS and type(None) in typing.get_args(hint):
            (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = True
            hint, more = _peel(hint)
            meta += more
        many = None
        if typing.get_origin(hint) is tuple:
            items = typing.get_args(hint)
            many = Ellipsis if items[-1] is Ellipsis else len(items)
            hint, more = _peel(items[0])
            meta += more
        choices = ()
        if typing.get_origin(hint) is Literal:
            choices = typing.get_args(hint)
            hint = type(choices[0])
        bounds = tuple(
            (sign, getattr(m, kind.__name__.lower()))
            for m in meta
            for kind, sign in BOUNDS.items()
            if isinstance(m, kind)
        ) + tuple(("length >=", m.min_length) for m in meta if isinstance(m, at.MinLen))
        helps = [m.description for m in meta if isinstance(m, FieldInfo) and m.description]
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        found.append(Key(field.name, hint, many, optional, choices, bounds,
                         helps[-1] if helps else "", default))  # fmt: skip
    return found


def _where(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a key path, e.g. ``networks[0].neurons``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def read_mapping(path: Path) -> dict[str, Any]:
    """The table of keys in a .toml or .json file, or a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"configuration file not found: {path}")
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"configuration must be a .toml or .json file; got {path.name}")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:  # TOMLDecodeError, JSONDecodeError
        raise ValueError(f"{path} cannot be parsed: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a table of keys; got {type(data).__name__}")
    return data


def check(cls: type, data: Any, where: str, as_flags: bool = False) -> Any:
    """``data`` (a mapping from a file or from flags) as the configuration ``cls``, checked
    strictly against its declaration; else a ValueError of one line:
    ``WHERE: KEY RULE; got VALUE``, with the valid keys where a key is unknown (the key
    written as its flag when ``as_flags``)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a table of keys; got {type(data).__name__}")
    try:
        text = json.dumps(data, allow_nan=True)
    except TypeError as error:
        raise ValueError(f"{where}: a value is no number, string, list or table: {error}") from None
    try:
        return TypeAdapter(cls).validate_json(text, strict=True)
    except ValidationError as failed:
        errors = _causes(failed.errors())
        error = errors[0]
        if error["type"] == "missing" and isinstance(error["loc"][-1], int):  # a short pair
            error = {"type": "too_few", "loc": error["loc"][:-1], "input": error["input"],
                     "msg": "has too few values"}  # fmt: skip
        key = flag(_where(error["loc"])) if as_flags else _where(error["loc"])
        said = rule(error)
        if error["type"] == "unexpected_keyword_argument":
            owner = _owner(cls, error["loc"])
            said += f"; valid keys: {', '.join(k.name for k in keys(owner))}"
            more = ""
        else:
            more = f"; got {error['input']!r}" if error["type"] != "missing" else ""
        others = len(errors) - 1
        tail = f" (and {others} more)" if others else ""
        raise ValueError(f"{where}: {key} {said}{more}{tail}") from None


def _causes(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors that are not consequences of others (a list left too short because one of
    its items failed)."""
    return [
        e
        for e in errors
        if not (
            e["type"] == "too_short"
            and any(o is not e and o["loc"][: len(e["loc"])] == e["loc"] for o in errors)
        )
    ]


def _owner(cls: type, loc: tuple[Any, ...]) -> type:
    """The dataclass that holds the key at ``loc`` (a nested family's, for ``networks[0].x``)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        (key,) = [k for k in keys(cls) if k.name == part]
        if dataclasses.is_dataclass(key.base):
            cls = key.base
    return cls


def check_fields(config: Any, where: str = "configuration", as_flags: bool = False) -> None:
    """Check every field of a configuration built in Python against its declaration."""
    check(type(config), dataclasses.asdict(config), where, as_flags)


def flag(name: str, prefix: str = "") -> str:
    """The flag of a field: ``--PREFIX-NAME`` with dashes for underscores."""
    return "--" + (prefix + name).replace("_", "-")


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str = "",
    names: Collection[str] | None = None,
    defaults: bool = True,
    note: str = "",
) -> None:
    """One flag per scalar or list field of ``cls`` (of those in ``names``, when given; nested
    configurations are skipped), named ``--PREFIX-FIELD-NAME``, with the field's help, choices
    and (``defaults``) its default in the help; a boolean's flag turns its default over
    (``--compensate``; ``--no-trained`` where the default is true; a default of None, as a
    field added later has so that earlier runs keep their names, is off). A flag not given
    leaves its field unset: :func:`given` collects those given."""
    for key in keys(cls):
        if (names is not None and key.name not in names) or dataclasses.is_dataclass(key.base):
            continue
        default = key.default
        text = key.help + note
        if defaults and default is not dataclasses.MISSING and default is not None:
            shown = " ".join(map(str, default)) if key.many else default
            text += f" (default: {shown})"
        if default is dataclasses.MISSING:
            text += " (required)"
        options: dict[str, Any] = {"help": text, "default": None, "dest": prefix + key.name}
        name = flag(key.name, prefix)
        if key.base is bool:  # the flag turns the declared default over (None: off)
            on = default is not True
            name = name if on else "--no-" + name.removeprefix("--")
            options |= {"action": "store_const", "const": on}
        else:
            options["type"] = key.base
            if key.choices:
                options["choices"] = key.choices
                options["metavar"] = key.name.upper()
                options["help"] = f"{text}; one of: {', '.join(map(str, key.choices))}"
            if key.many is Ellipsis:
                options["nargs"] = "+"
            elif key.many is not None:
                options["nargs"] = key.many
        parser.add_argument(name, **options)


def given(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` that flags of :func:`add_flags` set, as a mapping for :func:`check`
    (lists as lists)."""
    found = {}
    for key in keys(cls):
        value = getattr(args, prefix + key.name, None)
        if value is not None:
            found[key.name] = list(value) if isinstance(value, list | tuple) else value
    return found


def reference(cls: type, title: str) -> str:
    """A Markdown table of every key of ``cls``: type, default, range or valid values, help."""
    rows = [f"### {title}", "", "| key | type | default | range or values | help |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for key in keys(cls):
        if dataclasses.is_dataclass(key.base):
            default = "see below"
        elif key.default is dataclasses.MISSING:
            default = "required"
        elif key.many and key.default is not None:
            default = f"`{json.dumps(list(key.default))}`"
        else:
            default = f"`{json.dumps(key.default)}`"
        text = key.help.replace("|", "\\|")
        rows.append(f"| `{key.name}` | {key.type_text} | {default} | {key.rule} | {text} |")
    return "\n".join(rows) + "\n"
