"""PostgreSQL as the local warehouse: the same load transaction as Redshift, COPY from a stream."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from pipeline.contract import FLIGHT_LOAD_AUDIT, Dialect, warehouse_ddl
from pipeline.warehouse import SourceFile, copy_statement, load_statements

log = logging.getLogger(__name__)

# One advisory-lock key for "a load run is in progress", shared by every local runner.
_RUN_LOCK_KEY = 0x666C6967  # "flig"


class LoadInProgressError(RuntimeError):
    """Another run holds the load lock; retry when it has finished."""


class PostgresWarehouse:
    """The warehouse of the local twin."""

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, **kwargs)

    def ensure_schema(self) -> None:
        with self.connect(autocommit=True) as conn:
            for statement in warehouse_ddl(Dialect.POSTGRES):
                conn.execute(statement)

    @contextmanager
    def exclusive_run(self, wait_seconds: float = 0.0) -> Iterator[None]:
        """Hold the run lock for the block; refuse with LoadInProgressError if it stays busy.

        The lock is a session-level advisory lock: it is released when the block ends or when
        the process dies, so a killed run never leaves the warehouse locked.
        """
        with self.connect(autocommit=True) as conn:
            deadline = time.monotonic() + wait_seconds
            while True:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", [_RUN_LOCK_KEY]).fetchone()
                if row and row[0]:
                    break
                if time.monotonic() >= deadline:
                    raise LoadInProgressError(
                        "another load run is in progress on this warehouse; "
                        "retry when it has finished"
                    )
                time.sleep(0.2)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [_RUN_LOCK_KEY])

    def loaded_versions(self) -> set[tuple[str, str]]:
        """(key, version) of every file version the warehouse holds: the local job bookmark."""
        with self.connect() as conn:
            rows = conn.execute(
                f"SELECT source_key, source_version FROM {FLIGHT_LOAD_AUDIT.name}"
            ).fetchall()
        return {(key, version) for key, version in rows}

    def replace_days(
        self, files: Sequence[SourceFile], job_run_id: str, csv_chunks: Iterable[bytes]
    ) -> dict[str, int]:
        """Replace the files' days with the CSV rows streamed in, and audit, in one transaction.

        ``csv_chunks`` yields CSV in ``LOAD_COLUMNS`` order; an exception while iterating it
        aborts the COPY and rolls everything back. Returns the rows loaded per source key.
        """
        statements = load_statements(files, job_run_id, copy_statement(Dialect.POSTGRES))
        days = sorted({f.flight_date.isoformat() for f in files})
        with self.connect() as conn, conn.transaction():
            log.info("load phase=delete days=%d first=%s last=%s", len(days), days[0], days[-1])
            conn.execute(statements.delete_days)
            log.info("load phase=copy files=%d", len(files))
            with conn.cursor().copy(statements.copy) as copy:
                for chunk in csv_chunks:
                    copy.write(chunk)
            log.info("load phase=audit")
            conn.execute(statements.insert_audit)
            rows = conn.execute(statements.rows_loaded).fetchall()
            log.info("load phase=commit")
        log.info("load phase=committed rows=%d", sum(n for _, n in rows))
        return {key: count for key, count in rows}

    def query(
        self, sql: str, params: Sequence[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run read-only SQL: the transaction is READ ONLY, so nothing can be changed."""
        with self.connect() as conn:
            conn.execute("SET TRANSACTION READ ONLY")
            cursor = conn.execute(sql, params)
            columns = [d.name for d in cursor.description or []]
            rows = cursor.fetchall() if cursor.description else []
            conn.rollback()
        return columns, rows
