"""Typed job args: a dataclass, a pydantic model or a TypedDict instead of a bare dict.

``@client.handler("kind", args=MyArgs)`` makes the insert side check what it is given
against ``MyArgs`` (a wrong shape is a ``ValidationError`` before any SQL runs) and the
worker side hand the handler ``ctx.args`` as a ``MyArgs``. The stored form stays plain
JSON, so a producer without the type (another service, the CLI, ``psql``) can still insert,
and an operator reads the args as they are.

Why three kinds and no other: they are the shapes Python users already write for records,
each has a reader the standard library or the model itself provides (``dataclasses``,
``typing.is_typeddict``, ``model_validate``), and each has a static type mypy checks in the
handler. Pydantic is never imported here: a model is recognised by its methods, so a
producer that does not use pydantic does not pay for it.

Decoding a dataclass is deliberately shallow: fields that are themselves dataclasses (also
inside ``list``/``tuple``/``dict`` values or ``X | None``) are rebuilt, plain ``str``/``int``/
``float``/``bool`` fields are type-checked, anything else is passed through as stored.
Richer coercion (datetimes, enums, constraints) is what pydantic models are for.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from awa.errors import ConfigError, ValidationError

__all__ = ["ArgsCodec"]

A = TypeVar("A")

_SCALARS: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (int, float),
    bool: (bool,),
}


class ArgsCodec(Generic[A]):
    """Checks a producer's args against one registered type and rebuilds them for a handler."""

    __slots__ = ("_decode", "shape", "type")

    def __init__(self, args_type: type[A]) -> None:
        self.type = args_type
        decode: Callable[[Any], Any]
        if _is_pydantic_model(args_type):
            self.shape = "pydantic model"
            decode = _pydantic_reader(args_type)
        elif isinstance(args_type, type) and dataclasses.is_dataclass(args_type):
            self.shape = "dataclass"
            decode = _dataclass_reader(args_type)
        elif typing.is_typeddict(args_type):
            self.shape = "TypedDict"
            decode = _typeddict_reader(args_type)
        else:
            raise ConfigError(
                f"args={args_type!r}: expected a dataclass, a pydantic model or a TypedDict"
            )
        self._decode = decode

    @property
    def name(self) -> str:
        return getattr(self.type, "__qualname__", repr(self.type))

    def decode(self, data: Any) -> A:
        """The stored JSON value as the registered type; ``ValidationError`` naming the
        type and the first problem when it does not fit."""
        try:
            value: A = self._decode(data)
        except _Mismatch as exc:
            raise ValidationError("args", data, f"do not fit {self.name}: {exc}") from None
        except (TypeError, ValueError) as exc:  # a model's or __post_init__'s own checks
            raise ValidationError("args", data, f"do not fit {self.name}: {exc}") from None
        return value

    def check_insert(self, value: Any) -> None:
        """Refuse args that would not decode on the worker: an instance of another type, or
        a mapping that does not fit. An instance of the type itself is trusted."""
        if value is None:
            value = {}
        if self.shape != "TypedDict" and isinstance(value, self.type):
            return
        if isinstance(value, Mapping):
            self.decode(dict(value))
            return
        raise ValidationError(
            "args", value, f"expected {self.name} (a {self.shape}) or a mapping that fits it"
        )


class _Mismatch(Exception):
    """A dataclass or TypedDict reader's complaint, prefixed with the type's name."""


def _is_pydantic_model(args_type: object) -> bool:
    return isinstance(args_type, type) and all(
        callable(getattr(args_type, name, None)) for name in ("model_validate", "model_dump")
    )


def _pydantic_reader(model: type[Any]) -> Callable[[Any], Any]:
    validate: Callable[[Any], Any] = model.model_validate
    return validate


