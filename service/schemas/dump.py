"""A schema's dump compiled once into a table of (key, attribute, conversion).

marshmallow's generic dump costs tens of microseconds a session, most of a
500-item page. ``CompiledDump`` does the same work directly, from a table
built once from the schema's own fields, on model instances and on the
named-tuple rows a listing reads (by position there). A field of a kind the
table does not know is a ``TypeError`` at the first dump, never a silent
difference; a test holds the two dumps to the same output.
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from marshmallow import Schema, fields
from sqlalchemy import Row

from service.schemas.fields import IPAddress, UTCDateTime, format_datetime


class CompiledDump(Schema):
    """A schema whose ``dump`` runs through its compiled table (see the module doc)."""

    @classmethod
    def shape(cls) -> str:
        """A short digest of what a dump holds (keys, attributes, kinds of value),
        to tell apart bodies written by releases whose schemas differ."""
        layout = [(key, attribute, convert.__name__) for key, attribute, convert in _representation_table(cls)]
        return hashlib.sha256(repr(layout).encode()).hexdigest()[:16]

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """Serialise through the table compiled from this schema's fields."""
        if self.only or self.exclude:
            return super().dump(obj, many=many)
        items = obj if (self.many if many is None else many) else [obj]
        layouts: dict[type, _RowLayout] = {}  # named tuples of one class share their fields
        dumped = [self._represent(item, layouts) for item in items]
        return dumped if items is obj else dumped[0]

    def _represent(self, item: Any, layouts: dict[type, _RowLayout]) -> dict[str, Any]:
        layout = layouts.get(type(item))
        if layout is None:
            if not isinstance(item, Row | tuple):
                table = _representation_table(type(self))
                return {key: convert(getattr(item, attribute)) for key, attribute, convert in table}
            row: Any = item
            layout = _row_layout(type(self), row._fields)
            if not isinstance(item, Row):  # SQLAlchemy's rows share one class, whatever their fields
                layouts[type(item)] = layout
        values = list(layout.pick(item))
        for position, convert in layout.conversions:
            value = values[position]
            if value is not None:
                values[position] = convert(value)
        return dict(zip(layout.keys, values, strict=True))


_Converter = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _datetime_or_none(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


@functools.cache
def _representation_table(schema_class: type[Schema]) -> tuple[tuple[str, str, _Converter], ...]:
    """``(key, attribute, converter)`` for each field: what ``dump`` does per field, decided once."""
    table = []
    for name, field in schema_class().dump_fields.items():
        if isinstance(field, UTCDateTime):
            convert: _Converter = _datetime_or_none
        elif isinstance(field, fields.UUID):
            convert = _text_or_none
        elif isinstance(field, fields.String | fields.Boolean | fields.Integer | fields.Dict | fields.Raw | IPAddress):
            convert = _same
        else:
            raise TypeError(f"no fast conversion for {type(field).__name__} ({name})")
        table.append((field.data_key or name, field.attribute or name, convert))
    return tuple(table)


class _RowLayout(NamedTuple):
    keys: tuple[str, ...]
    # The row's values in the order of ``keys``.
    pick: Callable[[Any], tuple[Any, ...]]
    # (position in ``keys``, converter) of the fields whose values change on
    # the way out (datetimes, uuids).
    conversions: tuple[tuple[int, _Converter], ...]


@functools.cache
def _row_layout(schema_class: type[Schema], row_fields: tuple[str, ...]) -> _RowLayout:
    """The representation table for rows of ``row_fields``: each attribute by its position."""
    table = _representation_table(schema_class)
    position = {name: index for index, name in enumerate(row_fields)}
    return _RowLayout(
        keys=tuple(key for key, _attribute, _convert in table),
        pick=operator.itemgetter(*(position[attribute] for _key, attribute, _convert in table)),
        conversions=tuple(
            (index, convert) for index, (_key, _attribute, convert) in enumerate(table) if convert is not _same
        ),
    )
