"""PostgreSQL as the local warehouse: the same load transaction as Redshift, COPY from a stream."""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import psycopg

from pipeline.core.contract import (
    FLIGHT_LOAD_AUDIT,
    FLIGHT_LOAD_REJECTS,
    WAREHOUSE_TABLES,
    Dialect,
)
from pipeline.core.migrations import (
    APPLIED_VERSIONS_SQL,
    MIGRATIONS,
    AddColumn,
    Migration,
    history_ddl,
    pending,
    tables_after,
)
from pipeline.core.warehouse import (
    Manifest,
    Rejection,
    SourceFile,
    Staging,
    WarehouseRefusedError,
    copy_statement,
    load_statements,
    reject_statements,
    staged_values,
)

log = logging.getLogger(__name__)

# One advisory-lock key for "a load run is in progress", shared by every local runner.
_RUN_LOCK_KEY = 0x666C6967  # "flig"
# And one for "migrations are being applied": two twins starting at once apply each once.
_MIGRATION_LOCK_KEY = 0x666C6D67  # "flmg"

# The CONTEXT of a COPY error: 'COPY flight_processed, line 3, column carrier: "..."'.
_COPY_CONTEXT = re.compile(r"COPY \w+, line (\d+)(?:, column (\w+))?")

READER_ROLE: Final = "flightpipe_reader"
"""The twin's role for user queries: it can read the warehouse tables and nothing else (no
superuser, no file access, no temporary tables, no CREATE)."""


class LoadInProgressError(RuntimeError):
    """Another run holds the load lock; retry when it has finished."""


class QueryRefusedError(ValueError):
    """A user query that is not one read-only statement the reader may run; says why."""


