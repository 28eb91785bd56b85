"""Text comparisons that give the same answer in SQL as in Python, on every backend.

SQL's ``lower()`` follows the database's locale (in a Turkish one, ``I``
becomes a dotless i) and SQLite's lowers ASCII only, while Python's
``str.lower`` knows all of Unicode. On printable ASCII text the two agree once
SQL lowers by a fixed table: a statement that must judge text as Python
would first checks that it is printable ASCII (``is_printable_ascii``), then
compares ``ascii_lower`` of it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def printable_ascii(text: str) -> bool:
    """Python's twin of ``is_printable_ascii``."""
    return text.isascii() and text.isprintable()


class is_printable_ascii(FunctionElement[bool]):
    """True when the text holds only characters from space to ``~``; NULL for NULL."""

    type = Boolean()
    inherit_cache = True


class ascii_lower(FunctionElement[str]):
    """The text with ``A``-``Z`` lowered and every other character kept."""

    type = String()
    inherit_cache = True


@compiles(is_printable_ascii)
def _is_printable_ascii(element: is_printable_ascii, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} ~ '^[ -~]*$')"


@compiles(is_printable_ascii, "sqlite")
def _is_printable_ascii_sqlite(element: is_printable_ascii, compiler: Any, **kw: Any) -> str:
    return f"(NOT ({compiler.process(element.clauses, **kw)} GLOB '*[^ -~]*'))"


@compiles(ascii_lower)
def _ascii_lower(element: ascii_lower, compiler: Any, **kw: Any) -> str:
    return f"translate({compiler.process(element.clauses, **kw)}, '{_UPPER}', '{_UPPER.lower()}')"


@compiles(ascii_lower, "sqlite")
def _ascii_lower_sqlite(element: ascii_lower, compiler: Any, **kw: Any) -> str:
    # SQLite's own lower() changes ASCII letters only.
    return f"lower({compiler.process(element.clauses, **kw)})"
