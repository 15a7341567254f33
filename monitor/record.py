"""Frozen records: the value types of the model and the probes, cheap to define.

`check` is a short process, and `@dataclass(frozen=True)` cost it a third of its time:
importing `dataclasses` pulls in inspect, ast, dis and tokenize, and each class compiles six
methods from source (0.5 ms a class, 44 classes on the check's path). A record is declared
the same way, annotations with optional defaults, and `field(default_factory=...)` for a
default made fresh each time. It gets `__init__`, `__repr__`, `__eq__` and `__hash__` over
its fields, all generic (nothing is compiled), and refuses assignment.

`replace`, `fields` and `is_record` stand in for their `dataclasses` namesakes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")

_FIELDS = "__record_fields__"


class FrozenInstanceError(AttributeError):
    """An assignment to a record's field: records are immutable."""


class _Factory:
    """A default made by calling `make` for each new record."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]):
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A field whose default is `default_factory()`, made fresh for each record."""
    return _Factory(default_factory)


def record(cls: type[T]) -> type[T]:
    """Make `cls` a frozen record over its annotated fields (in their order)."""
    if any(hasattr(base, _FIELDS) for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: a record cannot inherit from another record")
    own = vars(cls)  # not inspect.get_annotations: importing inspect is what records avoid
    names = tuple(own.get("__annotations__", {}))
    defaults = {name: own[name] for name in names if name in own}
    for earlier, later in itertools.pairwise(names):
        if earlier in defaults and later not in defaults:
            raise TypeError(f"{cls.__name__}: field {later!r} without a default follows one with")
    for name, default in defaults.items():
        if isinstance(default, _Factory):
            delattr(cls, name)  # else the class attribute would show the factory
    setattr(cls, _FIELDS, names)
    values = attrgetter(*names) if names else (lambda _: ())
    title = cls.__name__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(
                f"{title}() takes {len(names)} positional arguments but {len(args)} were given"
            )
        given = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name in given:
                raise TypeError(f"{title}() got multiple values for argument {name!r}")
            if name not in names:
                raise TypeError(f"{title}() got an unexpected keyword argument {name!r}")
            given[name] = value
        state = self.__dict__
        for name in names:
            if name in given:
                state[name] = given[name]
            elif name in defaults:
                default = defaults[name]
                state[name] = default.make() if isinstance(default, _Factory) else default
            else:
                raise TypeError(f"{title}() missing required argument: {name!r}")

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values(self) == values(other)

    def __hash__(self: Any) -> int:
        return hash(values(self))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self: Any, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    for method in (__init__, __repr__, __eq__, __hash__, __setattr__, __delattr__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
    return cls


def is_record(value: Any) -> bool:
    """Whether `value` is a record class or a record."""
    return hasattr(value, _FIELDS)


def fields(value: Any) -> tuple[str, ...]:
    """The field names of a record or record class, in declaration order."""
    try:
        return getattr(value, _FIELDS)
    except AttributeError:
        raise TypeError(f"not a record: {type(value).__name__}") from None


def replace(value: T, **changes: Any) -> T:
    """A copy of the record `value` with some fields changed."""
    current = {name: getattr(value, name) for name in fields(value)}
    return type(value)(**{**current, **changes})
