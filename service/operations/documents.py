"""The free JSON documents a session stores (``metadata``): how a merge patch
changes one, and the bounds every stored document keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def canonical(value: Any) -> str:
    """The JSON text two equal documents share (``1`` and ``true`` differ, unlike in Python)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class DocumentBounds:
    """How large, serialised, and how deeply nested a stored document may be."""

    max_bytes: int
    max_depth: int

    def violation(self, document: Any) -> str | None:
        """What ``document`` breaks, in the service's words, or None."""
        if depth(document) > self.max_depth:
            return f"Must nest at most {self.max_depth} levels deep."
        if stored_size(document) > self.max_bytes:
            return f"Must be at most {self.max_bytes} bytes when serialised as JSON, as stored."
        return None


def stored_size(document: Any) -> int:
    """The bytes ``document`` takes serialised as it is stored and served.

    PostgreSQL keeps JSON numbers as ``numeric`` and prints them in full:
    ``1e308`` comes back as 309 digits. Every number is counted at the length
    it is printed back with, so no body can grow past the bound once stored.
    """
    size = len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())
    for _level, item in walk(document):
        if isinstance(item, float):
            written = repr(item)
            size += max(len(format(Decimal(written), "f")) - len(written), 0)
    return size


METADATA_BOUNDS = DocumentBounds(max_bytes=16 * 1024, max_depth=32)


def walk(value: Any) -> Iterator[tuple[int, Any]]:
    """Yield ``(depth, item)`` for every value and key inside ``value``, without recursion."""
    stack = [(0, value)]
    while stack:
        level, item = stack.pop()
        yield level, item
        if isinstance(item, dict):
            stack.extend((level + 1, key) for key in item)
            stack.extend((level + 1, child) for child in item.values())
        elif isinstance(item, list):
            stack.extend((level + 1, child) for child in item)


def depth(value: Any) -> int:
    """How many objects and arrays nest inside each other in ``value``."""
    return max((level + 1 for level, item in walk(value) if isinstance(item, dict | list)), default=0)