class PostgresWarehouse:
    """The warehouse of the local twin."""

    def __init__(
        self, url: str, *, own_server: bool = False, reader_url: str | None = None
    ) -> None:
        """``own_server``: the twin's own server, on this machine, run by a superuser and
        tuned for speed over durability (``POSTGRES_SPEED_SETTINGS``). It loads staged parts
        straight from disk, and its tables are UNLOGGED: no write-ahead log for the rows, and
        a crashed server comes back with both tables empty, bookmark included, so the next
        run reloads every validated file. Any other server gets streamed parts and logged
        tables. ``reader_url``: where user queries connect (``ask``); on the twin's own
        server ``ensure_schema`` creates that role."""
        self.url = url
        self.own_server = own_server
        self.reader_url = reader_url

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, **kwargs)

    def ensure_schema(self) -> list[int]:
        """Apply the warehouse's migrations it lacks (``pipeline.core.migrations``, in
        PostgreSQL's SQL), as the deployment applies them on Redshift; the versions applied.

        On the twin's own server the tables are then UNLOGGED and the reader role set up.
        """
        with self.connect(autocommit=True) as conn:
            applied = self._migrate(conn)
            if self.own_server:
                # Every table or none: data and bookmark (audit and rejects) must vanish
                # together in a crash. Only logged ones are altered: ALTER TABLE would wait
                # for a running load.
                logged = conn.execute(
                    "SELECT oid::regclass::text FROM pg_class "
                    "WHERE oid = ANY(%s::regclass[]) AND relpersistence = 'p'",
                    [[t.name for t in WAREHOUSE_TABLES]],
                ).fetchall()
                for (table,) in logged:
                    conn.execute(f"ALTER TABLE {table} SET UNLOGGED")
                self._ensure_reader(conn)
        return applied

    @staticmethod
    def _migrate(conn: psycopg.Connection[Any]) -> list[int]:
        """Apply each pending migration in a transaction of its own, its history row in it,
        under a lock, so twins starting at once apply each migration once.

        A twin's warehouse from before the migrations has the tables and no history. Version
        1 is idempotent (``CREATE TABLE IF NOT EXISTS``, as the contract's DDL always was)
        rather than taken as applied when its tables exist: such a warehouse may lack some of
        them (``flight_load_rejects`` came later) or columns the twin then added at start
        (the audit's ``upload_key`` and ``upload_version``). So applying version 1 there
        creates the tables missing, adds those columns (``_complete_version_1``) and records
        it, in one transaction; the rows stay. The history table itself is logged even on the
        twin's own server: a crash empties the UNLOGGED tables but must not forget what was
        applied to them.
        """
        conn.execute("SELECT pg_advisory_lock(%s)", [_MIGRATION_LOCK_KEY])
        try:
            conn.execute(history_ddl(Dialect.POSTGRES))
            done = [version for (version,) in conn.execute(APPLIED_VERSIONS_SQL).fetchall()]
            applied = []
            for migration in pending(done):
                with conn.transaction():
                    for statement in migration.statements(Dialect.POSTGRES):
                        conn.execute(statement)
                    if migration.version == MIGRATIONS[0].version:
                        _complete_version_1(conn, MIGRATIONS[0])
                log.info(
                    "warehouse migration %d applied: %s", migration.version, migration.description
                )
                applied.append(migration.version)
            return applied
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [_MIGRATION_LOCK_KEY])

    def _ensure_reader(self, conn: psycopg.Connection[Any]) -> None:
        """The read-only role of user queries: SELECT on the warehouse tables, nothing more."""
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [READER_ROLE]).fetchone()
        if not exists:
            conn.execute(
                f"CREATE ROLE {READER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOREPLICATION NOBYPASSRLS"
            )
        database = conn.info.dbname
        # Temporary tables are open to everyone by default; a reader has no use for them.
        conn.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {READER_ROLE}")
        tables = ", ".join(t.name for t in WAREHOUSE_TABLES)
        conn.execute(f"GRANT SELECT ON {tables} TO {READER_ROLE}")

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
        """(key, version) of every file version the warehouse holds or has rejected: the local
        job bookmark. A rejected version is never new again, even while it still sits where
        the load reads (a crash between the reject's commit and the move to quarantine)."""
        with self.connect() as conn:
            rows = conn.execute(
                f"SELECT source_key, source_version FROM {FLIGHT_LOAD_AUDIT.name} UNION "
                f"SELECT validated_key, validated_version FROM {FLIGHT_LOAD_REJECTS.name}"
            ).fetchall()
        return {(key, version) for key, version in rows}

    def replace_days(
        self,
        files: Sequence[SourceFile],
        job_run_id: str,
        parts: Iterable[Path],
        rejections: Sequence[Rejection] = (),
        *,
        row_bounds: Mapping[str, int],
    ) -> dict[str, int]:
        """Replace the files' days with the rows of the staged parts, audit, and record
        ``rejections``, in one transaction.

        ``parts`` yields staged files (lines in ``LOAD_COLUMNS`` order) as they are finished; an
        exception while iterating it aborts the load and rolls everything back. A row the
        server refuses raises ``WarehouseRefusedError`` naming the row's source file.
        ``row_bounds``: the most rows each file can load, by source key, for the files counted
        (``rows_proven``). Returns the rows loaded per source key.
        """
        statements = load_statements(files, job_run_id, _STREAMED, rejections, row_bounds)
        days = sorted({f.flight_date.isoformat() for f in files})
        with self.connect() as conn, conn.transaction():
            for manifest in statements.manifests:
                _send(conn, manifest)
            log.info("load phase=delete days=%d first=%s last=%s", len(days), days[0], days[-1])
            conn.execute(statements.delete_days)
            log.info("load phase=copy files=%d", len(files))
            copied = sum(self._copy(conn, part, statements.copy) for part in parts)
            proven = rows_proven(files, row_bounds, copied)
            log.info(
                "load phase=audit rows=%d counted_in=%s", copied, "files" if proven else "table"
            )
            conn.execute(statements.insert_proven_audit if proven else statements.insert_audit)
            if statements.rejects:
                conn.execute(statements.rejects.insert)
            rows = conn.execute(statements.rows_loaded).fetchall()
            log.info("load phase=commit")
        log.info("load phase=committed rows=%d", sum(n for _, n in rows))
        return {key: count for key, count in rows}

    def record_rejections(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        """Record ``rejections`` in a transaction of their own."""
        statements = reject_statements(rejections, job_run_id, _STREAMED)
        with self.connect() as conn, conn.transaction():
            _send(conn, statements.manifest)
            conn.execute(statements.insert)

    def _copy(self, conn: psycopg.Connection[Any], part: Path, from_stdin: str) -> int:
        """COPY one staged part and return its rows; a refused row raises
        ``WarehouseRefusedError`` with the row's source file, read from the part's line the
        error names."""
        try:
            return self._copy_part(conn, part, from_stdin)
        except (psycopg.errors.DataError, psycopg.errors.NotNullViolation) as exc:
            message = (exc.diag.message_primary or str(exc)).strip()
            found = _COPY_CONTEXT.search(exc.diag.context or "")
            if found is None:
                raise WarehouseRefusedError(message) from exc
            number, column = int(found.group(1)), found.group(2) or exc.diag.column_name
            with open(part, encoding="utf-8", errors="replace", newline="\n") as lines:
                line = next(itertools.islice(lines, number - 1, None), "").rstrip("\n")
            refused = f"{column}: {message}" if column else message
            try:
                values = staged_values(line)
            except ValueError:  # not a whole staged line: the file stays unknown
                raise WarehouseRefusedError(refused) from exc
            value = values.get(column) if column else None
            raise WarehouseRefusedError(refused, values["source_file"], column, value) from exc

    def _copy_part(self, conn: psycopg.Connection[Any], part: Path, from_stdin: str) -> int:
        """COPY one staged part and return its rows: the server reads its own machine's file
        (no bytes pass through this process), any other server gets the file streamed."""
        if self.own_server:
            return conn.execute(
                copy_statement(Dialect.POSTGRES, staged_uri=str(part.resolve()))
            ).rowcount
        cursor = conn.cursor()
        with cursor.copy(from_stdin) as copy, open(part, "rb") as handle:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        return cursor.rowcount

    def query(
        self, sql: str, params: Sequence[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run the pipeline's own read-only SQL (status, audit look-ups) in a READ ONLY
        transaction. User SQL goes to ``ask``."""
        with self.connect() as conn:
            return _read(conn, sql, params)

    def ask(self, sql: str, timeout_seconds: float) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one user statement as the read-only role, cancelled after ``timeout_seconds``.

        Raises QueryRefusedError, saying why, for anything but one statement the role may run.
        """
        if self.reader_url is None:
            raise QueryRefusedError(
                "no read-only user for queries on this warehouse: set "
                "FLIGHTPIPE_WAREHOUSE__READER_URL to the URL of a user that may only SELECT"
            )
        timeout = f"-c statement_timeout={round(timeout_seconds * 1000)}"
        try:
            with psycopg.connect(self.reader_url, options=timeout) as conn:
                return _read(conn, sql, prepare=True)
        except psycopg.errors.SyntaxError as exc:
            if "multiple commands" not in str(exc):
                raise
            raise QueryRefusedError(
                "one statement per query: run each statement in a call of its own"
            ) from exc
        except psycopg.errors.QueryCanceled as exc:
            raise QueryRefusedError(
                f"the query ran longer than {timeout_seconds:g} s and was cancelled "
                "(FLIGHTPIPE_WAREHOUSE__QUERY_TIMEOUT_SECONDS sets the limit)"
            ) from exc
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction) as exc:
            raise QueryRefusedError(
                f"{str(exc).strip()}: queries are read-only and may only read "
                f"{', '.join(t.name for t in WAREHOUSE_TABLES)}"
            ) from exc


def _complete_version_1(conn: psycopg.Connection[Any], version_1: Migration) -> None:
    """Add the columns of version 1's tables that a twin's warehouse from before the
    migrations lacks: columns its start added to existing tables then, all nullable."""
    tables = tables_after([version_1])
    existing = set(
        conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
            [list(tables)],
        ).fetchall()
    )
    for table, columns in tables.items():
        for column in columns:
            if (table, column.name) not in existing:
                conn.execute(AddColumn(table, column).sql(Dialect.POSTGRES))


_STREAMED: Final = Staging(Dialect.POSTGRES)
"""The manifests go to the server as the client's stream (the staged lines go as parts)."""


def _send(conn: psycopg.Connection[Any], manifest: Manifest) -> None:
    """Create a load's manifest table in the transaction, stream its rows into it and analyze
    it."""
    conn.execute(manifest.create)
    with conn.cursor().copy(manifest.copy) as copy:
        copy.write("".join(f"{line}\n" for line in manifest.staged()))
    conn.execute(manifest.analyze)


def rows_proven(
    files: Sequence[SourceFile], row_bounds: Mapping[str, int], rows_copied: int
) -> bool:
    """Whether each file loaded exactly its bound of rows, proven without reading the table.

    A file loads at most its bound of rows (its lines after the header: the job reads each row
    from a line of its own, and a blank line loads nothing), and the job loads every row it
    reads exactly once (each flight is kept, joined to at most one airport per side). So when
    the files' bounds add up to exactly the rows the load copied, every file loaded exactly its
    bound. When they do not (blank lines, a file not counted), the audit has to count in the
    table.
    """
    keys = [f.key for f in files]
    return all(key in row_bounds for key in keys) and (
        sum(row_bounds[key] for key in keys) == rows_copied
    )


def _read(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None = None,
    prepare: bool | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One statement in a READ ONLY transaction, rolled back; its column names and rows.

    ``prepare``: as a prepared statement, which the server refuses to make of several
    commands (a ``COMMIT`` among them would end the READ ONLY transaction).
    """
    conn.execute("SET TRANSACTION READ ONLY")
    cursor = conn.cursor()
    cursor.execute(sql, params, prepare=prepare)
    columns = [d.name for d in cursor.description or []]
    rows = cursor.fetchall() if cursor.description else []
    conn.rollback()
    return columns, rows
