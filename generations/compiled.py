"""Querysets compiled to SQL once per shape rather than on every request.

Django builds and compiles a queryset each time it runs, and for a gallery page that was a third
of the request's CPU. Between two requests only a few values in the SQL change (the member, the
speaker, the snippets, the moment hot is ranked at), so each shape is compiled once with
stand-ins for those and every request swaps its own in. A queryset whose SQL depends on anything
else (a seed, a second timestamp) is refused loudly the first time it runs, never frozen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import RawQuerySet

# Values no row or clock has. Compiling with each set and comparing shows where each one went.
_FIRST, _SECOND = -7_000_000, -8_000_000
MAX_SHAPES = 512  # pages deep in a sort are shapes too (OFFSET is part of the SQL)

Value = int | datetime  # a primary key, or a moment


class ShapeError(ValueError):
    """The queryset's SQL depends on more than the values handed in, so it cannot be reused."""


@dataclass(frozen=True)
class StandIn:
    """In place of a member, a speaker or a snippet while a shape compiles: it has a pk."""

    pk: int


@dataclass(frozen=True)
class StandInMoment:
    """In place of a datetime while a shape compiles: SQL may only see its timestamp()."""

    seconds: float

    def timestamp(self) -> float:
        return self.seconds


@dataclass(frozen=True)
class _Slot:
    index: int  # which of the request's values goes here


@dataclass(frozen=True)
class _Compiled:
    model: type[Model]
    db: str
    sql: str
    params: tuple

    def params_for(self, values: Sequence[Value]) -> list:
        plain = [v.timestamp() if isinstance(v, datetime) else v for v in values]
        return [plain[p.index] if isinstance(p, _Slot) else p for p in self.params]


_compiled: dict[tuple, _Compiled] = {}
_lock = threading.Lock()


def run(shape: Hashable, build: Callable[..., QuerySet], values: Sequence[Value]) -> RawQuerySet:
    """The model instances of build(*stand-ins for values), compiled on first use of the shape.

    `shape` names everything `build` depends on besides the values: sort, filters, LIMIT/OFFSET.
    """
    compiled = _get(shape, build, values)
    manager = compiled.model._default_manager.db_manager(compiled.db)
    return manager.raw(compiled.sql, compiled.params_for(values))


def rows(shape: Hashable, build: Callable[..., QuerySet], values: Sequence[Value]) -> list[tuple]:
    """The same for a values_list() of numbers: its rows as the driver returns them (Django's
    converters do not run, so a date column would come back as the database spells it)."""
    compiled = _get(shape, build, values)
    with connections[compiled.db].cursor() as cursor:
        cursor.execute(compiled.sql, compiled.params_for(values))
        return cursor.fetchall()


def _get(shape: Hashable, build: Callable[..., QuerySet], values: Sequence[Value]) -> _Compiled:
    kinds = tuple(type(v) is datetime for v in values)
    key = (shape, kinds)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compile(build, kinds)
        with _lock:
            while len(_compiled) >= MAX_SHAPES:
                del _compiled[next(iter(_compiled))]
            _compiled[key] = compiled
    return compiled


def _stand_ins(base: int, kinds: tuple[bool, ...]) -> list:
    return [
        StandInMoment(float(base - i)) if moment else StandIn(base - i)
        for i, moment in enumerate(kinds)
    ]


def _compile(build: Callable[..., QuerySet], kinds: tuple[bool, ...]) -> _Compiled:
    first = build(*_stand_ins(_FIRST, kinds))
    sql, params = first.query.sql_with_params()
    other_sql, other_params = build(*_stand_ins(_SECOND, kinds)).query.sql_with_params()
    if sql != other_sql or len(params) != len(other_params):
        raise ShapeError("the SQL text itself changes with the values")
    slots = []
    for value, other in zip(params, other_params, strict=True):
        index = _FIRST - value if type(value) in (int, float) else -1
        if value == other and index not in range(len(kinds)):
            slots.append(value)
        elif index in range(len(kinds)) and type(other) is type(value) and _SECOND - other == index:
            slots.append(_Slot(int(index)))
        else:
            raise ShapeError(f"a parameter changes between two compilations: {value!r}")
    return _Compiled(model=first.model, db=first.db, sql=sql, params=tuple(slots))


def clear() -> None:
    """Forget every compiled shape."""
    with _lock:
        _compiled.clear()
