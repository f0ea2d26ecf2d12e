"""Parity: the Glue-bound load and the twin's own load make the same warehouse of the same files.

The same validated copies, in one moto S3 bucket, are loaded twice, run for run:

- by the Glue job, ``jobs.flight_etl.main``, on the real ``awsglue`` library with Glue's JVM
  stood in for (``tests.glue``), its Redshift statements sent through the twin's Data API,
  which runs them on PostgreSQL as Redshift would (``pipeline.local.redshift_sql``), in a
  database created from the contract's Redshift DDL;
- by the twin, ``pipeline.local.etl.run_local_etl``, into a database of its own.

The files hold a day whose value the warehouse refuses (set aside by both, with its reject
record) and, in the second run, a corrected day (replaced by both). ``flight_processed``,
``flight_load_audit`` and ``flight_load_rejects`` then hold the same rows, less ``loaded_at``
and ``job_run_id``; and each run stamps all it wrote with one ``loaded_at``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from pyspark.sql import SparkSession

from jobs import flight_etl
from pipeline import workflow
from pipeline.core.contract import (
    FLIGHT_LOAD_AUDIT,
    FLIGHT_LOAD_REJECTS,
    FLIGHT_PROCESSED,
    LOADED_AT,
    SOURCE_MODIFIED,
    SOURCE_SHA256,
    SOURCE_VERSION,
    Table,
)
from pipeline.local.etl import run_local_etl
from pipeline.local.objects import ensure_buckets
from pipeline.local.postgres import PostgresWarehouse
from pipeline.local.services import LocalServices
from pipeline.sample import SampleSpec, write_sample
from pipeline.settings import Settings, load_settings
from tests.conftest import isolated_settings
from tests.glue import BOOKMARK_ENABLED, GlueJvm, glue_argv, install_glue_jvm
from tests.redshift import WORKGROUP, install_data_api, redshift_tables

pytestmark = [pytest.mark.services, pytest.mark.spark]

# An airport whose name COPY has to take verbatim on both sides: a quote, a tab, a backslash.
ODD_AIRPORT = '99001,Odd City,ZZ,"O\'Hare\tTab and back\\slash"\n'
ODD_FLIGHT = "DL,99001,99001,7,\n"
TOO_WIDE = "X" * 300  # the carrier column is VARCHAR(256): the warehouse refuses it


@dataclass
class Uploads:
    """Validated copies as the validation job promotes them, in S3 and in Glue's local view."""

    s3: Any
    settings: Settings
    local: Path

    def daily(self, name: str, text: str) -> None:
        data = text.encode()
        bucket = self.settings.raw_bucket
        upload = self.s3.put_object(Bucket=bucket, Key=f"raw/{name}", Body=data)
        self.s3.put_object(
            Bucket=bucket,
            Key=f"validated/{name}",
            Body=data,
            Metadata={
                SOURCE_VERSION: upload["VersionId"],
                SOURCE_MODIFIED: dt.datetime.now(dt.UTC).isoformat(),
                SOURCE_SHA256: hashlib.sha256(data).hexdigest(),
            },
        )
        (self.local / name).write_bytes(data)

    def dimension(self, text: str) -> Path:
        bucket, key = self.settings.dimension_bucket, self.settings.storage.validated_dimension_key
        self.s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
        path = self.local.parent / "airport_codes.csv"
        path.write_text(text)
        return path

    def take_out_of_quarantine(self, name: str) -> None:
        """Undo a load's setting aside of a copy: the delete marker that hid it goes, so the
        other load finds it where the first one did."""
        key = f"validated/{name}"
        versions = self.s3.list_object_versions(Bucket=self.settings.raw_bucket, Prefix=key)
        for marker in versions.get("DeleteMarkers", []):
            self.s3.delete_object(
                Bucket=self.settings.raw_bucket, Key=key, VersionId=marker["VersionId"]
            )


def table_rows(url: str, table: Table, omitted: tuple[str, ...]) -> list[tuple[Any, ...]]:
    columns = ", ".join(c for c in table.column_names if c not in omitted)
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT {columns} FROM {table.name} ORDER BY {columns}").fetchall()


def one_loaded_at_per_run(url: str) -> bool:
    """Whether each job run stamped its audit and reject records with one loaded_at, and each
    day's rows carry the loaded_at of the run that audited the day last."""
    with psycopg.connect(url) as conn:
        records = conn.execute(
            f"SELECT job_run_id, count(DISTINCT loaded_at) FROM (SELECT job_run_id, loaded_at "
            f"FROM {FLIGHT_LOAD_AUDIT.name} UNION ALL SELECT job_run_id, loaded_at "
            f"FROM {FLIGHT_LOAD_REJECTS.name}) r GROUP BY job_run_id"
        ).fetchall()
        (stale,) = conn.execute(
            f"SELECT count(*) FROM {FLIGHT_PROCESSED.name} p WHERE p.loaded_at <> "
            f"(SELECT max(a.loaded_at) FROM {FLIGHT_LOAD_AUDIT.name} a "
            "WHERE a.flight_date = p.flight_date)"
        ).fetchone() or (None,)
    return len(records) == 2 and all(n == 1 for _, n in records) and stale == 0


