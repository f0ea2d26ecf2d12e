"""The shared Spark transform, on the session's local SparkSession with small inline files."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.flights import (
    STAGED_LINE,
    FileOrigin,
    MissingColumnError,
    csv_field,
    enrich_to_csv,
    read_airports,
    read_daily_files,
    read_schema,
    spark_path,
)
from pipeline.contract import DAILY_FLIGHTS, ColumnType, flight_date_of
from pipeline.warehouse import LOAD_COLUMNS

HEADER = "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay\n"
AIRPORTS_CSV = """airport_id,city,state,name
10397,Atlanta,GA,Hartsfield-Jackson Atlanta International
12892,Los Angeles,CA,Los Angeles International
11298,"Dallas, Fort Worth",TX,"Dallas ""DFW"" International"
"""


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def header_of(text: str) -> list[str]:
    return text.splitlines()[0].split(",")


@pytest.fixture
def airports(spark: SparkSession, tmp_path: Path) -> DataFrame:
    return read_airports(
        spark, write(tmp_path / "airport_codes.csv", AIRPORTS_CSV), header_of(AIRPORTS_CSV)
    )


def staged_lines(
    spark: SparkSession, folder: Path, files: dict[str, str], airports: DataFrame
) -> list[str]:
    """Daily files written to ``folder``, read, given their origin and enriched like the jobs do."""
    paths = {write(folder / name, text): header_of(text) for name, text in files.items()}
    origins = [
        FileOrigin(
            spark_path(spark, path), f"s3://raw-bucket/raw/{Path(path).name}", flight_date_of(path)
        )
        for path in paths
    ]
    lines = enrich_to_csv(read_daily_files(spark, paths), origins, airports)
    assert lines.columns == [STAGED_LINE]
    return sorted(row[STAGED_LINE] for row in lines.collect())


def fields(line: str) -> dict[str, str]:
    """A staged line's fields by warehouse column, as a CSV reader (and COPY) splits them."""
    values = next(csv.reader([line]))
    assert len(values) == len(LOAD_COLUMNS), line
    return dict(zip(LOAD_COLUMNS, values, strict=True))


def test_enrich_joins_origin_and_destination_and_keeps_unknown_airports(
    spark: SparkSession, tmp_path: Path, airports: DataFrame
) -> None:
    lines = staged_lines(
        spark,
        tmp_path,
        {"2024-03-01.csv": HEADER + "DL,10397,12892,5,-3\nAA,99999,11298,,\n"},
        airports,
    )
    # Text quoted, inner quotes doubled; an unknown airport's details and empty delays are
    # empty unquoted fields: NULL to COPY.
    assert lines == [
        '2024-03-01,"AA",99999,,,,11298,"Dallas, Fort Worth","TX","Dallas ""DFW"" International"'
        ',,,"s3://raw-bucket/raw/2024-03-01.csv"',
        '2024-03-01,"DL",10397,"Atlanta","GA","Hartsfield-Jackson Atlanta International",'
        '12892,"Los Angeles","CA","Los Angeles International",5,-3,'
        '"s3://raw-bucket/raw/2024-03-01.csv"',
    ]
    assert fields(lines[0])["dest_name"] == 'Dallas "DFW" International'


def test_text_is_staged_verbatim(spark: SparkSession, tmp_path: Path) -> None:
    dim = 'airport_id,city,state,name\n1," Spaced ",,"Comma, ""quoted"""\n2,X,XX,Name\n'
    airports = read_airports(spark, write(tmp_path / "airport_codes.csv", dim), header_of(dim))
    lines = staged_lines(spark, tmp_path, {"2024-03-01.csv": HEADER + "DL,1,2,1,1\n"}, airports)
    assert lines == [
        '2024-03-01,"DL",1," Spaced ",,"Comma, ""quoted""",2,"X","XX","Name",1,1,'
        '"s3://raw-bucket/raw/2024-03-01.csv"'
    ]
    assert fields(lines[0])["origin_name"] == 'Comma, "quoted"'


