"""The shared Spark transform, on the session's local SparkSession with small inline files."""

from __future__ import annotations

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
    enrich_to_staged,
    read_airports,
    read_daily_files,
    read_schema,
    staged_field,
)
from pipeline.core.contract import DAILY_FLIGHTS, ColumnType, flight_date_of
from pipeline.core.warehouse import staged_values as staged_fields
from pipeline.local.etl import named_by_uri
from tests.glue import served_from

RAW = "s3://raw-bucket/raw/"

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
    """Daily files written to ``folder``, read at their S3 URIs as the Glue job reads them,
    given their origin and enriched like the jobs do."""
    for name, text in files.items():
        write(folder / name, text)
    with served_from(spark, RAW, folder):
        flights = read_daily_files(spark, {RAW + n: header_of(t) for n, t in files.items()})
        origins = [FileOrigin(RAW + name, flight_date_of(name)) for name in files]
        lines = enrich_to_staged(flights, origins, airports)
        assert lines.columns == [STAGED_LINE]
        return sorted(row[STAGED_LINE] for row in lines.collect())


def line(*values: str) -> str:
    return "\t".join(values)


def test_enrich_joins_origin_and_destination_and_keeps_unknown_airports(
    spark: SparkSession, tmp_path: Path, airports: DataFrame
) -> None:
    lines = staged_lines(
        spark,
        tmp_path,
        {"2024-03-01.csv": HEADER + "DL,10397,12892,5,-3\nAA,99999,11298,,\n"},
        airports,
    )
    # Tab-separated, in warehouse column order; an unknown airport's details and empty delays
    # are \N: NULL to COPY.
    uri = "s3://raw-bucket/raw/2024-03-01.csv"
    assert lines == [
        line(
            *("2024-03-01", "AA", "99999", r"\N", r"\N", r"\N"),
            *("11298", "Dallas, Fort Worth", "TX", 'Dallas "DFW" International'),
            *(r"\N", r"\N", uri),
        ),
        line(
            *(
                "2024-03-01",
                "DL",
                "10397",
                "Atlanta",
                "GA",
                "Hartsfield-Jackson Atlanta International",
            ),
            *("12892", "Los Angeles", "CA", "Los Angeles International"),
            *("5", "-3", uri),
        ),
    ]
    assert staged_fields(lines[0])["dest_name"] == 'Dallas "DFW" International'
    assert staged_fields(lines[0])["origin_city"] is None


def test_text_is_staged_verbatim(spark: SparkSession, tmp_path: Path) -> None:
    dim = (
        "airport_id,city,state,name\n"
        '1," Spaced ",,"Comma, ""quoted"""\n'
        '2,Tab\there,\\N,"Back\\slash\\"\n'
    )
    airports = read_airports(spark, write(tmp_path / "airport_codes.csv", dim), header_of(dim))
    lines = staged_lines(spark, tmp_path, {"2024-03-01.csv": HEADER + "DL,1,2,1,1\n"}, airports)
    assert lines == [
        line(
            *("2024-03-01", "DL", "1", " Spaced ", r"\N", 'Comma, "quoted"'),
            *("2", "Tab\\\there", r"\\N", "Back\\\\slash\\\\"),
            *("1", "1", "s3://raw-bucket/raw/2024-03-01.csv"),
        )
    ]
    values = staged_fields(lines[0])
    assert (values["origin_state"], values["dest_city"], values["dest_state"]) == (
        None,
        "Tab\there",
        "\\N",
    )
    assert values["dest_name"] == "Back\\slash\\"


def test_staged_fields_escape_what_copy_reads_as_syntax(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("", 0, dt.date(2024, 3, 1)), ("a\tb\\c\nd\r\ne", None, None), (None, -7, None)],
        "text string, number int, day date",
    )
    rendered = frame.select(
        staged_field(F.col("text"), ColumnType.STRING).alias("text"),
        staged_field(F.col("number"), ColumnType.INTEGER).alias("number"),
        staged_field(F.col("day"), ColumnType.DATE).alias("day"),
    )
    # A backslash before each special character itself (never a letter such as \n, which
    # Redshift would load as an n); an empty text stays empty, distinct from NULL.
    assert [tuple(row) for row in rendered.collect()] == [
        ("", "0", "2024-03-01"),
        ("a\\\tb\\\\c\\\nd\\\r\\\ne", None, None),
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
    rows = [staged_fields(line) for line in lines]
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
    assert staged_fields(lines[0])["origin_name"] == "A Name"


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


def test_the_twin_names_its_cached_copies_by_object_even_in_awkward_folders(
    spark: SparkSession, tmp_path: Path, airports: DataFrame
) -> None:
    folder = tmp_path / "cache (1) #2 %41 é"  # spaces, a URI's #, an escape-like %, non-ASCII
    folder.mkdir()
    copy = folder / "2024-03-01.csv@v%2F1"  # as the twin's object cache names a version
    copy.write_text(HEADER + "DL,1,2,3,4\n")
    uri = RAW + "2024-03-01.csv"

    flights = named_by_uri(read_daily_files(spark, {str(copy): header_of(HEADER)}), {copy: uri})
    lines = enrich_to_staged(flights, [FileOrigin(uri, flight_date_of(uri))], airports)

    (staged,) = [staged_fields(row[STAGED_LINE]) for row in lines.collect()]
    assert (staged["source_file"], staged["flight_date"]) == (uri, "2024-03-01")


def test_a_row_from_a_file_without_origin_keeps_no_source_file(
    spark: SparkSession, tmp_path: Path, airports: DataFrame
) -> None:
    text = HEADER + "DL,1,2,3,4\n"
    path = write(tmp_path / "2024-03-01.csv", text)
    lines = enrich_to_staged(read_daily_files(spark, {path: header_of(text)}), [], airports)
    # No date, no source file: NULLs the warehouse's NOT NULL refuses, never a silent load.
    values = staged_fields(lines.first()[STAGED_LINE])
    assert (values["flight_date"], values["carrier"], values["source_file"]) == (None, "DL", None)
