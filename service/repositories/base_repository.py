"""``BaseRepository[T]``: the operations every model's repository offers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from sqlalchemy import bindparam, insert, inspect, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.database import Base, in_unit_of_work
from service.repositories.prepared import PreparedStatement
from service.repositories.query import ListQuery, attribute_columns

ModelT = TypeVar("ModelT", bound=Base)
RowT = TypeVar("RowT")


class _InsertColumn(NamedTuple):
    attribute: str
    name: str
    default: Callable[[], Any]


@functools.cache
def _insert_columns(model: Any) -> tuple[_InsertColumn, ...]:
    """The columns an insert names: every one but those only the database
    fills (a server default and no model default)."""
    mapper = inspect(model)
    columns = []
    for column in model.__table__.columns:
        if column.default is None and column.server_default is not None:
            continue
        columns.append(
            _InsertColumn(mapper.get_property_by_column(column).key, column.name, _default_of(column.default))
        )
    return tuple(columns)


@functools.cache
def _insert(model: Any, row_type: type[Any]) -> tuple[PreparedStatement, tuple[_InsertColumn, ...]]:
    """``INSERT … RETURNING`` every attribute of one row."""
    columns = _insert_columns(model)
    statement = (
        insert(model.__table__)
        .values({column.name: bindparam(column.name) for column in columns})
        .returning(*attribute_columns(model))
    )
    return PreparedStatement(statement, row_type), columns


@functools.cache
def _insert_many(model: Any) -> Any:
    """``INSERT … RETURNING`` every attribute of many rows, returned in the
    order of their parameters (SQLAlchemy batches them into few statements)."""
    return insert(model.__table__).returning(*attribute_columns(model), sort_by_parameter_order=True)


def _default_of(default: Any) -> Callable[[], Any]:
    if default is None:
        return lambda: None
    if default.is_callable:
        return lambda: default.arg(None)
    return lambda: default.arg


@functools.cache
def _read_by_id(model: Any, row_type: type[Any]) -> PreparedStatement:
    primary_key = inspect(model).primary_key[0]
    statement = select(*attribute_columns(model)).where(primary_key == bindparam("identity"))
    return PreparedStatement(statement, row_type)


class BaseRepository(Generic[ModelT]):
    """Add, fetch, change and remove one model's rows on the caller's session.

    Every write is flushed at once, so constraint violations surface inside
    the use case that caused them; committing is the unit of work's job.
    Reads that are only answered come back as ``row_type``, the model's read
    model (a named tuple of its attributes), not as tracked instances.
    """

    model: ClassVar[type[Any]]
    row_type: ClassVar[type[Any]]

    def __init__(self, db_session: Session) -> None:
        self.db_session = db_session

    @property
    def _primary_key(self) -> Any:
        return inspect(self.model).primary_key[0]

    @property
    def _primary_key_attribute(self) -> InstrumentedAttribute[Any]:
        mapper = inspect(self.model)
        attribute: InstrumentedAttribute[Any] = getattr(
            self.model, mapper.get_property_by_column(self._primary_key).key
        )
        return attribute

    def query(self) -> ListQuery[Any]:
        """A ``ListQuery`` over every row (as ``row_type``), paged in keyset order with the
        primary key as tiebreaker."""
        return ListQuery(self.db_session, self.model, self.row_type, tiebreaker=self._primary_key_attribute)

    def get_by_id(self, identity: Any, *, for_update: bool = False) -> ModelT | None:
        """The row with this primary key, read fresh from the database.

        ``for_update`` locks the row until the unit of work ends, so a
        read-modify-write cannot interleave with another writer's.
        """
        return self.db_session.get(self.model, identity, populate_existing=True, with_for_update=for_update)

    def read_by_id(self, identity: Any) -> Any:
        """The row with this primary key as ``row_type``: no ORM instance to
        build, for reads that are only answered."""
        model: Any = self.model
        row_type: Any = self.row_type
        return self._first(_read_by_id(model, row_type), {"identity": identity})

    def insert_row(self, values: Mapping[str, Any]) -> Any:
        """Insert one row from attribute values (the model's defaults fill the
        rest) and return it as stored, as ``row_type``.

        Outside a unit of work the insert is one statement that commits by
        itself; an ``IntegrityError`` means a constraint refused it.
        """
        model: Any = self.model
        row_type: Any = self.row_type
        statement, columns = _insert(model, row_type)
        unknown = set(values) - {column.attribute for column in columns}
        if unknown:
            raise TypeError(f"not attributes of {model.__name__} set on insert: {sorted(unknown)}")
        parameters = {
            column.name: values[column.attribute] if column.attribute in values else column.default()
            for column in columns
        }
        return self._first(statement, parameters)

    def insert_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Insert rows from attribute values (the model's defaults fill the
        rest) and return them as stored, as ``row_type``s in the order given.

        Within a unit of work: the rows are written all or none. An
        ``IntegrityError`` means a constraint refused one of them.
        """
        if not in_unit_of_work(self.db_session):
            raise RuntimeError("insert_rows writes several rows: run it in a unit of work")
        model: Any = self.model
        row_type: Any = self.row_type
        columns = _insert_columns(model)
        known = {column.attribute for column in columns}
        parameters = []
        for values in rows:
            unknown = set(values) - known
            if unknown:
                raise TypeError(f"not attributes of {model.__name__} set on insert: {sorted(unknown)}")
            parameters.append(
                {
                    column.name: values[column.attribute] if column.attribute in values else column.default()
                    for column in columns
                }
            )
        if not parameters:
            return []
        result = self.db_session.execute(_insert_many(model), parameters)
        return [row_type._make(row) for row in result]

    def _first(self, statement: PreparedStatement, parameters: Mapping[str, Any]) -> Any:
        """Outside a unit of work, run on a connection of its own; inside one,
        on the unit of work's, so that it sees (and is part of) what the unit writes."""
        bind = self.db_session if in_unit_of_work(self.db_session) else self.db_session.get_bind()
        return statement.first(bind, parameters)

    def _all(self, statement: PreparedStatement, parameters: Mapping[str, Any]) -> Any:
        """Every row, run as ``_first`` runs."""
        bind = self.db_session if in_unit_of_work(self.db_session) else self.db_session.get_bind()
        return statement.all(bind, parameters)

    def create(self, entity: ModelT) -> ModelT:
        """Insert ``entity``; an ``IntegrityError`` means a constraint refused it."""
        self.db_session.add(entity)
        self.db_session.flush()
        return entity

    def update(self, entity: ModelT, changes: Mapping[str, Any]) -> ModelT:
        """Apply ``changes`` (attribute name to value) and write them."""
        for attribute, value in changes.items():
            setattr(entity, attribute, value)
        self.db_session.flush()
        return entity

    def delete(self, entity: ModelT) -> None:
        """Remove the row for good."""
        self.db_session.delete(entity)
        self.db_session.flush()
