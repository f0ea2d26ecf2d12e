"""The warehouse load, as SQL shared by Redshift (AWS) and PostgreSQL (the local twin).

A load replaces whole days in one transaction:

0. ``COPY`` the load's manifest into a temporary table: a row per file version loaded (and,
   when the load set files aside, a row per ``Rejection``), staged beside the lines, and
   ``ANALYZE`` it, so the statements that read it are planned from its real size;
1. ``DELETE`` every row of the manifest's days;
2. ``COPY`` the new rows straight into ``flight_processed`` (no staging table inside the
   warehouse, so the data is written once);
3. ``INSERT`` one ``flight_load_audit`` row per file version of the manifest, with the rows it
   loaded: counted in the table, or, when the loader's line counts prove it, those counts (the
   twin's ``rows_proven``); and one ``flight_load_rejects`` row per file version set
   aside.

The transaction commits all of it or none, so a retried, duplicated or killed run never leaves
a day half-loaded or loaded twice. No statement names a file, so their number and each one's
size are the same for one file as for a backfill of thousands: Redshift's Data API refuses a
statement over 100 KB and a batch of over 40 statements. Only the ``COPY`` differs between the
dialects (``Staging``): Redshift reads staged files from S3; PostgreSQL reads the lines from
the local disk when it is the twin's own server, and otherwise, and the manifests always, a
stream from the client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from pipeline.core.contract import (
    FLIGHT_LOAD_AUDIT,
    FLIGHT_LOAD_REJECTS,
    FLIGHT_PROCESSED,
    LOADED_AT,
    TEXT_WIDTH,
    WAREHOUSE_TABLES,
    Column,
    ColumnType,
    Dialect,
    Table,
    create_table_sql,
)

LOAD_COLUMNS: tuple[str, ...] = tuple(c for c in FLIGHT_PROCESSED.column_names if c != LOADED_AT)
"""The columns a load ships, in this order; loaded_at is stamped by the warehouse at commit."""

# The staged rows: one text line per row, fields in LOAD_COLUMNS order. It is the one format
# both COPYs read alike: PostgreSQL's text format and Redshift's DELIMITER '\t' ESCAPE. Inside
# a text value a backslash goes before each backslash, tab, line feed and carriage return (the
# character itself follows it, never a letter: Redshift would load `\n` as `n`); numbers and
# dates are plain; NULL is `\N`. PostgreSQL parses it faster than CSV with every text value
# quoted. One value differs between the two: Redshift loads a text value of exactly `\N`
# (staged escaped, `\\N`) as NULL, as its COPY documents.
STAGED_DELIMITER = "\t"
STAGED_NULL = "\\N"
STAGED_ESCAPE = "\\"
STAGED_ESCAPED: tuple[str, ...] = (STAGED_ESCAPE, STAGED_DELIMITER, "\n", "\r")
"""The characters escaped in a text value, the escape itself first."""


@dataclass(frozen=True)
class SourceFile:
    """One version of one daily file, as the load sees it. What each field holds is the
    contract's column of the same meaning (``pipeline.core.contract``: ``VALIDATED_KEY``,
    ``VALIDATED_VERSION``, ``VALIDATED_SHA256``, ``UPLOAD_KEY``, ``UPLOAD_VERSION``)."""

    key: str
    version: str
    sha256: str
    flight_date: dt.date
    uri: str
    upload_key: str | None = None
    upload_version: str | None = None
    validated_at: dt.datetime | None = field(default=None, compare=False)
    """When this version of the validated copy was written (S3's LastModified): when the gate
    promoted it. What the load's wait metric counts from; None when the source does not say."""


@dataclass(frozen=True)
class Rejection:
    """A file version a load set aside, with what was refused in it, where that is known."""

    file: SourceFile
    reason: str
    """One plain line: ``line 11, DepDelay: 99999999999 is outside -2147483648..2147483647``."""
    line: int | None = None
    """The line of the validated copy (the header is line 1)."""
    column: str | None = None
    value: str | None = None


class WarehouseRefusedError(RuntimeError):
    """The warehouse refused a row of the staged lines: a data error, not a broken load.

    ``uri`` is the source file of the refused row when the warehouse says which row it was
    (PostgreSQL's COPY names the line); Redshift's COPY only points at ``sys_load_error_detail``.
    The message is the warehouse's first plain line.
    """

    def __init__(
        self,
        message: str,
        uri: str | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.uri = uri
        self.column = column
        self.value = value


STAGED_FLIGHTS: Final = "flights"
"""Where a load's staged lines go, under its staging location (see ``Staging``)."""


StagedValue = str | int | dt.date | None
"""A value of a staged line before it is written: text, a number, a date or NULL."""


def _staged_field(value: StagedValue) -> str:
    if value is None:
        return STAGED_NULL
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    for special in STAGED_ESCAPED:  # the escape itself first, so no escape is doubled
        value = value.replace(special, STAGED_ESCAPE + special)
    return value


def staged_line(values: Sequence[StagedValue]) -> str:
    """Values as one staged line (without its line feed), written as ``enrich_to_staged``
    writes a flight's: text escaped, numbers and dates plain, None as the staged NULL."""
    return STAGED_DELIMITER.join(_staged_field(v) for v in values)


def copy_statement(
    dialect: Dialect,
    table: Table = FLIGHT_PROCESSED,
    columns: Sequence[str] = LOAD_COLUMNS,
    *,
    staged_uri: str = "",
    iam_role: str = "",
) -> str:
    """The COPY of staged lines into ``table``'s ``columns``: S3 files (Redshift) or, on
    PostgreSQL, a file the server reads (``staged_uri`` a local path) or the client's stream
    (no ``staged_uri``).

    Both read the staged format with their defaults for it: tab-separated, NULL as ``\\N``.
    """
    target = f"{table.name} ({', '.join(columns)})"
    if dialect is Dialect.POSTGRES:
        source = _literal(staged_uri) if staged_uri else "STDIN"
        return f"COPY {target} FROM {source} WITH (FORMAT text)"
    if not staged_uri or not iam_role:
        raise ValueError("a Redshift COPY needs the staged S3 prefix and an IAM role")
    return (
        f"COPY {target} FROM {_literal(staged_uri)} IAM_ROLE {_literal(iam_role)} "
        # No NULL AS: with ESCAPE, Redshift documents its default null string, \N, to work.
        "DELIMITER '\\t' ESCAPE DATEFORMAT 'YYYY-MM-DD'"
    )


@dataclass(frozen=True)
class Staging:
    """Where one load's staged files are, as its dialect's COPY reads them.

    On Redshift, ``uri`` is the run's S3 prefix and each staged set (the lines, each manifest)
    has a folder of its own under it: a COPY from a prefix reads every object whose key starts
    with it, and no folder's name starts another's. On PostgreSQL the client sends each set
    itself (``COPY ... FROM STDIN``), so there is no ``uri``.
    """

    dialect: Dialect
    uri: str = ""
    iam_role: str = ""

    def location(self, name: str) -> str:
        """The prefix of the staged set ``name`` (``STAGED_FLIGHTS`` or a manifest's table)."""
        return f"{self.uri.rstrip('/')}/{name}/"

    def copy(self, table: Table, columns: Sequence[str], name: str) -> str:
        if self.dialect is Dialect.POSTGRES:
            return copy_statement(self.dialect, table, columns)
        return copy_statement(
            self.dialect, table, columns, staged_uri=self.location(name), iam_role=self.iam_role
        )


def _columns_of(table: Table, omitted: Sequence[str]) -> tuple[Column, ...]:
    return tuple(c for c in table.columns if c.name not in omitted)


# What a load knows of each file version it loads, and of each it set aside: the audit and
# reject records less what the warehouse adds (the job run, the row count, loaded_at).
_LOAD_FILES: Final = Table(
    "load_files",
    (
        *_columns_of(FLIGHT_LOAD_AUDIT, ("row_count", "job_run_id", LOADED_AT)),
        Column(
            "max_rows",
            ColumnType.INTEGER,
            description="At most this many rows load from the file, where the loader counted.",
        ),
    ),
)
_LOAD_REJECTS: Final = Table(
    "load_rejects", _columns_of(FLIGHT_LOAD_REJECTS, ("job_run_id", LOADED_AT))
)


@dataclass(frozen=True)
class Manifest:
    """Rows a load stages beside its lines and COPYs into a temporary table of its own
    transaction, so that no statement grows with the number of files: the Data API refuses a
    statement over 100 KB, which a row per file in the SQL passes at about 400 files."""

    table: Table
    rows: Sequence[Sequence[StagedValue]]
    create: str
    copy: str
    analyze: str
    """Statistics of the copied table, for the plans of the statements that read it."""

    @property
    def name(self) -> str:
        """The staged set's name, its table's."""
        return self.table.name

    def staged(self) -> list[str]:
        """The rows as staged lines."""
        return [staged_line(row) for row in self.rows]

    def in_order(self) -> list[str]:
        """Its statements: create the table, COPY the staged rows, analyze."""
        return [self.create, self.copy, self.analyze]


def _manifest(table: Table, rows: Sequence[Sequence[StagedValue]], staging: Staging) -> Manifest:
    create = create_table_sql(table, staging.dialect, temporary=True)
    copy = staging.copy(table, table.column_names, table.name)
    # PostgreSQL's COPY leaves a table without statistics and autovacuum never analyzes a
    # temporary one, so its planner would guess the manifest's size and match its days to the
    # loaded rows by a nested loop. Redshift's COPY analyzes a table it loads empty
    # (https://docs.aws.amazon.com/redshift/latest/dg/t_Analyzing_tables.html), and its
    # ANALYZE, which takes temporary tables, then skips a table with no row changed since
    # (https://docs.aws.amazon.com/redshift/latest/dg/r_ANALYZE.html): one definition serves
    # both.
    return Manifest(table, rows, create, copy, f"ANALYZE {table.name}")


@dataclass(frozen=True)
class RejectStatements:
    """What records a load's rejections: their manifest, then the INSERT from it."""

    manifest: Manifest
    insert: str

    def in_order(self) -> list[str]:
        return [*self.manifest.in_order(), self.insert]


@dataclass(frozen=True)
class LoadStatements:
    """The statements of one load transaction, in order; their number and each one's size
    are the same whatever the number of files (the Data API takes at most 40 statements in a
    batch, each at most 100 KB)."""

    files: Manifest
    """The file versions loaded: their days, and what their audit rows record."""
    delete_days: str
    copy: str
    insert_audit: str
    """The audit rows, each day's rows counted in the table."""
    insert_proven_audit: str
    """The audit rows, each file's ``max_rows`` taken as its rows: only when they are proven
    (the twin's ``rows_proven``)."""
    rows_loaded: str
    """After the commit: (source_key, row_count) of every file this load audited."""
    rejects: RejectStatements | None = None
    """The reject records of the files set aside before this load, committed with it."""

    @property
    def manifests(self) -> list[Manifest]:
        return [self.files] + ([self.rejects.manifest] if self.rejects else [])

    def in_order(self) -> list[str]:
        """The transaction's statements, the audit counted in the table; ``rows_loaded`` runs
        after it commits."""
        rejects = self.rejects.in_order() if self.rejects else []
        return [*self.files.in_order(), self.delete_days, self.copy, self.insert_audit, *rejects]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _of_files(files: Sequence[SourceFile]) -> str:
    """The condition on ``flight_date`` that selects the files' days: the range as literals,
    which lets Redshift skip the blocks outside it (the table is sorted by day), and the days
    themselves from the manifest."""
    days = sorted(f.flight_date for f in files)
    return (
        f"flight_date BETWEEN DATE '{days[0].isoformat()}' AND DATE '{days[-1].isoformat()}' "
        f"AND flight_date IN (SELECT flight_date FROM {_LOAD_FILES.name})"
    )


def load_statements(
    files: Sequence[SourceFile],
    job_run_id: str,
    staging: Staging,
    rejections: Sequence[Rejection] = (),
    max_rows: Mapping[str, int] | None = None,
) -> LoadStatements:
    """The statements that replace the files' days with the copied rows and audit each file,
    recording ``rejections`` in the same transaction. ``max_rows``: by source key, the most
    rows each file can load, where the loader counted its lines (the twin does)."""
    if not files:
        raise ValueError("a load needs at least one file")
    by_day: dict[dt.date, str] = {}
    for f in files:
        other = by_day.setdefault(f.flight_date, f.uri)
        if other != f.uri:
            raise ValueError(
                f"{other} and {f.uri} both carry {f.flight_date}: a load replaces whole days, "
                "so it takes one file per day; load them in separate runs"
            )
    bounds = max_rows or {}
    manifest = _manifest(
        _LOAD_FILES,
        [
            (
                f.key,
                f.version,
                f.sha256,
                f.flight_date,
                _recorded(f.upload_key),
                _recorded(f.upload_version),
                bounds.get(f.key),
            )
            for f in files
        ],
        staging,
    )
    return LoadStatements(
        files=manifest,
        delete_days=f"DELETE FROM {FLIGHT_PROCESSED.name} WHERE {_of_files(files)}",
        copy=staging.copy(FLIGHT_PROCESSED, LOAD_COLUMNS, STAGED_FLIGHTS),
        insert_audit=_audit_insert(files, job_run_id, proven=False),
        insert_proven_audit=_audit_insert(files, job_run_id, proven=True),
        rows_loaded=(
            f"SELECT source_key, row_count FROM {FLIGHT_LOAD_AUDIT.name} "
            f"WHERE job_run_id = {_literal(job_run_id)}"
        ),
        rejects=reject_statements(rejections, job_run_id, staging) if rejections else None,
    )


def _recorded(text: str | None) -> str | None:
    """A text cut to whole characters within its column's width, counted in bytes as on
    Redshift (the reject table's text columns have the contract's default width)."""
    return None if text is None else text.encode()[:TEXT_WIDTH].decode(errors="ignore")


def reject_statements(
    rejections: Sequence[Rejection], job_run_id: str, staging: Staging
) -> RejectStatements:
    """What records one reject record per rejected file version not recorded yet."""
    if not rejections:
        raise ValueError("no rejections to record")
    rows = [
        (
            _recorded(r.file.upload_key),
            _recorded(r.file.upload_version),
            r.file.key,
            r.file.version,
            r.file.sha256,
            r.file.flight_date,
            _recorded(r.reason),
            r.line,
            _recorded(r.column),
            _recorded(r.value),
        )
        for r in rejections
    ]
    manifest = _manifest(_LOAD_REJECTS, rows, staging)
    columns = _LOAD_REJECTS.column_names
    insert = (
        f"INSERT INTO {FLIGHT_LOAD_REJECTS.name} ({', '.join(columns)}, job_run_id)\n"
        f"SELECT {', '.join(f'm.{c}' for c in columns)}, {_literal(job_run_id)}\n"
        f"FROM {_LOAD_REJECTS.name} m\n"
        # A Glue retry re-reads files whose bookmark was never committed: record each once.
        f"WHERE NOT EXISTS (SELECT 1 FROM {FLIGHT_LOAD_REJECTS.name} r\n"
        "    WHERE r.validated_key = m.validated_key AND r.validated_version = m.validated_version)"
    )
    return RejectStatements(manifest, insert)


def _audit_insert(files: Sequence[SourceFile], job_run_id: str, *, proven: bool) -> str:
    """The INSERT of one audit row per file version not audited yet.

    ``proven``: each file's rows are its ``max_rows`` in the manifest, the bound its loader
    counted (the twin, which proves them); otherwise each day's rows are counted in the table,
    which scans every row the load wrote.
    """
    audit_columns = [c for c in FLIGHT_LOAD_AUDIT.column_names if c != LOADED_AT]
    if proven:
        row_count, counted = "m.max_rows", ""
    else:
        row_count = "COALESCE(c.row_count, 0)"
        # Count per day first (one file per day, checked by load_statements): grouping by the
        # date is half the work of grouping by the URI, and joining the manifest to every
        # loaded row before counting would drag the whole load through a sort.
        counted = (
            "LEFT JOIN (\n"
            f"    SELECT flight_date, COUNT(*) AS row_count FROM {FLIGHT_PROCESSED.name}\n"
            f"    WHERE {_of_files(files)} GROUP BY flight_date\n"
            ") c ON c.flight_date = m.flight_date\n"
        )
    return (
        f"INSERT INTO {FLIGHT_LOAD_AUDIT.name} ({', '.join(audit_columns)})\n"
        "SELECT m.source_key, m.source_version, m.sha256, m.flight_date, "
        f"{row_count}, {_literal(job_run_id)}, m.upload_key, m.upload_version\n"
        f"FROM {_LOAD_FILES.name} m\n"
        f"{counted}"
        # A Glue retry re-reads files whose bookmark was never committed: audit each version once.
        f"WHERE NOT EXISTS (SELECT 1 FROM {FLIGHT_LOAD_AUDIT.name} a\n"
        "    WHERE a.source_key = m.source_key AND a.source_version = m.source_version)"
    )


def staged_values(line: str) -> dict[str, str | None]:
    """A staged line's values by warehouse column, read the way PostgreSQL's COPY reads them
    (its text format): split at unescaped delimiters, escapes removed, ``\\N`` as None.

    The load reads it from the line PostgreSQL's COPY context names, to say which file and
    value it refused. The twin's Redshift COPY reads staged objects with a reader of its own
    (``pipeline.local.redshift_sql``), on purpose: that one reads as Redshift does, under the
    options its COPY names, and there a text value of exactly ``\\N`` (staged escaped) is
    NULL, where here it is that text; and the Glue side never imports the twin."""
    values: list[str | None] = []
    raw: list[str] = []
    value: list[str] = []
    characters = iter(line + STAGED_DELIMITER)
    for character in characters:
        if character == STAGED_ESCAPE:
            escaped = next(characters, "")
            raw += (character, escaped)
            value.append(escaped)
        elif character == STAGED_DELIMITER:
            text = "".join(raw)
            values.append(None if text == STAGED_NULL else "".join(value))
            raw, value = [], []
        else:
            raw.append(character)
            value.append(character)
    if len(values) != len(LOAD_COLUMNS):
        raise ValueError(f"a staged line has {len(values)} fields, not {len(LOAD_COLUMNS)}")
    return dict(zip(LOAD_COLUMNS, values, strict=True))


def _day(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def day_rows_sql(day: dt.date) -> str:
    """A day's rows in ``flight_processed``, and the rows its load audit records for it: a
    day is loaded and queryable when both are what its file held."""
    return (
        f"SELECT (SELECT COUNT(*) FROM {FLIGHT_PROCESSED.name} WHERE flight_date = {_day(day)}), "
        f"(SELECT COALESCE(SUM(row_count), 0) FROM {FLIGHT_LOAD_AUDIT.name} "
        f"WHERE flight_date = {_day(day)})"
    )


def remove_day_statements(day: dt.date) -> list[str]:
    """What removes a day from the warehouse: its rows, its audit rows and its reject
    records, in one transaction (one batch on the Data API)."""
    return [
        f"DELETE FROM {table.name} WHERE flight_date = {_day(day)}" for table in WAREHOUSE_TABLES
    ]
