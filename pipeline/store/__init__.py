"""The store of record: one SQLite database (WAL) per results directory, its tables as typed records, the
lock that keeps one writer per (store, model, variant), and where a results directory keeps its stores.

Public API:
    Store, Counts, snapshot, db_path, check_intact, DB_NAME, StoreDamagedError, StoreFullError (database)
    the records and tables (schema);  store_lock, Holder, StoreLockedError (lock);
    store_dirs, job_dir (layout)
"""

from pipeline.store.database import (
    DB_NAME,
    Counts,
    Store,
    StoreDamagedError,
    StoreFullError,
    check_intact,
    db_path,
    snapshot,
)

__all__ = [
    "DB_NAME",
    "Counts",
    "Store",
    "StoreDamagedError",
    "StoreFullError",
    "check_intact",
    "db_path",
    "snapshot",
]