def _type_hints(owner: type[Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(owner, include_extras=True)
    except Exception as exc:  # NameError for an unresolvable forward reference, and more
        raise ConfigError(f"args={owner!r}: cannot resolve its annotations: {exc}") from None


def _dataclass_reader(owner: type[Any]) -> Callable[[Any], Any]:
    """A reader for ``owner``, with the readers of its fields built once, at registration."""
    hints = _type_hints(owner)
    fields = [f for f in dataclasses.fields(owner) if f.init]
    readers = {f.name: _value_reader(hints.get(f.name, Any), f.name) for f in fields}
    required = {
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }

    def read(data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise _Mismatch(f"expected a JSON object, got {type(data).__name__}")
        _check_keys(data, set(readers), required)
        return owner(**{name: readers[name](value) for name, value in data.items()})

    return read


def _typeddict_reader(owner: type[Any]) -> Callable[[Any], Any]:
    hints = _type_hints(owner)
    readers = {name: _value_reader(hint, name) for name, hint in hints.items()}
    # ``__required_keys__`` is wrong for ``NotRequired[...]`` written as a string (postponed
    # annotations) before Python 3.14: the resolved hints say it exactly.
    required = set()
    for name, hint in hints.items():
        marker = typing.get_origin(hint)
        if marker is typing.Required or (
            marker is not typing.NotRequired and name in owner.__required_keys__
        ):
            required.add(name)

    def read(data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise _Mismatch(f"expected a JSON object, got {type(data).__name__}")
        _check_keys(data, set(readers), required)
        return {name: readers[name](value) for name, value in data.items()}

    return read


def _check_keys(data: Mapping[Any, Any], known: set[str], required: set[str]) -> None:
    missing = sorted(required - data.keys())
    if missing:
        raise _Mismatch(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(str(k) for k in data.keys() - known)
    if unknown:
        raise _Mismatch(f"unknown field(s) {', '.join(unknown)}")


def _value_reader(hint: Any, where: str) -> Callable[[Any], Any]:
    """How to read one value annotated ``hint``: rebuild nested records, check scalars,
    pass the rest through."""
    hint = _strip_annotated(hint)
    if hint in _SCALARS:
        accepted = _SCALARS[hint]
        label = hint.__name__

        def scalar(value: Any) -> Any:
            if not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool)):
                raise _Mismatch(f"{where}: expected {label}, got {type(value).__name__}")
            return value

        return scalar
    if isinstance(hint, type) and (
        dataclasses.is_dataclass(hint) or typing.is_typeddict(hint) or _is_pydantic_model(hint)
    ):
        nested: ArgsCodec[Any] = ArgsCodec(hint)

        def record(value: Any) -> Any:
            try:
                return nested.decode(value)
            except ValidationError as exc:
                raise _Mismatch(f"{where}: {exc.reason}") from None

        return record
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [p for p in params if p is not type(None)]
        if len(options) == 1:
            inner = _value_reader(options[0], where)
            return lambda value: None if value is None else inner(value)
    elif origin is list and len(params) == 1:
        item = _value_reader(params[0], f"{where}[]")
        return lambda value: _each(value, item, where)
    elif origin is tuple and len(params) == 2 and params[1] is Ellipsis:
        item = _value_reader(params[0], f"{where}[]")
        return lambda value: tuple(_each(value, item, where))
    elif origin is dict and len(params) == 2:
        item = _value_reader(params[1], f"{where}{{}}")
        return lambda value: _values(value, item, where)
    return lambda value: value


def _strip_annotated(hint: Any) -> Any:
    """The type under ``Annotated[...]``, ``Required[...]`` and ``NotRequired[...]``."""
    while typing.get_origin(hint) in (typing.Annotated, typing.Required, typing.NotRequired):
        hint = typing.get_args(hint)[0]
    return hint


def _each(value: Any, item: Callable[[Any], Any], where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Mismatch(f"{where}: expected a JSON array, got {type(value).__name__}")
    return [item(v) for v in value]


def _values(value: Any, item: Callable[[Any], Any], where: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise _Mismatch(f"{where}: expected a JSON object, got {type(value).__name__}")
    return {k: item(v) for k, v in value.items()}
