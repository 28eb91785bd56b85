"""``BaseRepository[T]``: the operations every model's repository offers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, bindparam, insert, inspect, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.database import Base, in_unit_of_work
from service.repositories.prepared import PreparedStatement
from service.repositories.query import ListQuery, attribute_columns

ModelT = TypeVar("ModelT", bound=Base)


class _InsertColumn(NamedTuple):
    attribute: str
    name: str
    default: Callable[[], Any]


@functools.cache
def _insert(model: Any) -> tuple[PreparedStatement, tuple[_InsertColumn, ...]]:
    """``INSERT … RETURNING`` every attribute, naming each column but those
    only the database fills (a server default and no model default)."""
    mapper = inspect(model)
    columns = []
    for column in model.__table__.columns:
        if column.default is None and column.server_default is not None:
            continue
        columns.append(
            _InsertColumn(mapper.get_property_by_column(column).key, column.name, _default_of(column.default))
        )
    statement = (
        insert(model.__table__)
        .values({column.name: bindparam(column.name) for column in columns})
        .returning(*attribute_columns(model))
    )
    return PreparedStatement(statement, f"{model.__name__}Row"), tuple(columns)


def _default_of(default: Any) -> Callable[[], Any]:
    if default is None:
        return lambda: None
    if default.is_callable:
        return lambda: default.arg(None)
    return lambda: default.arg


@functools.cache
def _read_by_id(model: Any) -> PreparedStatement:
    primary_key = inspect(model).primary_key[0]
    statement = select(*attribute_columns(model)).where(primary_key == bindparam("identity"))
    return PreparedStatement(statement, f"{model.__name__}Row")


class BaseRepository(Generic[ModelT]):
    """Add, fetch, change and remove one model's rows on the caller's session.

    Every write is flushed at once, so constraint violations surface inside
    the use case that caused them; committing is the unit of work's job.
    """

    model: ClassVar[type[Any]]

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

    def query(self) -> ListQuery[ModelT]:
        """A ``ListQuery`` over every row, paged in keyset order with the primary key as tiebreaker."""
        return ListQuery(self.db_session, self.model, tiebreaker=self._primary_key_attribute)

    def get_by_id(self, identity: Any, *, for_update: bool = False) -> ModelT | None:
        """The row with this primary key, read fresh from the database.

        ``for_update`` locks the row until the unit of work ends, so a
        read-modify-write cannot interleave with another writer's.
        """
        return self.db_session.get(self.model, identity, populate_existing=True, with_for_update=for_update)

    def read_by_id(self, identity: Any) -> Any:
        """The row with this primary key as a plain, read-only named tuple
        carrying the model's attributes: no ORM instance to build, for reads
        that are only serialised."""
        model: Any = self.model
        return self.read_one(_read_by_id(model), identity=identity)

    def read_one(self, read: PreparedStatement, **parameters: Any) -> Any:
        """The first row of a prepared ``read`` (see ``read_by_id``), or None."""
        return self._first(read, parameters)

    def insert_row(self, values: Mapping[str, Any]) -> Any:
        """Insert one row from attribute values (the model's defaults fill the
        rest) and return it as stored, as a named tuple like ``read_by_id``'s.

        Outside a unit of work the insert is one statement that commits by
        itself; an ``IntegrityError`` means a constraint refused it.
        """
        model: Any = self.model
        statement, columns = _insert(model)
        unknown = set(values) - {column.attribute for column in columns}
        if unknown:
            raise TypeError(f"not attributes of {model.__name__} set on insert: {sorted(unknown)}")
        parameters = {
            column.name: values[column.attribute] if column.attribute in values else column.default()
            for column in columns
        }
        return self._first(statement, parameters)

    def _first(self, statement: PreparedStatement, parameters: Mapping[str, Any]) -> Any:
        """Outside a unit of work, run on a connection of its own; inside one,
        on the unit of work's, so that it sees (and is part of) what the unit writes."""
        if in_unit_of_work(self.db_session):
            return self.db_session.execute(statement.statement, parameters).first()
        return statement.first(self.db_session.get_bind(), parameters)

    def exists(self, identity: Any) -> bool:
        """Whether a row with this primary key exists, without loading it."""
        query = select(literal(True)).where(self._primary_key == identity).limit(1)
        return self.db_session.execute(query).scalar() is not None

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

    def list(
        self,
        *criteria: ColumnElement[bool],
        order_by: Sequence[Any] = (),
        limit: int | None = None,
    ) -> list[ModelT]:
        """Rows matching every criterion, in ``order_by`` order, at most ``limit``."""
        query = select(self.model).where(*criteria).order_by(*order_by).limit(limit)
        return list(self.db_session.scalars(query))
