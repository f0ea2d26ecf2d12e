"""The data contract: the daily flight file, the airport dimension and the warehouse tables.

Everything that knows a column name, type or width is rendered from the definitions here: the
Spark read schema (``jobs.flights``), the warehouse DDL (below) and the expectation suites
(``quality.suites``), which refuse at the gate every value the warehouse would refuse at load.
This module imports nothing heavy, so the CLI, the Glue jobs and the CDK app can all use it.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class ColumnType(StrEnum):
    """Logical column types; each renderer maps them to its own system."""

    STRING = "string"
    INTEGER = "integer"
    DATE = "date"
    TIMESTAMP_UTC = "timestamp_utc"

    @property
    def bounds(self) -> tuple[int, int] | None:
        """The least and the greatest value of an integer type, or None for other types.

        The warehouse's INTEGER is 32-bit on Redshift and PostgreSQL alike (and so is Spark's
        IntegerType, which reads the validated files).
        """
        return (-(2**31), 2**31 - 1) if self is ColumnType.INTEGER else None


TEXT_WIDTH: Final = 256
"""The width of a text column that names none: VARCHAR(256)."""


@dataclass(frozen=True)
class Column:
    """A column of a file or table.

    ``source`` is the header name in the incoming CSV (matched case-insensitively); columns that
    the pipeline derives (flight_date, source_file, loaded_at) have none.

    ``width`` is, for a text column, the most bytes of UTF-8 a value may take: its
    ``VARCHAR(width)``. Redshift counts a VARCHAR in bytes, PostgreSQL in characters; bytes is
    the stricter rule, so a value within it fits both. Other types have no width.
    """

    name: str
    type: ColumnType
    source: str | None = None
    nullable: bool = True
    description: str = ""
    width: int | None = None

    def __post_init__(self) -> None:
        if self.type is ColumnType.STRING and self.width is None:
            # Frozen: set the default through object, once, at construction.
            object.__setattr__(self, "width", TEXT_WIDTH)
        elif self.type is not ColumnType.STRING and self.width is not None:
            raise ValueError(f"{self.name}: only a text column has a width")


@dataclass(frozen=True)
class FileContract:
    """An incoming CSV file: the columns found by header name, in canonical order."""

    name: str
    columns: tuple[Column, ...]

    @property
    def headers(self) -> tuple[str, ...]:
        """The canonical header, in contract order."""
        return tuple(c.source for c in self.columns if c.source is not None)

    def column_for_header(self, header: str) -> Column | None:
        """The contract column a header names, matched case-insensitively, or None if extra."""
        wanted = header.strip().lower()
        for column in self.columns:
            if column.source is not None and column.source.lower() == wanted:
                return column
        return None


@dataclass(frozen=True)
class Table:
    """A warehouse table."""

    name: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


DAILY_FLIGHTS: Final = FileContract(
    name="daily_flights",
    columns=(
        Column("carrier", ColumnType.STRING, "Carrier", nullable=False),
        Column("origin_airport_id", ColumnType.INTEGER, "OriginAirportID", nullable=False),
        Column("dest_airport_id", ColumnType.INTEGER, "DestAirportID", nullable=False),
        Column(
            "dep_delay",
            ColumnType.INTEGER,
            "DepDelay",
            description="Minutes; empty when the flight was cancelled or diverted.",
        ),
        Column(
            "arr_delay",
            ColumnType.INTEGER,
            "ArrDelay",
            description="Minutes; empty when the flight was cancelled or diverted.",
        ),
    ),
)

AIRPORTS: Final = FileContract(
    name="airport_codes",
    columns=(
        Column("airport_id", ColumnType.INTEGER, "airport_id", nullable=False),
        Column("city", ColumnType.STRING, "city"),
        Column("state", ColumnType.STRING, "state"),
        Column("name", ColumnType.STRING, "name"),
    ),
)

AIRPORT_DETAILS: Final = ("city", "state", "name")
"""Dimension columns copied onto each flight, once for the origin and once for the destination."""


# The warehouse columns fed from a file are that file's columns under their warehouse names, so
# a column's type, width and nullability are written once and the gate checks the very limits
# the warehouse enforces.


def _fed_by(contract: FileContract, name: str, renamed: str | None = None) -> Column:
    column = next(c for c in contract.columns if c.name == name)
    return dataclasses.replace(column, name=renamed or name, source=None)


def _airport_columns(role: str) -> tuple[Column, ...]:
    return tuple(
        dataclasses.replace(
            _fed_by(AIRPORTS, detail, f"{role}_{detail}"), description=f"{role} airport {detail}"
        )
        for detail in AIRPORT_DETAILS
    )


FLIGHT_PROCESSED: Final = Table(
    name="flight_processed",
    columns=(
        Column("flight_date", ColumnType.DATE, nullable=False, description="From the file name."),
        _fed_by(DAILY_FLIGHTS, "carrier"),
        _fed_by(DAILY_FLIGHTS, "origin_airport_id"),
        *_airport_columns("origin"),
        _fed_by(DAILY_FLIGHTS, "dest_airport_id"),
        *_airport_columns("dest"),
        _fed_by(DAILY_FLIGHTS, "dep_delay"),
        _fed_by(DAILY_FLIGHTS, "arr_delay"),
        Column("source_file", ColumnType.STRING, nullable=False, description="s3:// URI."),
        Column("loaded_at", ColumnType.TIMESTAMP_UTC, nullable=False),
    ),
)

LOADED_AT: Final = "loaded_at"
"""Set by the warehouse at commit time (the transaction's timestamp), never shipped per row."""

# What the load records of each file version it loaded or set aside, each column defined once.
# A run knows its upload (the S3 event names the key and the version); the load knows the
# validated copy it read. On AWS they come from the copy's HEAD (its metadata and the checksum
# S3 keeps), so the load never fetches a copy the validation job wrote to describe it.
UPLOAD_KEY: Final = Column(
    "upload_key",
    ColumnType.STRING,
    description="The uploaded key the copy was promoted from: the raw prefix and the copy's name.",
)
UPLOAD_VERSION: Final = Column(
    "upload_version",
    ColumnType.STRING,
    description=(
        "The upload's version id: the copy's source-version metadata, which the validation job "
        "writes; NULL for a copy no upload names (one written by hand)."
    ),
)
VALIDATED_KEY: Final = Column(
    "validated_key", ColumnType.STRING, nullable=False, description="The validated copy's key."
)
VALIDATED_VERSION: Final = Column(
    "validated_version",
    ColumnType.STRING,
    nullable=False,
    description=(
        "The version id of the copy the load read. Spark reads an S3 object's current version "
        "and cannot be pinned to one, so on AWS the load reads the version it listed only if that "
        "version is still the current one once Spark has read it, and fails uncommitted (the "
        "next run retries) otherwise; the twin reads its cached copy of the version itself."
    ),
)
VALIDATED_SHA256: Final = Column(
    "sha256",
    ColumnType.STRING,
    nullable=False,
    description=(
        "The SHA-256 of that version's bytes, in hex: on AWS the SHA-256 checksum S3 keeps of the "
        "copy (the validation job has S3 compute it as it writes the copy; a copy written "
        "without one is hashed by reading it); the twin hashes its cached copy."
    ),
)

FLIGHT_LOAD_AUDIT: Final = Table(
    name="flight_load_audit",
    columns=(
        # The audit calls the validated copy its source.
        dataclasses.replace(VALIDATED_KEY, name="source_key"),
        dataclasses.replace(VALIDATED_VERSION, name="source_version"),
        VALIDATED_SHA256,
        Column("flight_date", ColumnType.DATE, nullable=False),
        Column(
            "row_count",
            ColumnType.INTEGER,
            nullable=False,
            description="The rows the load wrote from the copy.",
        ),
        Column("job_run_id", ColumnType.STRING, nullable=False),
        Column("loaded_at", ColumnType.TIMESTAMP_UTC, nullable=False),
        # Last, where a warehouse created before they existed gains them (ADD COLUMN).
        UPLOAD_KEY,
        UPLOAD_VERSION,
    ),
)
"""One row per validated file version a load wrote, committed with its rows; a run finds its
own upload's load by the upload's key and version."""

FLIGHT_LOAD_REJECTS: Final = Table(
    name="flight_load_rejects",
    columns=(
        UPLOAD_KEY,
        UPLOAD_VERSION,
        VALIDATED_KEY,
        VALIDATED_VERSION,
        VALIDATED_SHA256,
        Column("flight_date", ColumnType.DATE, nullable=False),
        Column("reason", ColumnType.STRING, nullable=False, description="One plain line."),
        Column("line", ColumnType.INTEGER, description="Of the validated copy, header = 1."),
        Column("column_name", ColumnType.STRING, description="The file's header name."),
        Column("value", ColumnType.STRING, description="As written, shortened if long."),
        Column("job_run_id", ColumnType.STRING, nullable=False),
        Column(
            "loaded_at",
            ColumnType.TIMESTAMP_UTC,
            nullable=False,
            description="The commit of the load that set the file aside.",
        ),
    ),
)
"""One row per validated file version a load set aside: what the warehouse (or Spark) refused
in it. It commits with the load that went on without the file, and it is how the version's own
run learns that outcome."""

# Daily files are named after the flight date they carry: ``2024-01-31.csv``.
DAILY_FILE_NAME: Final = re.compile(r"(\d{4}-\d{2}-\d{2})\.csv")


# Metadata on a validated (promoted) copy: which upload it came from, to order versions of one
# day and to tell which upload a copy is. SOURCE_KEY is the upload's key, percent-encoded (S3
# metadata is US-ASCII over REST). SOURCE_SHA256 is the upload's digest, the bytes the gate
# read, not the copy's (a normalized copy differs from its upload).
SOURCE_VERSION: Final = "source-version"
SOURCE_KEY: Final = "source-key"
SOURCE_MODIFIED: Final = "source-last-modified"
SOURCE_SHA256: Final = "source-sha256"


class NotADailyFileError(ValueError):
    """A key or path does not name a daily file (``YYYY-MM-DD.csv`` with a real date)."""


def flight_date_of(name: str) -> dt.date:
    """The flight date a daily file's name carries; raises NotADailyFileError otherwise."""
    base = name.rsplit("/", 1)[-1]
    match = DAILY_FILE_NAME.fullmatch(base)
    if match is None:
        raise NotADailyFileError(
            f"{name!r} is not a daily file: the name must be YYYY-MM-DD.csv, e.g. 2024-01-31.csv"
        )
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError as exc:
        raise NotADailyFileError(f"{name!r} names no real date ({exc})") from exc


def header_names(line: str) -> tuple[str, ...]:
    """The column names of a CSV header line: quotes honoured, a byte-order mark and the
    blanks around each name removed."""
    row = next(csv.reader([line.lstrip("\ufeff").rstrip("\r\n")], skipinitialspace=True), [])
    return tuple(name.strip() for name in row)


class Dialect(StrEnum):
    """SQL dialects of the warehouse: Redshift on AWS, PostgreSQL in the local twin."""

    POSTGRES = "postgres"
    REDSHIFT = "redshift"


_SQL_TYPES: Final = {
    ColumnType.STRING: "VARCHAR",  # with the column's width
    ColumnType.INTEGER: "INTEGER",  # the range of ColumnType.bounds
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP_UTC: "TIMESTAMPTZ",
}


def _sql_type(column: Column) -> str:
    sql = _SQL_TYPES[column.type]
    return sql if column.width is None else f"{sql}({column.width})"


# One timestamp per transaction, so every row, audit and reject record of one load carries the
# same loaded_at: PostgreSQL's now() is the transaction's start, and so is Redshift's SYSDATE
# (https://docs.aws.amazon.com/redshift/latest/dg/r_SYSDATE.html); Redshift's GETDATE() is the
# current statement's (https://docs.aws.amazon.com/redshift/latest/dg/r_GETDATE.html), which
# would stamp the COPY and the audit INSERT of one load differently.
_NOW: Final = {Dialect.POSTGRES: "now()", Dialect.REDSHIFT: "SYSDATE"}


def _column_sql(column: Column, dialect: Dialect) -> str:
    sql = f"{column.name} {_sql_type(column)}"
    if column.name == LOADED_AT:
        sql += f" DEFAULT {_NOW[dialect]}"
    return sql if column.nullable else f"{sql} NOT NULL"


def add_column_sql(table: Table, column: Column, dialect: Dialect) -> str:
    """``ALTER TABLE ... ADD COLUMN``: a nullable column the contract added to a table that
    exists already (its earlier rows hold NULL there)."""
    if not column.nullable:
        raise ValueError(f"{table.name}.{column.name} is NOT NULL: its earlier rows have no value")
    return f"ALTER TABLE {table.name} ADD COLUMN {_column_sql(column, dialect)}"


def create_table_sql(table: Table, dialect: Dialect, *, temporary: bool = False) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a contract table in the given dialect; or, when
    ``temporary``, ``CREATE TEMPORARY TABLE``: a table of the session alone, which both
    dialects drop when the session ends."""
    body = ",\n".join(f"    {_column_sql(column, dialect)}" for column in table.columns)
    if temporary:
        return f"CREATE TEMPORARY TABLE {table.name} (\n{body}\n)"
    # Redshift keeps rows sorted by the key, which makes the per-day DELETE a range scan.
    suffix = (
        "\nSORTKEY (flight_date)"
        if dialect is Dialect.REDSHIFT and "flight_date" in table.column_names
        else ""
    )
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n{body}\n){suffix}"


WAREHOUSE_TABLES: Final = (FLIGHT_PROCESSED, FLIGHT_LOAD_AUDIT, FLIGHT_LOAD_REJECTS)
"""Every table of the warehouse, in the order they are created."""


def warehouse_ddl(dialect: Dialect) -> list[str]:
    """Every statement that creates the warehouse tables, idempotently."""
    return [create_table_sql(t, dialect) for t in WAREHOUSE_TABLES]
