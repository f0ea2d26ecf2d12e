"""Pure PySpark for the flight ETL, shared by the Glue job and the local runtime.

DataFrames in, DataFrames out; the only I/O is ``spark.read`` of paths the caller chose.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline.contract import (
    AIRPORT_DETAILS,
    AIRPORTS,
    DAILY_FLIGHTS,
    ColumnType,
    FileContract,
)
from pipeline.warehouse import LOAD_COLUMNS

_SPARK_TYPES: Mapping[ColumnType, T.DataType] = {
    ColumnType.STRING: T.StringType(),
    ColumnType.INTEGER: T.IntegerType(),
    ColumnType.DATE: T.DateType(),
    ColumnType.TIMESTAMP_UTC: T.TimestampType(),
}

SOURCE_FILE = "source_file"

STAGED_CSV_OPTIONS: Mapping[str, str | bool] = {
    # RFC 4180 quoting, as the warehouse COPY reads it: a quote inside a value is doubled.
    "escape": '"',
    # Spark trims values when it writes CSV unless told not to; staged rows keep them verbatim.
    "ignoreLeadingWhiteSpace": False,
    "ignoreTrailingWhiteSpace": False,
}
"""How both runtimes stage enriched rows as CSV for the warehouse COPY."""


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
    contract's columns in contract order plus ``source_file``, the path Spark read. Malformed
    values fail the read (FAILFAST) rather than turning into silent NULLs.
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
    """Where a file Spark read came from: what the warehouse calls it and the day it carries."""

    read_path: str
    """The path as ``input_file_name()`` spells it (see ``spark_path``)."""
    uri: str
    flight_date: dt.date


def spark_path(spark: SparkSession, local_path: str) -> str:
    """How ``input_file_name()`` spells a local file: a ``file://`` URI, percent-encoded."""
    jvm = spark.sparkContext._jvm
    return "file://" + jvm.org.apache.hadoop.fs.Path(local_path).toUri().getRawPath()


def with_file_origin(flights: DataFrame, origins: Sequence[FileOrigin]) -> DataFrame:
    """Set ``source_file`` to each row's object URI and add its ``flight_date``.

    A broadcast join with one row per file: the flight date is decided once per file (by the
    contract's rule for file names), not parsed out of every row's path.
    """
    spark = flights.sparkSession
    meta = spark.createDataFrame(
        [(o.read_path, o.uri, o.flight_date) for o in origins],
        "_read_path string, _uri string, flight_date date",
    )
    # A left join: a row whose file is missing here keeps a NULL source_file, which the
    # warehouse's NOT NULL refuses loudly instead of the row vanishing.
    joined = flights.join(F.broadcast(meta), flights[SOURCE_FILE] == meta["_read_path"], "left")
    return joined.drop(SOURCE_FILE, "_read_path").withColumnRenamed("_uri", SOURCE_FILE)


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


def enrich(flights: DataFrame, airports: DataFrame) -> DataFrame:
    """Flights joined with the airport dimension on both ends, in warehouse column order.

    Every flight is kept: an airport missing from the dimension leaves its details NULL.
    ``flights`` carries the daily-file contract columns, ``source_file`` and ``flight_date``
    (see ``with_file_origin``).
    """
    airports = unique_airports(airports)
    joined = flights
    for role in ("origin", "dest"):
        side = airports.select(
            F.col("airport_id").alias(f"{role}_airport_id"),
            *(F.col(detail).alias(f"{role}_{detail}") for detail in AIRPORT_DETAILS),
        )
        joined = joined.join(F.broadcast(side), on=f"{role}_airport_id", how="left")
    return joined.select(*LOAD_COLUMNS)
