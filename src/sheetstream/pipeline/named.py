"""Named queries (:class:`~sheetstream.config.NamedQuery`): checked against the database at start, their parameters
read from a query string by their declared kinds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..config import NamedQuery
from ..errors import BadRequest, ConfigError
from ..store import Column, Store
from .query import parse_value


def check_queries(store: Store, queries: Sequence[NamedQuery]) -> dict[str, list[Column]]:
    """Each query's columns, from the database (which prepares and plans it); ConfigError naming the query whose
    SQL does not run, so that a server with a broken query does not start."""
    found = {}
    for q in queries:
        try:
            found[q.name] = store.describe(q.sql, q.params)
        except ConfigError as exc:
            raise ConfigError(f"named query {q.name!r} (SHEETSTREAM_QUERIES_FILE): {exc.message}", query=q.name) from None
    return found


def parse_arguments(query: NamedQuery, params: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The query string's values for ``query``'s parameters, typed; every parameter is required, and a parameter
    the query does not have is a BadRequest."""
    kinds = dict(query.params)
    values: dict[str, Any] = {}
    for key, text in params:
        if key not in kinds:
            raise BadRequest(f"query {query.name!r} has no parameter {key!r}; its parameters: "
                             f"{', '.join(kinds) or 'none'}", parameter=key)
        values[key] = parse_value(Column(key, kinds[key]), key, f"parameter '{key}={text}'", text)
    missing = [p for p in kinds if p not in values]
    if missing:
        raise BadRequest(f"query {query.name!r} needs {', '.join(f'{p} ({kinds[p]})' for p in missing)}",
                         missing=missing)
    return values
