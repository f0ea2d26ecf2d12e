"""Pure PySpark for the flight ETL, shared by the Glue job and the local runtime.

DataFrames in, DataFrames out; the only I/O is ``spark.read`` of paths the caller chose.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.core.contract import (
    AIRPORT_DETAILS,
    AIRPORTS,
    DAILY_FLIGHTS,
    FLIGHT_PROCESSED,
    ColumnType,
    FileContract,
)
from pipeline.core.warehouse import (
    LOAD_COLUMNS,
    STAGED_DELIMITER,
    STAGED_ESCAPE,
    STAGED_ESCAPED,
    STAGED_NULL,
)

_SPARK_TYPES: Mapping[ColumnType, T.DataType] = {
    ColumnType.STRING: T.StringType(),
    ColumnType.INTEGER: T.IntegerType(),
    ColumnType.DATE: T.DateType(),
    ColumnType.TIMESTAMP_UTC: T.TimestampType(),
}

SOURCE_FILE = "source_file"
FLIGHT_DATE = "flight_date"
_LOAD_TYPES: Mapping[str, ColumnType] = {c.name: c.type for c in FLIGHT_PROCESSED.columns}

STAGED_LINE = "line"
"""The one column of the staged rows: a line in ``LOAD_COLUMNS`` order, ready for COPY (the
staged format of ``pipeline.core.warehouse``)."""


class MissingColumnError(ValueError):
    """A file's header lacks a column the contract requires."""


def read_schema(contract: FileContract, header: Sequence[str]) -> T.StructType:
    """The Spark read schema for a file with this header, in the file's own column order.

    Contract columns get their contract type and canonical name; extra columns are read as
    strings (and dropped later), so a file with columns in any order or with additions parses.
    """
    fields = []
    for position, name in enumerate(header):
        column = contract.column_for_header(name)
        if column is None:
            fields.append(T.StructField(f"_extra_{position}", T.StringType()))
        else:
            fields.append(T.StructField(column.name, _SPARK_TYPES[column.type]))
    found = {f.name for f in fields}
    missing = [c.source for c in contract.columns if c.source and c.name not in found]
    if missing:
        raise MissingColumnError(
            f"header {list(header)} lacks required column(s) {missing}; "
            f"expected {list(contract.headers)} (any order, any case)"
        )
    return T.StructType(fields)


def read_csv_files(
    spark: SparkSession,
    contract: FileContract,
    headers_by_path: Mapping[str, Sequence[str]],
) -> DataFrame:
    """Read CSV files whose headers may differ in order and case, as one DataFrame.

    Files sharing a header are read together (usually all of them: one scan); the result has the
    contract's columns in contract order plus ``source_file``, each row's file as Spark names
    it (an ``s3://`` object's URI; a local file's ``file:`` URI). Malformed values fail the
    read (FAILFAST) rather than turning into silent NULLs.
    """
    if not headers_by_path:
        raise ValueError("no files to read")
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path, header in headers_by_path.items():
        groups[tuple(header)].append(path)
    names = [c.name for c in contract.columns]
    frames = [
        spark.read.csv(
            paths,
            schema=read_schema(contract, header),
            header=True,
            mode="FAILFAST",
            enforceSchema=True,
            # RFC 4180: a quote inside a quoted field is doubled (Spark's default is a backslash).
            escape='"',
        ).select(*names, F.input_file_name().alias(SOURCE_FILE))
        for header, paths in sorted(groups.items())
    ]
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def read_daily_files(
    spark: SparkSession, headers_by_path: Mapping[str, Sequence[str]]
) -> DataFrame:
    """Daily flight files as contract columns plus ``source_file``."""
    return read_csv_files(spark, DAILY_FLIGHTS, headers_by_path)


def read_airports(spark: SparkSession, path: str, header: Sequence[str]) -> DataFrame:
    """The airport dimension as contract columns."""
    return read_csv_files(spark, AIRPORTS, {path: header}).drop(SOURCE_FILE)


@dataclass(frozen=True)
class FileOrigin:
    """Where a file Spark read came from: the object it is and the day it carries."""

    uri: str
    """The object's ``s3://`` URI. Spark names each row's file by the URI it was read at, so the
    rows of an object read at this URI carry it in ``source_file`` (a daily file's key holds no
    character Spark would escape)."""
    flight_date: dt.date


def literal_rows(
    spark: SparkSession, rows: Sequence[Mapping[str, object]], schema: str
) -> DataFrame:
    """A small DataFrame of ``rows`` (``schema`` is their struct's DDL), parsed in the JVM.

    One JSON literal: a DataFrame from a Python list would run Python workers before the load's
    first task, and a literal array of that many structs would take Catalyst seconds to plan for
    a year of files.
    """
    return spark.range(1).select(
        F.inline(F.from_json(F.lit(json.dumps(rows)), f"array<struct<{schema}>>"))
    )


