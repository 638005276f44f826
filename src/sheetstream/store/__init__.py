"""Tables and job records in SQLite (the embedded default) or PostgreSQL, behind one small interface."""

from .base import (
    MODES,
    AuditTable,
    Column,
    JobTable,
    OnCommit,
    Store,
    TokenTable,
    open_store,
    safe_url,
    select_columns,
    wait_for,
)
from .tokens import TokenRecord

__all__ = ["MODES", "AuditTable", "Column", "JobTable", "OnCommit", "Store", "TokenRecord", "TokenTable", "open_store",
           "safe_url", "select_columns", "wait_for"]
