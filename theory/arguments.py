"""A public function's arguments, checked against its signature when it is called.

The signature declares each argument once: its type and range (``annotated_types``' ``Ge``,
``Gt``, ``Le``, ``Lt``; pydantic's ``AllowInfNan(False)`` for a finite number), its valid values
(``Literal``). :func:`checked` has pydantic check them in strict mode (no "3" for 3, no 1.5 or
True for an integer, no NaN where a finite number is declared) before the function runs, and
turns a failure into one line naming the function, the argument, the rule and what was given:
a :class:`WrongType` (a TypeError and a ValueError) for a value of the wrong type, a
ValueError for one out of range. Arrays are
checked by the functions that take them (shape, finiteness, what they must satisfy).
The configurations of :mod:`sims.schema` word their rules with :func:`rule` too.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError, validate_call

# An array argument: any array-like, checked by the function that takes it (shape, values).
Array = Annotated[Any, "array-like"]
STRICT_CALL = ConfigDict(strict=True, arbitrary_types_allowed=True)
# pydantic's error types that say the value is of the wrong type (the others: out of range)
WRONG_TYPE = {"int_type", "float_type", "string_type", "bool_type", "callable_type",
              "is_instance_of", "dataclass_exact_type", "dataclass_type", "tuple_type",
              "list_type", "dict_type", "model_type", "none_required"}  # fmt: skip


# What each pydantic error type says the value must be: fixed words, or words with its context.
RULES = {
    "unexpected_keyword_argument": "is not a key here", "missing": "is required",
    "finite_number": "must be a finite number", "callable_type": "must be callable",
    "int_type": "must be an integer", "float_type": "must be a number",
    "string_type": "must be a string", "bool_type": "must be true or false",
    "tuple_type": "must be a list", "list_type": "must be a list",
    "dataclass_type": "must be a table of keys", "dict_type": "must be a table of keys",
    "model_type": "must be a table of keys", "string_pattern_mismatch": "must match {pattern}",
    "too_short": "must list at least {min_length}", "too_long": "must list at most {max_length}",
    "is_instance_of": "must be a numpy {class}", "dataclass_exact_type": "must be a {class_name}",
}  # fmt: skip
SIGNS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
         "less_than": "<"}  # fmt: skip


def rule(error: dict[str, Any]) -> str:
    """What a pydantic error says the value must be, in words."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in SIGNS:
        (value,) = ctx.values()
        return f"must be {SIGNS[kind]} {value}"
    if kind == "literal_error":
        return "must be one of: " + ctx["expected"].replace("'", "").replace(" or ", ", ")
    if kind in RULES:
        return RULES[kind].format(**ctx)
    return error["msg"][0].lower() + error["msg"][1:]


def shown(value: Any) -> str:
    """``value`` as an error message gives it: an array by its type and shape, anything else
    by its repr, cut to 80 characters."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} ({value.dtype})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class WrongType(TypeError, ValueError):
    """An argument of the wrong type: a TypeError, and a ValueError as every other bad
    argument is (callers that catch ValueError, the command lines', catch it too)."""


def _failure(owner: str, errors: list[dict], names: list[str]) -> ValueError:
    """One line for the first of pydantic's ``errors``: ``OWNER: ARGUMENT RULE; got VALUE``
    (where an argument may be one of several types, their rules joined by "or")."""
    first = errors[0]["loc"][0] if errors[0]["loc"] else ""
    same = [e for e in errors if e["loc"] and e["loc"][0] == first]
    name = names[first] if isinstance(first, int) and first < len(names) else str(first)
    wrong = all(e["type"] in WRONG_TYPE for e in same)
    if not wrong:  # of a type allowed, out of its range: that range's rule alone
        same = [e for e in same if e["type"] not in WRONG_TYPE]
    rules = list(dict.fromkeys(rule(e) for e in same))
    said = rules[0] + "".join(" or " + r.removeprefix("must be ") for r in rules[1:])
    text = f"{owner}: {name} {said}; got {shown(same[0]['input'])}"
    return WrongType(text) if wrong else ValueError(text)


def checked(function: Callable) -> Callable:
    """``function`` with its arguments checked against its annotations at every call (see the
    module docstring); what it returns is not checked."""
    validated = validate_call(config=STRICT_CALL)(function)
    names = list(inspect.signature(function).parameters)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return validated(*args, **kwargs)
        except ValidationError as failed:
            if failed.title != function.__name__:  # raised inside, not by the arguments
                raise
            raise _failure(function.__name__, failed.errors(), names) from None

    return call


def check_keywords(owner: str, function: Callable, given: dict[str, Any]) -> None:
    """Each of ``given`` (keyword arguments for ``function``) against ``function``'s
    annotation of it, strictly; one line naming ``owner`` and the keyword where one fails."""
    hints = typing.get_type_hints(function)
    for name, value in given.items():
        if name not in hints:
            continue
        try:
            TypeAdapter(hints[name], config=STRICT_CALL).validate_python(value, strict=True)
        except ValidationError as failed:
            errors = [e | {"loc": (name, *e["loc"])} for e in failed.errors()]
            raise _failure(owner, errors, [name]) from None
