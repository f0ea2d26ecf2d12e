"""The load transaction's SQL, shared by Redshift and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from pyspark.sql import SparkSession

from jobs.redshift import RedshiftWarehouse
from pipeline.core.contract import Dialect
from pipeline.core.warehouse import (
    LOAD_COLUMNS,
    STAGED_DELIMITER,
    STAGED_NULL,
    Rejection,
    SourceFile,
    StagedValue,
    Staging,
    load_statements,
    staged_line,
    staged_values,
)
from pipeline.local.postgres import PostgresWarehouse, _send
from pipeline.local.services import LocalServices
from pipeline.settings import Settings
from tests.redshift import WORKGROUP, install_data_api, redshift_tables


def source(uri: str, day: dt.date) -> SourceFile:
    return SourceFile(
        key=uri.split("/", 3)[3], version="v1", sha256="0" * 64, flight_date=day, uri=uri
    )


STREAMED = Staging(Dialect.POSTGRES)
STAGED_ON_S3 = Staging(
    Dialect.REDSHIFT, "s3://staging/staging/jr_1/", "arn:aws:iam::111111111111:role/copy"
)


def test_a_load_refuses_two_files_for_one_day() -> None:
    day = dt.date(2024, 3, 1)
    files = [
        source("s3://raw/validated/2024-03-01.csv", day),
        source("s3://raw/validated/late/2024-03-01.csv", day),
    ]
    with pytest.raises(ValueError, match=r"late/2024-03-01\.csv both carry 2024-03-01"):
        load_statements(files, "run-1", STREAMED)


def test_a_load_deletes_exactly_the_days_of_its_manifest_and_audits_each_file() -> None:
    files = [
        source("s3://raw/validated/2024-03-01.csv", dt.date(2024, 3, 1)),
        source("s3://raw/validated/2024-03-03.csv", dt.date(2024, 3, 3)),
    ]
    statements = load_statements(files, "run-1", STREAMED)
    assert statements.files.rows == [
        ("validated/2024-03-01.csv", "v1", "0" * 64, dt.date(2024, 3, 1), None, None, None),
        ("validated/2024-03-03.csv", "v1", "0" * 64, dt.date(2024, 3, 3), None, None, None),
    ]
    assert statements.delete_days == (
        "DELETE FROM flight_processed WHERE flight_date BETWEEN DATE '2024-03-01' AND "
        "DATE '2024-03-03' AND flight_date IN (SELECT flight_date FROM load_files)"
    )
    assert "FROM load_files m" in statements.insert_audit


def test_no_statement_grows_with_the_number_of_files() -> None:
    """The Data API refuses a statement over 100 KB and a batch of over 40 statements: a
    backfill's batch is one file's, statement for statement and byte for byte."""
    files = backfill(dt.date(2019, 1, 1), BACKFILL_FILES, "validated/")
    earlier = backfill(dt.date(2010, 1, 1), BACKFILL_FILES, "validated/")

    def sizes(count: int) -> list[int]:
        rejected = [Rejection(f, "line 2, DepDelay: x") for f in earlier[:count]]
        statements = load_statements(files[:count], "jr_1", STAGED_ON_S3, rejected)
        return [len(sql.encode()) for sql in statements.in_order()]

    assert sizes(BACKFILL_FILES) == sizes(1)


FIRST, THIRD = dt.date(2024, 3, 1), dt.date(2024, 3, 3)


def test_the_audit_takes_proven_counts_from_the_manifest_and_otherwise_counts_the_days() -> None:
    files = [
        source("s3://raw/validated/2024-03-01.csv", FIRST),
        source("s3://raw/validated/2024-03-03.csv", THIRD),
    ]
    statements = load_statements(files, "run-1", STREAMED, max_rows={f.key: 100 for f in files})
    assert [row[-1] for row in statements.files.rows] == [100, 100]
    assert "m.max_rows" in statements.insert_proven_audit
    assert "FROM flight_processed" not in statements.insert_proven_audit

    counted = statements.insert_audit
    assert "max_rows" not in counted
    assert "COUNT(*) AS row_count FROM flight_processed" in counted
    assert "flight_date IN (SELECT flight_date FROM load_files) GROUP BY" in counted


def test_audit_and_reject_records_leave_loaded_at_to_the_transactions_timestamp() -> None:
    """No INSERT names loaded_at: the column's default stamps it, the transaction's timestamp
    in both dialects (the contract's DDL), as it stamps the COPY's rows."""
    file = source("s3://raw/validated/2024-03-01.csv", FIRST)
    statements = load_statements(
        [file], "run-1", STAGED_ON_S3, [Rejection(file, "line 2, DepDelay: x")]
    )
    for sql in statements.in_order():
        assert "loaded_at" not in sql.lower(), sql
        assert "GETDATE" not in sql.upper(), sql
        assert "SYSDATE" not in sql.upper(), sql


def test_a_manifest_stages_its_values_as_the_flights_are_staged() -> None:
    """What COPY reads back from a staged line is the value written: text verbatim (a tab, a
    line feed, a backslash), numbers and dates as text, None as NULL."""
    values: list[StagedValue] = ["tab\there", "line\nfeed", "back\\slash", None, 7]
    values += [dt.date(2024, 3, 1)] + ["x"] * (len(LOAD_COLUMNS) - len(values) - 1)

    line = staged_line(values)

    assert "\n" not in line.replace("\\\n", "")
    expected = [v if v is None else str(v) for v in values]
    assert list(staged_values(line).values()) == expected


BACKFILL_FILES = 2_000


def backfill(first: dt.date, count: int, prefix: str) -> list[SourceFile]:
    """``count`` daily files from ``first`` on, as a year's backfill lists them."""
    days = [first + dt.timedelta(days=n) for n in range(count)]
    return [
        SourceFile(
            key=f"{prefix}{day}.csv",
            version=f"version-{n:04d}-" + "v" * 20,
            sha256=hashlib.sha256(str(day).encode()).hexdigest(),
            flight_date=day,
            uri=f"s3://flightpipe-raw-dev-111111111111/{prefix}{day}.csv",
            upload_key=f"raw/{day}.csv",
            upload_version=f"upload-{n:04d}-" + "u" * 20,
        )
        for n, day in enumerate(days)
    ]


def staged_flight(file: SourceFile) -> str:
    """One flight of ``file``, as a staged line (``LOAD_COLUMNS``; unknown airports)."""
    fields = {"flight_date": str(file.flight_date), "carrier": "DL", "source_file": file.uri}
    fields |= {"origin_airport_id": "10397", "dest_airport_id": "12892", "dep_delay": "5"}
    return STAGED_DELIMITER.join(fields.get(c, STAGED_NULL) for c in LOAD_COLUMNS)


@pytest.mark.services
@pytest.mark.spark
def test_a_2000_file_backfill_loads_through_the_data_api_within_its_limits(
    spark: SparkSession, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every statement within 100 KB and every batch within 40 statements, however many files
    a run loads or set aside: the twin's Data API refuses what the Data API refuses."""
    files = backfill(dt.date(2019, 1, 1), BACKFILL_FILES, "validated/")
    rejected = [
        Rejection(f, f"line 11, DepDelay: 99999999999 is outside the range ({n})", 11, "DepDelay")
        for n, f in enumerate(backfill(dt.date(2030, 1, 1), BACKFILL_FILES, "validated/"))
    ]
    lines = spark.createDataFrame([(staged_flight(f),) for f in files], "line string")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        install_data_api(monkeypatch, settings)
        data_api = boto3.client("redshift-data")
        redshift_tables(data_api, settings.warehouse.database)
        warehouse = RedshiftWarehouse(
            data_api,
            spark=spark,
            workgroup=WORKGROUP,
            database=settings.warehouse.database,
            staging_uri=(tmp_path / "staging").as_uri(),
            copy_role_arn="arn:aws:iam::111111111111:role/copy",
            poll_seconds=0.05,
        )

        loaded = warehouse.replace_days(lines, files, "jr_backfill", rejected[:1_000])
        warehouse.record_rejections(rejected[1_000:], "jr_backfill")

    assert loaded == {f.key: 1 for f in files}
    with psycopg.connect(LocalServices(settings).warehouse_url) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            for table in ("flight_processed", "flight_load_audit", "flight_load_rejects")
        ]
    assert counts == [(BACKFILL_FILES,)] * 3


@pytest.mark.services
def test_the_load_plans_with_the_manifests_own_row_count(warehouse: PostgresWarehouse) -> None:
    """PostgreSQL's COPY leaves a table without statistics and autovacuum never analyzes a
    temporary one: sent with its ANALYZE, the manifest's rows are known to the planner of the
    statements that read it, rather than guessed from its size on disk."""
    files = backfill(dt.date(2019, 1, 1), 365, "validated/")
    statements = load_statements(files, "jr_plan", STREAMED)
    with warehouse.connect() as conn, conn.transaction():
        _send(conn, statements.files)
        plan = conn.execute(f"EXPLAIN (FORMAT JSON) {statements.delete_days}").fetchone()

    def scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if node.get("Relation Name") == "load_files":
            yield node
        for child in node.get("Plans", []):
            yield from scans(child)

    assert plan is not None
    assert [node["Plan Rows"] for node in scans(plan[0][0]["Plan"])] == [len(files)]
