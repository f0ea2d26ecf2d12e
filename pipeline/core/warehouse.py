"""The warehouse load, as SQL shared by Redshift (AWS) and PostgreSQL (the local twin).

A load replaces whole days in one transaction:

1. ``DELETE`` every row of the days being loaded;
2. ``COPY`` the new rows straight into ``flight_processed`` (no staging table inside the
   warehouse, so the data is written once);
3. ``INSERT`` one ``flight_load_audit`` row per file version, with the rows it loaded: counted
   in the table, or given when the caller knows them exactly (the twin's line counts can prove
   them); and one ``flight_load_rejects`` row per file version the load set aside
   (``Rejection``).

The transaction commits all three or none, so a retried, duplicated or killed run never leaves
a day half-loaded or loaded twice. Only the ``COPY`` differs between the dialects: Redshift
reads staged files from S3; PostgreSQL reads staged files from the local disk when it is the
twin's own server, or else a stream of them from the client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.core.contract import (
    FLIGHT_LOAD_AUDIT,
    FLIGHT_LOAD_REJECTS,
    FLIGHT_PROCESSED,
    LOADED_AT,
    TEXT_WIDTH,
    Dialect,
)

LOAD_COLUMNS: tuple[str, ...] = tuple(c for c in FLIGHT_PROCESSED.column_names if c != LOADED_AT)
"""The columns a load ships, in this order; loaded_at is stamped by the warehouse at commit."""

# The staged rows: one text line per row, fields in LOAD_COLUMNS order. It is the one format
# both COPYs read alike: PostgreSQL's text format and Redshift's DELIMITER '\t' ESCAPE. Inside
# a text value a backslash goes before each backslash, tab, line feed and carriage return (the
# character itself follows it, never a letter: Redshift would load `\n` as `n`); numbers and
# dates are plain; NULL is `\N`. PostgreSQL parses it in about a quarter less time than CSV
# with every text value quoted. One value differs between the two: Redshift loads a text value
# of exactly `\N` (staged escaped, `\\N`) as NULL, as its COPY documents.
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


@dataclass(frozen=True)
class LoadStatements:
    """The statements of one load transaction, in order, around the dialect's COPY."""

    delete_days: str
    copy: str
    insert_audit: str
    rows_loaded: str
    """After the commit: (source_key, row_count) of every file this load audited."""
    insert_rejects: str | None = None
    """The reject records of the files set aside before this load, committed with it."""

    def in_order(self) -> list[str]:
        """The transaction's statements; ``rows_loaded`` runs after it commits."""
        rejects = [self.insert_rejects] if self.insert_rejects else []
        return [self.delete_days, self.copy, self.insert_audit, *rejects]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _date_literal(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _in_days(files: Sequence[SourceFile]) -> str:
    days = sorted({f.flight_date for f in files})
    return f"flight_date IN ({', '.join(_date_literal(d) for d in days)})"


def copy_statement(dialect: Dialect, *, staged_uri: str = "", iam_role: str = "") -> str:
    """The COPY of staged lines: S3 files (Redshift) or, on PostgreSQL, a file the server reads
    (``staged_uri`` a local path) or the client's stream (no ``staged_uri``).

    Both read the staged format with their defaults for it: tab-separated, NULL as ``\\N``.
    """
    target = f"{FLIGHT_PROCESSED.name} ({', '.join(LOAD_COLUMNS)})"
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


def load_statements(
    files: Sequence[SourceFile],
    job_run_id: str,
    copy: str,
    rejections: Sequence[Rejection] = (),
) -> LoadStatements:
    """The statements that replace the files' days with the copied rows and audit each file,
    recording ``rejections`` in the same transaction."""
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
    delete = f"DELETE FROM {FLIGHT_PROCESSED.name} WHERE {_in_days(files)}"
    insert = audit_insert(files, job_run_id)
    rows_loaded = (
        f"SELECT source_key, row_count FROM {FLIGHT_LOAD_AUDIT.name} "
        f"WHERE job_run_id = {_literal(job_run_id)}"
    )
    rejects = reject_insert(rejections, job_run_id) if rejections else None
    return LoadStatements(delete, copy, insert, rows_loaded, rejects)


# The reject table's text columns have the contract's default width, counted in bytes on
# Redshift.
_RECORDED_BYTES = TEXT_WIDTH


def _recorded(text: str | None) -> str:
    """A text as a literal that fits its column: cut to whole characters within the width."""
    if text is None:
        return f"CAST(NULL AS VARCHAR({TEXT_WIDTH}))"  # a bare NULL has no type in a UNION
    cut = text.encode()[:_RECORDED_BYTES].decode(errors="ignore")
    return _literal(cut)


def reject_insert(rejections: Sequence[Rejection], job_run_id: str) -> str:
    """The INSERT of one reject record per rejected file version not recorded yet."""
    if not rejections:
        raise ValueError("no rejections to record")
    manifest = "\n    UNION ALL ".join(
        "SELECT "
        + ", ".join(
            (
                f"{_recorded(r.file.upload_key)} AS upload_key",
                f"{_recorded(r.file.upload_version)} AS upload_version",
                f"{_literal(r.file.key)} AS validated_key",
                f"{_literal(r.file.version)} AS validated_version",
                f"{_literal(r.file.sha256)} AS sha256",
                f"{_date_literal(r.file.flight_date)} AS flight_date",
                f"{_recorded(r.reason)} AS reason",
                f"{'CAST(NULL AS INTEGER)' if r.line is None else int(r.line)} AS line",
                f"{_recorded(r.column)} AS column_name",
                f"{_recorded(r.value)} AS value",
            )
        )
        for r in rejections
    )
    columns = [c for c in FLIGHT_LOAD_REJECTS.column_names if c not in ("job_run_id", LOADED_AT)]
    return (
        f"INSERT INTO {FLIGHT_LOAD_REJECTS.name} ({', '.join(columns)}, job_run_id)\n"
        f"SELECT {', '.join(f'm.{c}' for c in columns)}, {_literal(job_run_id)}\n"
        f"FROM (\n    {manifest}\n) m\n"
        # A Glue retry re-reads files whose bookmark was never committed: record each once.
        f"WHERE NOT EXISTS (SELECT 1 FROM {FLIGHT_LOAD_REJECTS.name} r\n"
        "    WHERE r.validated_key = m.validated_key AND r.validated_version = m.validated_version)"
    )


def audit_insert(
    files: Sequence[SourceFile], job_run_id: str, row_counts: Mapping[str, int] | None = None
) -> str:
    """The INSERT of one audit row per file version not audited yet.

    ``row_counts`` gives each file's loaded rows by source key when the caller knows them
    exactly (the twin proves them from its line counts); without it, each day's rows are
    counted in the table, which scans every row the load wrote.
    """
    # A manifest of literal SELECTs works on both dialects (Redshift has no VALUES in FROM).
    manifest = "\n    UNION ALL ".join(
        f"SELECT {_literal(f.key)} AS source_key, {_literal(f.version)} AS source_version, "
        f"{_literal(f.sha256)} AS sha256, {_date_literal(f.flight_date)} AS flight_date"
        + ("" if row_counts is None else f", {row_counts[f.key]} AS row_count")
        for f in files
    )
    audit_columns = [c for c in FLIGHT_LOAD_AUDIT.column_names if c != LOADED_AT]
    if row_counts is None:
        row_count = "COALESCE(c.row_count, 0)"
        # Count per day first (one file per day, checked by load_statements): grouping by the
        # date is half the work of grouping by the URI, and joining the manifest to every
        # loaded row before counting would drag the whole load through a sort.
        counted = (
            "LEFT JOIN (\n"
            f"    SELECT flight_date, COUNT(*) AS row_count FROM {FLIGHT_PROCESSED.name}\n"
            f"    WHERE {_in_days(files)} GROUP BY flight_date\n"
            ") c ON c.flight_date = m.flight_date\n"
        )
    else:
        row_count, counted = "m.row_count", ""
    return (
        f"INSERT INTO {FLIGHT_LOAD_AUDIT.name} ({', '.join(audit_columns)})\n"
        "SELECT m.source_key, m.source_version, m.sha256, m.flight_date, "
        f"{row_count}, {_literal(job_run_id)}\n"
        f"FROM (\n    {manifest}\n) m\n"
        f"{counted}"
        # A Glue retry re-reads files whose bookmark was never committed: audit each version once.
        f"WHERE NOT EXISTS (SELECT 1 FROM {FLIGHT_LOAD_AUDIT.name} a\n"
        "    WHERE a.source_key = m.source_key AND a.source_version = m.source_version)"
    )


def staged_values(line: str) -> dict[str, str | None]:
    """A staged line's values by warehouse column, read the way COPY reads them: split at
    unescaped delimiters, escapes removed, ``\\N`` as None."""
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
