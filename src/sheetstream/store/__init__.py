"""Tables and job records in SQLite (the embedded default) or PostgreSQL, behind one small interface."""

from .base import MODES, Column, JobTable, OnCommit, Store, open_store, safe_url, select_columns

__all__ = ["MODES", "Column", "JobTable", "OnCommit", "Store", "open_store", "safe_url", "select_columns"]
