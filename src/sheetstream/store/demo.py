"""The demo table ``orders``: deterministic rows (fixed seed) with every column kind and the awkward values
real data has (XML special characters, control characters, NULLs, formula-looking text, unicode)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .base import Column, Store

ORDERS = [
    Column("id", "integer", nullable=False, primary_key=True),
    Column("customer", "text", nullable=False),
    Column("email", "text"),
    Column("amount", "numeric", nullable=False, precision=12, scale=2),
    Column("ordered_on", "date", nullable=False),
    Column("created_at", "timestamp", nullable=False),
    Column("quantity", "integer", nullable=False),
    Column("paid", "boolean", nullable=False),
    Column("category", "text"),
    Column("weight", "float"),
    Column("note", "text"),
]

_FIRST = ["Ana", "Bruno", "Chloé", "Dmitri", "Eun-ji", "Fatima", "Giovanni", "Hiroshi", "Ingrid", "José", "Kwame",
          "Łucja", "Mateus", "Nadia", "Oluwaseun", "Priya", "Quentin", "Rosa", "Søren", "Tomás", "Ümit", "Zoë"]
_LAST = ["Silva", "O'Brien", "Müller", "Nakamura", "García", "Kowalski", "Smith & Sons", "Nguyen", "Dubois",
         "Rossi", "Ivanova", "Haddad", "Andersen", "<Unknown>", "Żółć", "李", "Okafor"]
_CATEGORIES = ["books", "garden", "tools", "toys", "food & drink", "music", "electronics", None]
_NOTES = [
    "Leave at the door", "Gift wrap, please", 'Says "urgent"', "a < b && c > d", "=SUM(A1:A9)", "+33 1 23 45 67",
    "-10% promo", "@mention the courier", "tab\there", "line one\nline two", "bell\x07 and \x1b escape",
    "emoji 📦🚚", "Ελληνικά και 日本語", "  padded  ", "_x0041_ literal", "", None, None, None,
]
_START = datetime(2020, 1, 1)


def demo_rows(count: int, seed: int = 20241121) -> Iterator[tuple[Any, ...]]:
    """``count`` rows for :data:`ORDERS`, the same for the same seed."""
    rng = random.Random(seed)
    for i in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        created = _START + timedelta(seconds=rng.randrange(0, 5 * 365 * 86_400))
        yield (
            i,
            f"{first} {last}",
            None if i % 17 == 0 else f"{first.lower()}.{i}@example.com",
            Decimal(rng.randrange(100, 10_000_000)).scaleb(-2),
            created.date(),
            created,
            rng.randrange(1, 500),
            rng.random() < 0.7,
            rng.choice(_CATEGORIES),
            None if i % 23 == 0 else round(rng.uniform(0.01, 250.0), 3),
            rng.choice(_NOTES),
        )


def seed(store: Store, rows: int, table: str = "orders") -> int:
    """(Re)create ``table`` in ``store`` with ``rows`` demo rows; returns the count inserted."""
    store.create_table(table, ORDERS, replace=True)
    return store.write_rows(table, ORDERS, demo_rows(rows))