def unique_airports(airports: DataFrame) -> DataFrame:
    """One row per airport_id, so a duplicated id can never multiply flights.

    Which duplicate wins is deterministic (lowest name, city, state); the dimension's quality
    gate is where duplicates are reported.
    """
    order = Window.partitionBy("airport_id").orderBy(
        *(F.col(d).asc_nulls_last() for d in AIRPORT_DETAILS)
    )
    return (
        airports.withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def staged_field(value: Column, kind: ColumnType) -> Column:
    """A value as one field of a staged line, the way both warehouses' COPY reads it.

    Text gets a backslash before each backslash, tab, line feed and carriage return, so every
    character loads verbatim and an empty string stays empty; numbers and dates are plain
    text. NULL stays NULL here and becomes ``\\N`` when the line is joined.
    """
    if kind is ColumnType.STRING:
        for special in STAGED_ESCAPED:  # the escape itself first, so no escape is doubled
            value = F.replace(value, F.lit(special), F.lit(STAGED_ESCAPE + special))
        return value
    return value.cast(T.StringType())


def _file_fields(spark: SparkSession, origins: Sequence[FileOrigin]) -> DataFrame:
    """One row per file: its URI as the rows name it, and its flight date and URI as staged
    fields."""
    rows = [
        {"_uri": o.uri, FLIGHT_DATE: o.flight_date.isoformat(), SOURCE_FILE: o.uri} for o in origins
    ]
    schema = f"_uri: string, {FLIGHT_DATE}: date, {SOURCE_FILE}: string"
    files = literal_rows(spark, rows, schema)
    return files.select(
        "_uri",
        *(staged_field(F.col(c), _LOAD_TYPES[c]).alias(c) for c in (FLIGHT_DATE, SOURCE_FILE)),
    )


def _staged_or_null(value: Column) -> Column:
    """A staged field, or the staged NULL; ``concat_ws`` would drop a NULL field altogether."""
    return F.coalesce(value, F.lit(STAGED_NULL))


def _detail_columns(role: str) -> tuple[str, ...]:
    """The warehouse columns of one side's airport details, which the contract keeps adjacent."""
    names = tuple(f"{role}_{detail}" for detail in AIRPORT_DETAILS)
    first = LOAD_COLUMNS.index(names[0])
    if LOAD_COLUMNS[first : first + len(names)] != names:
        raise ValueError(f"{names} are not adjacent in {LOAD_COLUMNS}: they stage as one segment")
    return names


def _airport_segments(airports: DataFrame) -> DataFrame:
    """One row per airport: ``airport_id`` and ``_details``, its details as one segment of a
    staged line (the fields joined by the delimiter), the same for origin and destination."""
    kinds = {c.name: c.type for c in AIRPORTS.columns}
    fields = (_staged_or_null(staged_field(F.col(d), kinds[d])) for d in AIRPORT_DETAILS)
    return airports.select("airport_id", F.concat_ws(STAGED_DELIMITER, *fields).alias("_details"))


def enrich_to_staged(
    flights: DataFrame, origins: Sequence[FileOrigin], airports: DataFrame
) -> DataFrame:
    """The warehouse rows of ``flights``, as staged lines (one column, ``STAGED_LINE``).

    Each row gets its file's flight date (decided once per file from its name, by the
    contract's rule) and object URI, and the details of its origin and destination airports;
    every flight is kept, and an airport missing from the dimension leaves its details NULL.
    ``flights`` carries the daily-file contract columns and ``source_file``, the URI of the
    object each row was read from (``FileOrigin.uri``).

    Every value is rendered as a staged field where it is first known, so it is rendered once:
    a file's date and URI once per file, an airport's details once per airport (all of them as
    one segment of the line), then joined (broadcast) to the flights; only a flight's own values
    are rendered per flight. Rendering per flight instead costs about a third more of the job's
    CPU on a large load; one segment per airport instead of three fields saves another few
    percent, in the joins and the line's assembly.

    A row whose file is missing from ``origins`` keeps a NULL source file, which the
    warehouse's NOT NULL refuses loudly instead of the row vanishing.
    """
    files = _file_fields(flights.sparkSession, origins)
    joined = (
        flights.withColumnRenamed(SOURCE_FILE, "_uri")
        .join(F.broadcast(files), on="_uri", how="left")
        .drop("_uri")
    )
    details = _airport_segments(unique_airports(airports))
    # Each side's segment is named after its first detail column and stands in for all of them.
    segment_of = {role: _detail_columns(role) for role in ("origin", "dest")}
    for role, (first, *_) in segment_of.items():
        side = details.select(
            F.col("airport_id").alias(f"{role}_airport_id"), F.col("_details").alias(first)
        )
        joined = joined.join(F.broadcast(side), on=f"{role}_airport_id", how="left")
    segments = {names[0] for names in segment_of.values()}
    stood_in = {name for names in segment_of.values() for name in names[1:]}
    # An airport missing from the dimension stages every detail of its segment as NULL.
    missing = F.lit(STAGED_DELIMITER.join(STAGED_NULL for _ in AIRPORT_DETAILS))
    own = {c.name for c in DAILY_FLIGHTS.columns}
    fields = []
    for name in (n for n in LOAD_COLUMNS if n not in stood_in):
        if name in segments:
            fields.append(F.coalesce(F.col(name), missing))
        elif name in own:
            fields.append(_staged_or_null(staged_field(F.col(name), _LOAD_TYPES[name])))
        else:
            fields.append(_staged_or_null(F.col(name)))
    line = F.concat_ws(STAGED_DELIMITER, *fields)
    return joined.select(line.alias(STAGED_LINE))
