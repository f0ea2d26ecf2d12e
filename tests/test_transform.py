"""The shared Spark transform, on the session's local SparkSession with small inline files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from jobs.flights import (
    FileOrigin,
    MissingColumnError,
    enrich,
    read_airports,
    read_daily_files,
    read_schema,
    spark_path,
    with_file_origin,
)
from pipeline.contract import DAILY_FLIGHTS, FLIGHT_PROCESSED, LOADED_AT, flight_date_of

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
def airports(spark: SparkSession, tmp_path: Path):  # type: ignore[no-untyped-def]
    return read_airports(
        spark, write(tmp_path / "airport_codes.csv", AIRPORTS_CSV), header_of(AIRPORTS_CSV)
    )


def read(spark: SparkSession, folder: Path, files: dict[str, str]):  # type: ignore[no-untyped-def]
    """Daily files written to ``folder``, read and given their origin like the jobs do."""
    paths = {write(folder / name, text): header_of(text) for name, text in files.items()}
    origins = [
        FileOrigin(
            spark_path(spark, path), f"s3://raw-bucket/raw/{Path(path).name}", flight_date_of(path)
        )
        for path in paths
    ]
    return with_file_origin(read_daily_files(spark, paths), origins)


def test_enrich_joins_origin_and_destination_and_keeps_unknown_airports(
    spark, tmp_path, airports
) -> None:  # type: ignore[no-untyped-def]
    flights = read(
        spark,
        tmp_path,
        {
            "2024-03-01.csv": HEADER + ("DL,10397,12892,5,-3\nAA,99999,11298,,\n"),
        },
    )
    rows = {r["carrier"]: r.asDict() for r in enrich(flights, airports).collect()}
    assert rows["DL"]["flight_date"] == dt.date(2024, 3, 1)
    assert rows["DL"]["origin_city"] == "Atlanta"
    assert rows["DL"]["dest_name"] == "Los Angeles International"
    assert (rows["DL"]["dep_delay"], rows["DL"]["arr_delay"]) == (5, -3)
    # Unknown origin: the flight stays, its details are NULL; empty delays are NULL.
    assert rows["AA"]["origin_airport_id"] == 99999
    assert rows["AA"]["origin_city"] is None
    assert rows["AA"]["origin_name"] is None
    assert rows["AA"]["dest_city"] == "Dallas, Fort Worth"
    assert rows["AA"]["dest_name"] == 'Dallas "DFW" International'
    assert rows["AA"]["dep_delay"] is None
    assert rows["AA"]["arr_delay"] is None


def test_enrich_output_has_the_warehouse_columns_in_order(spark, tmp_path, airports) -> None:  # type: ignore[no-untyped-def]
    flights = read(
        spark,
        tmp_path,
        {"2024-03-01.csv": HEADER + "DL,10397,12892,1,2\n"},
    )
    expected = [c for c in FLIGHT_PROCESSED.column_names if c != LOADED_AT]
    assert enrich(flights, airports).columns == expected


def test_headers_in_any_order_and_case_with_extra_columns_read_alike(
    spark, tmp_path, airports
) -> None:  # type: ignore[no-untyped-def]
    flights = read(
        spark,
        tmp_path,
        {
            "2024-03-01.csv": HEADER + "DL,10397,12892,7,8\n",
            "2024-03-02.csv": (
                "arrdelay,TailNum,DEPDELAY,destairportid,originairportid,carrier\n"
                "9,N123,4,12892,10397,UA\n"
            ),
        },
    )
    rows = sorted(enrich(flights, airports).collect(), key=lambda r: r["flight_date"])
    assert [(r["flight_date"].day, r["carrier"], r["dep_delay"], r["arr_delay"]) for r in rows] == [
        (1, "DL", 7, 8),
        (2, "UA", 4, 9),
    ]
    assert {r["origin_city"] for r in rows} == {"Atlanta"}


def test_duplicate_dimension_ids_never_multiply_flights(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dim = "airport_id,city,state,name\n10397,Atlanta,GA,B Name\n10397,Atlanta,GA,A Name\n"
    airports = read_airports(spark, write(tmp_path / "airport_codes.csv", dim), header_of(dim))
    flights = read(
        spark,
        tmp_path,
        {"2024-03-01.csv": HEADER + "DL,10397,10397,1,1\n"},
    )
    rows = enrich(flights, airports).collect()
    assert len(rows) == 1
    assert rows[0]["origin_name"] == "A Name"


def test_missing_column_names_the_header_and_the_column() -> None:
    with pytest.raises(MissingColumnError, match=r"\['DestAirportID'\]"):
        read_schema(DAILY_FLIGHTS, ["Carrier", "OriginAirportID", "DepDelay", "ArrDelay"])


def test_non_numeric_delay_fails_the_read_instead_of_becoming_null(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flights = read(
        spark,
        tmp_path,
        {"2024-03-01.csv": HEADER + "DL,10397,12892,late,2\n"},
    )
    with pytest.raises(Py4JJavaError) as failure:
        flights.collect()
    message = str(failure.value)
    assert "2024-03-01.csv" in message
    assert "MALFORMED_RECORD_IN_PARSING" in message


def test_file_origin_names_the_object_and_the_day_even_for_awkward_folder_names(
    spark: SparkSession, tmp_path: Path
) -> None:
    folder = tmp_path / "cache (1) #2"
    folder.mkdir()
    flights = read(spark, folder, {"2024-03-01.csv": HEADER + "DL,1,2,3,4\n"})
    row = flights.first()
    assert row["source_file"] == "s3://raw-bucket/raw/2024-03-01.csv"
    assert row["flight_date"] == dt.date(2024, 3, 1)


def test_a_row_from_a_file_without_origin_keeps_no_source_file(
    spark: SparkSession, tmp_path: Path
) -> None:
    text = HEADER + "DL,1,2,3,4\n"
    path = write(tmp_path / "2024-03-01.csv", text)
    flights = with_file_origin(read_daily_files(spark, {path: header_of(text)}), [])
    # NULL, which the warehouse's NOT NULL refuses: such a row can never load unnoticed.
    assert flights.first()["source_file"] is None