def test_csv_fields_keep_an_empty_text_distinct_from_null(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("", 0, dt.date(2024, 3, 1)), ('a "b"\nc', None, None), (None, -7, None)],
        "text string, number int, day date",
    )
    rendered = frame.select(
        csv_field(F.col("text"), ColumnType.STRING).alias("text"),
        csv_field(F.col("number"), ColumnType.INTEGER).alias("number"),
        csv_field(F.col("day"), ColumnType.DATE).alias("day"),
    )
    assert [tuple(row) for row in rendered.collect()] == [
        ('""', "0", "2024-03-01"),
        ('"a ""b""\nc"', None, None),
        (None, "-7", None),
    ]


def test_headers_in_any_order_and_case_with_extra_columns_read_alike(
    spark: SparkSession, tmp_path: Path, airports: DataFrame
) -> None:
    lines = staged_lines(
        spark,
        tmp_path,
        {
            "2024-03-01.csv": HEADER + "DL,10397,12892,7,8\n",
            "2024-03-02.csv": (
                "arrdelay,TailNum,DEPDELAY,destairportid,originairportid,carrier\n"
                "9,N123,4,12892,10397,UA\n"
            ),
        },
        airports,
    )
    rows = [fields(line) for line in lines]
    assert [(r["flight_date"], r["carrier"], r["dep_delay"], r["arr_delay"]) for r in rows] == [
        ("2024-03-01", "DL", "7", "8"),
        ("2024-03-02", "UA", "4", "9"),
    ]
    assert {r["origin_city"] for r in rows} == {"Atlanta"}


def test_duplicate_dimension_ids_never_multiply_flights(
    spark: SparkSession, tmp_path: Path
) -> None:
    dim = "airport_id,city,state,name\n10397,Atlanta,GA,B Name\n10397,Atlanta,GA,A Name\n"
    airports = read_airports(spark, write(tmp_path / "airport_codes.csv", dim), header_of(dim))
    lines = staged_lines(
        spark, tmp_path, {"2024-03-01.csv": HEADER + "DL,10397,10397,1,1\n"}, airports
    )
    assert len(lines) == 1
    assert fields(lines[0])["origin_name"] == "A Name"


def test_missing_column_names_the_header_and_the_column() -> None:
    with pytest.raises(MissingColumnError, match=r"\['DestAirportID'\]"):
        read_schema(DAILY_FLIGHTS, ["Carrier", "OriginAirportID", "DepDelay", "ArrDelay"])


def test_non_numeric_delay_fails_the_read_instead_of_becoming_null(
    spark: SparkSession, tmp_path: Path
) -> None:
    text = HEADER + "DL,10397,12892,late,2\n"
    flights = read_daily_files(spark, {write(tmp_path / "2024-03-01.csv", text): header_of(text)})
    with pytest.raises(Py4JJavaError) as failure:
        flights.collect()
    message = str(failure.value)
    assert "2024-03-01.csv" in message
    assert "MALFORMED_RECORD_IN_PARSING" in message


def test_file_origin_names_the_object_and_the_day_even_for_awkward_folder_names(
    spark: SparkSession, tmp_path: Path, airports: DataFrame
) -> None:
    folder = tmp_path / "cache (1) #2"
    folder.mkdir()
    (line,) = staged_lines(spark, folder, {"2024-03-01.csv": HEADER + "DL,1,2,3,4\n"}, airports)
    assert fields(line)["source_file"] == "s3://raw-bucket/raw/2024-03-01.csv"
    assert fields(line)["flight_date"] == "2024-03-01"


def test_a_row_from_a_file_without_origin_keeps_no_source_file(
    spark: SparkSession, tmp_path: Path, airports: DataFrame
) -> None:
    text = HEADER + "DL,1,2,3,4\n"
    path = write(tmp_path / "2024-03-01.csv", text)
    lines = enrich_to_csv(read_daily_files(spark, {path: header_of(text)}), [], airports)
    # No date, no source file: NULLs the warehouse's NOT NULL refuses, never a silent load.
    assert lines.first()[STAGED_LINE] == ',"DL",1,,,,2,,,,3,4,'
