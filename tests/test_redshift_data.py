"""The twin's Redshift Data API: the API's limits and transactions, and Redshift's SQL run on
PostgreSQL (COPY from S3, SYSDATE), against moto in this process and the test's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from pipeline.local.redshift_data import BATCH_MAX_STATEMENTS, STATEMENT_MAX_BYTES
from pipeline.local.services import LocalServices
from pipeline.settings import Settings
from tests.redshift import WORKGROUP, described, install_data_api, redshift_tables

BUCKET = "staging"


@pytest.fixture
def data_api(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        install_data_api(monkeypatch, settings)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        client = boto3.client("redshift-data")
        redshift_tables(client, settings.warehouse.database)
        yield client


@pytest.fixture
def database(settings: Settings) -> str:
    return settings.warehouse.database


def rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(LocalServices(settings).warehouse_url) as conn:
        return conn.execute(sql).fetchall()


def run_batch(data_api: Any, database: str, sqls: list[str]) -> dict[str, Any]:
    batch = data_api.batch_execute_statement(WorkgroupName=WORKGROUP, Database=database, Sqls=sqls)
    return described(data_api, batch["Id"])


def audit_insert(key: str) -> str:
    return (
        "INSERT INTO flight_load_audit (source_key, source_version, sha256, flight_date, "
        f"row_count, job_run_id) VALUES ('{key}', 'v1', 'sha', DATE '2024-01-01', 1, 'run')"
    )


def padded(size: int) -> str:
    """A SELECT of exactly ``size`` bytes."""
    head = "SELECT '"
    return head + "x" * (size - len(head) - 1) + "'"


def test_a_statement_over_100_kb_is_refused_before_it_runs(data_api: Any, database: str) -> None:
    assert len(padded(STATEMENT_MAX_BYTES).encode()) == STATEMENT_MAX_BYTES
    query = data_api.execute_statement(
        WorkgroupName=WORKGROUP, Database=database, Sql=padded(STATEMENT_MAX_BYTES)
    )
    assert described(data_api, query["Id"])["Status"] == "FINISHED"

    too_large = padded(STATEMENT_MAX_BYTES + 1)
    with pytest.raises(ClientError, match="Cannot process query string larger than 100kB") as one:
        data_api.execute_statement(WorkgroupName=WORKGROUP, Database=database, Sql=too_large)
    with pytest.raises(ClientError, match="Cannot process query string larger than 100kB") as batch:
        data_api.batch_execute_statement(
            WorkgroupName=WORKGROUP, Database=database, Sqls=["SELECT 1", too_large]
        )
    codes = {e.value.response["Error"]["Code"] for e in (one, batch)}
    assert codes == {"ValidationException"}


def test_a_batch_takes_at_most_40_statements(
    data_api: Any, database: str, settings: Settings
) -> None:
    most = [audit_insert(f"validated/{n}.csv") for n in range(BATCH_MAX_STATEMENTS)]
    assert run_batch(data_api, database, most)["Status"] == "FINISHED"

    with pytest.raises(ClientError, match="less than or equal to 40") as refused:
        data_api.batch_execute_statement(
            WorkgroupName=WORKGROUP, Database=database, Sqls=[*most, audit_insert("one more")]
        )

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert rows(settings, "SELECT count(*) FROM flight_load_audit") == [(BATCH_MAX_STATEMENTS,)]


def test_a_batch_is_one_transaction(data_api: Any, database: str, settings: Settings) -> None:
    failed = run_batch(
        data_api,
        database,
        [audit_insert("validated/a.csv"), "INSERT INTO no_such_table VALUES (1)"],
    )
    assert failed["Status"] == "FAILED"
    assert failed["Error"].startswith('ERROR: relation "no_such_table" does not exist')
    assert [s["Id"] for s in failed["SubStatements"]] == [f"{failed['Id']}:1", f"{failed['Id']}:2"]
    assert rows(settings, "SELECT count(*) FROM flight_load_audit") == [(0,)]

    done = run_batch(data_api, database, [audit_insert("validated/a.csv"), "SELECT 1"])
    assert done["Status"] == "FINISHED"
    assert rows(settings, "SELECT source_key FROM flight_load_audit") == [("validated/a.csv",)]


def test_list_statements_pages_through_what_ran_in_a_database(data_api: Any, database: str) -> None:
    before = {
        s["Id"]
        for page in data_api.get_paginator("list_statements").paginate(Database=database)
        for s in page["Statements"]
    }
    one = data_api.execute_statement(WorkgroupName=WORKGROUP, Database=database, Sql="SELECT 1")
    batch = run_batch(data_api, database, ["SELECT 2", "SELECT 3"])
    described(data_api, one["Id"])

    pages = list(
        data_api.get_paginator("list_statements").paginate(
            Database=database, PaginationConfig={"PageSize": 1}
        )
    )
    listed = {s["Id"]: s for page in pages for s in page["Statements"]}

    assert all(len(page["Statements"]) <= 1 for page in pages)
    assert set(listed) - before == {one["Id"], batch["Id"]}
    assert listed[one["Id"]]["QueryString"] == "SELECT 1"
    assert listed[one["Id"]]["IsBatchStatement"] is False
    assert listed[batch["Id"]]["QueryStrings"] == ["SELECT 2", "SELECT 3"]
    assert listed[batch["Id"]]["IsBatchStatement"] is True
    finished = data_api.list_statements(Database=database, Status="FINISHED")["Statements"]
    assert {one["Id"], batch["Id"]} <= {s["Id"] for s in finished}
    assert data_api.list_statements(Database="elsewhere")["Statements"] == []


def test_sysdate_is_the_transactions_start_in_every_statement_and_default(
    data_api: Any, database: str, settings: Settings
) -> None:
    """Redshift's SYSDATE is the transaction's start; so is every loaded_at of one batch, the
    columns' default (the contract's Redshift DDL) and SYSDATE written out alike."""
    sqls = [
        audit_insert("validated/a.csv"),
        "SELECT pg_sleep(0.05)",
        audit_insert("validated/b.csv"),
        "INSERT INTO flight_load_audit SELECT 'validated/c.csv', 'v1', 'sha', DATE '2024-01-01', "
        "1, 'run', SYSDATE",
    ]
    assert run_batch(data_api, database, sqls)["Status"] == "FINISHED"
    assert run_batch(data_api, database, [audit_insert("validated/d.csv")])["Status"] == "FINISHED"

    stamps = rows(settings, "SELECT source_key, loaded_at FROM flight_load_audit ORDER BY 1")
    first = {loaded_at for key, loaded_at in stamps if key != "validated/d.csv"}
    assert len(first) == 1
    assert stamps[-1][1] > next(iter(first))


STAGED_LINES = (
    # Redshift's ESCAPE: a backslash before a tab, a line feed or itself loads that character;
    # \N is NULL, and so is \\N while no NULL AS is given.
    "2024-01-01\tA\\\tB\t10397\tline\\\nbreak\tGA\t\\N\t12892\ta\\\\b\t\\\\N\tLAX\t5\t-3\ts3://x/1\n",
    "2024-01-02\tUA\t10397\t\\N\t\\N\t\\N\t12892\t\\N\t\\N\t\\N\t\\N\t\\N\ts3://x/2\n",
)
STAGED = "".join(STAGED_LINES)
COLUMNS = (
    "flight_date, carrier, origin_airport_id, origin_city, origin_state, origin_name, "
    "dest_airport_id, dest_city, dest_state, dest_name, dep_delay, arr_delay, source_file"
)


def copy_from(uri: str) -> str:
    return (
        f"COPY flight_processed ({COLUMNS}) FROM '{uri}' "
        "IAM_ROLE 'arn:aws:iam::111111111111:role/copy' "
        "DELIMITER '\\t' ESCAPE DATEFORMAT 'YYYY-MM-DD'"
    )


LOADED = [
    ("2024-01-01", "A\tB", 10397, "line\nbreak", "GA", None, 12892, "a\\b", None, "LAX", 5, -3),
    ("2024-01-02", "UA", 10397, None, None, None, 12892, None, None, None, None, None),
]


def loaded(settings: Settings) -> list[tuple[Any, ...]]:
    return [
        (str(row[0]), *row[1:])
        for row in rows(settings, f"SELECT {COLUMNS} FROM flight_processed ORDER BY flight_date")
    ]


def test_copy_from_s3_reads_every_object_under_the_prefix_as_redshift_reads_them(
    data_api: Any, database: str, settings: Settings
) -> None:
    s3 = boto3.client("s3")
    first, second = STAGED_LINES
    s3.put_object(Bucket=BUCKET, Key="run/flights/part-00000.txt", Body=first.encode())
    s3.put_object(Bucket=BUCKET, Key="run/flights/part-00001.txt", Body=second.encode())
    s3.put_object(Bucket=BUCKET, Key="run/flights/_SUCCESS", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="run/flights-other/part-00000.txt", Body=b"not staged\n")

    copied = run_batch(data_api, database, [copy_from(f"s3://{BUCKET}/run/flights/")])

    assert copied["Status"] == "FINISHED", copied.get("Error")
    assert [row[:-1] for row in loaded(settings)] == LOADED


def test_copy_from_a_local_folder_reads_it_as_an_s3_prefix(
    data_api: Any, database: str, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "run" / "flights"
    folder.mkdir(parents=True)
    (folder / "part-00000.txt").write_text(STAGED)
    (folder / ".part-00000.txt.crc").write_bytes(b"\x00\x01checksum")

    copied = run_batch(data_api, database, [copy_from(folder.as_uri() + "/")])

    assert copied["Status"] == "FINISHED", copied.get("Error")
    assert [row[:-1] for row in loaded(settings)] == LOADED


def test_a_row_the_table_refuses_fails_the_copy_as_redshift_reports_it(
    data_api: Any, database: str, settings: Settings
) -> None:
    wide = "x" * 300  # wider than the carrier's VARCHAR(256)
    line = STAGED_LINES[1].replace("\tUA\t", f"\t{wide}\t")
    boto3.client("s3").put_object(Bucket=BUCKET, Key="run/flights/part-0", Body=line.encode())

    failed = run_batch(data_api, database, [copy_from(f"s3://{BUCKET}/run/flights/")])

    assert failed["Status"] == "FAILED"
    assert failed["Error"] == (
        "ERROR: Load into table 'flight_processed' failed. Check 'sys_load_error_detail' "
        "system table for details."
    )
    assert rows(settings, "SELECT count(*) FROM flight_processed") == [(0,)]


def test_a_copy_option_the_twin_cannot_translate_fails_naming_it(
    data_api: Any, database: str
) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key="run/part-0", Body=STAGED.encode())

    failed = run_batch(data_api, database, [copy_from(f"s3://{BUCKET}/run/") + " REMOVEQUOTES"])

    assert failed["Status"] == "FAILED"
    assert "REMOVEQUOTES is not translated" in failed["Error"]


def test_named_parameters_bind_outside_quoted_text_only(data_api: Any, database: str) -> None:
    query = data_api.execute_statement(
        WorkgroupName=WORKGROUP,
        Database=database,
        Sql="SELECT :key AS key, 'arn:aws:iam::1:role/x' AS role, '50%' AS share",
        Parameters=[{"name": "key", "value": "raw/2024-01-01.csv"}],
    )
    assert described(data_api, query["Id"])["Status"] == "FINISHED"

    result = data_api.get_statement_result(Id=query["Id"])

    assert result["Records"] == [
        [
            {"stringValue": "raw/2024-01-01.csv"},
            {"stringValue": "arn:aws:iam::1:role/x"},
            {"stringValue": "50%"},
        ]
    ]