def test_the_glue_job_and_the_twin_load_the_same_files_into_the_same_rows(
    spark: SparkSession, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sample = write_sample(tmp_path / "sample", SampleSpec(days=4, flights_per_day=300, airports=40))
    day1, day2, day3, day4 = (path.read_text() for path in sample.daily)
    header, first, *rest = day3.splitlines(keepends=True)
    refused = "".join([header, first, TOO_WIDE + first[first.index(",") :], *rest])
    lines = day2.splitlines(keepends=True)
    corrected = "".join(lines[: len(lines) // 2])  # the header and the first half of the day
    glue = isolated_settings("parity_glue")
    glue_database = glue.warehouse.database
    monkeypatch.setenv("AWS_DEFAULT_REGION", settings.local.region)
    local = tmp_path / "copies"
    local.mkdir()
    with mock_aws():
        s3 = boto3.client("s3")
        ensure_buckets(s3, settings)
        uploads = Uploads(s3, settings, local)
        dimension = uploads.dimension(sample.dimension.read_text() + ODD_AIRPORT)
        install_data_api(monkeypatch, settings)
        redshift_tables(boto3.client("redshift-data"), glue_database)
        twin = PostgresWarehouse(LocalServices(settings).warehouse_url, own_server=True)
        twin.ensure_schema()
        jvm = GlueJvm(spark, local, s3_prefix=f"s3://{settings.raw_bucket}/validated/")
        install_glue_jvm(monkeypatch, jvm)
        topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
        arguments = {
            "--job-bookmark-option": BOOKMARK_ENABLED,
            "--validated_uri": f"s3://{settings.raw_bucket}/validated/",
            "--dimension_uri": str(dimension),
            "--staging_uri": (tmp_path / "staging").as_uri(),
            "--redshift_workgroup": WORKGROUP,
            "--redshift_database": glue_database,
            "--redshift_copy_role_arn": "arn:aws:iam::111111111111:role/copy",
            **workflow.job_arguments(load_settings("dev")),
            "--alert_topic_arn": topic,
            "--state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:main",
        }

        def glue_run(run: int) -> Any:
            return flight_etl.main(
                glue_argv("flight_etl.py", arguments, job_name="flightpipe-dev-flight-etl", run=run)
            )

        uploads.daily("2024-01-01.csv", day1 + ODD_FLIGHT)
        uploads.daily("2024-01-02.csv", day2)
        uploads.daily("2024-01-03.csv", refused)
        glue_first = glue_run(1)
        uploads.take_out_of_quarantine("2024-01-03.csv")
        twin_first = run_local_etl(settings, spark, s3, twin)

        uploads.daily("2024-01-02.csv", corrected)
        uploads.daily("2024-01-04.csv", day4)
        glue_second = glue_run(2)
        twin_second = run_local_etl(settings, spark, s3, twin)

    # Each load did something worth comparing: set a day aside, then replaced one.
    for result in (glue_first, twin_first):
        assert [r.file.key for r in result.rejected] == ["validated/2024-01-03.csv"]
        assert sorted(result.rows_by_key) == [
            "validated/2024-01-01.csv",
            "validated/2024-01-02.csv",
        ]
    for result in (glue_second, twin_second):
        assert sorted(result.rows_by_key) == [
            "validated/2024-01-02.csv",
            "validated/2024-01-04.csv",
        ]

    glue_url, twin_url = LocalServices(glue).warehouse_url, LocalServices(settings).warehouse_url
    for table in (FLIGHT_PROCESSED, FLIGHT_LOAD_AUDIT, FLIGHT_LOAD_REJECTS):
        omitted = (LOADED_AT, "job_run_id")
        glue_rows, twin_rows = (table_rows(url, table, omitted) for url in (glue_url, twin_url))
        assert glue_rows == twin_rows, table.name
        assert glue_rows, table.name
    odd_name = "O'Hare\tTab and back\\slash"
    with psycopg.connect(glue_url) as conn:
        named = conn.execute(
            "SELECT origin_name, dest_name FROM flight_processed WHERE origin_airport_id = 99001"
        ).fetchall()
    assert named == [(odd_name, odd_name)]  # verbatim through the staged format and COPY
    assert one_loaded_at_per_run(glue_url)
    assert one_loaded_at_per_run(twin_url)
