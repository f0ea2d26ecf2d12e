"""The Glue entrypoint, run against a recording stand-in for the parts only AWS has.

``awsglue`` cannot be installed offline and Redshift cannot run here, so the test installs a
small stand-in for both that records every call. Everything else is real: the entrypoint's own
code, Spark reading and enriching the files, S3 (moto, in-process) for versions and hashes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import flight_etl
from pipeline.warehouse import staged_values as staged_fields

RAW_BUCKET = "flightpipe-raw-dev-111111111111"
DAY_1 = (
    "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay\n"
    "DL,10397,12892,5,-3\n"
    "AA,12892,99999,,\n"
)
DAY_2 = "carrier,destairportid,originairportid,arrdelay,depdelay,TailNum\nUA,10397,12892,7,9,N1\n"
AIRPORTS = (
    "airport_id,city,state,name\n10397,Atlanta,GA,Hartsfield-Jackson\n12892,Los Angeles,CA,LAX\n"
)


@dataclass
class GlueRecorder:
    """What the job asked of Glue, and the bookmark it would have committed."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    committed: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)


def install_awsglue(
    monkeypatch: pytest.MonkeyPatch, spark: SparkSession, recorder: GlueRecorder, local: Path
) -> None:
    """Stand-in ``awsglue`` modules: a bookmarked S3 source backed by local copies of the files."""

    class DynamicFrame:
        def __init__(self, frame: DataFrame) -> None:
            self._frame = frame

        def toDF(self) -> DataFrame:  # noqa: N802 - Glue's name
            return self._frame

    class DynamicFrameReader:
        def from_options(self, **options: Any) -> DynamicFrame:
            recorder.calls.append(("from_options", options))
            if "transformation_ctx" in options:
                # The bookmark: only files not committed by an earlier run are read.
                new = sorted(p for p in local.glob("*.csv") if p.name not in recorder.committed)
                recorder.pending = {p.name for p in new}
            else:  # exactly the files named, the bookmark untouched
                paths = options["connection_options"]["paths"]
                new = [local / path.rsplit("/", 1)[-1] for path in paths]
            if not new:
                return DynamicFrame(spark.createDataFrame([], "x string").drop("x"))
            frames = [
                spark.read.csv(str(p), header=True).withColumn(
                    options["format_options"]["attachFilename"],
                    F.lit(f"s3://{RAW_BUCKET}/validated/{p.name}"),
                )
                for p in new
            ]
            frame = frames[0]
            for other in frames[1:]:
                frame = frame.unionByName(other, allowMissingColumns=True)
            return DynamicFrame(frame)

    class GlueContext:
        def __init__(self, spark_context: Any) -> None:
            self.spark_session = spark
            self.create_dynamic_frame = DynamicFrameReader()

    class Job:
        def __init__(self, context: GlueContext) -> None:
            pass

        def init(self, name: str, args: dict[str, str]) -> None:
            recorder.calls.append(("job.init", name))

        def commit(self) -> None:
            recorder.calls.append(("job.commit", None))
            recorder.committed |= recorder.pending

    def get_resolved_options(argv: list[str], names: list[str]) -> dict[str, str]:
        pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
        return {name: pairs[f"--{name}"] for name in names}

    modules = {
        "awsglue": types.ModuleType("awsglue"),
        "awsglue.context": types.SimpleNamespace(GlueContext=GlueContext),
        "awsglue.job": types.SimpleNamespace(Job=Job),
        "awsglue.utils": types.SimpleNamespace(getResolvedOptions=get_resolved_options),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


@dataclass
class DataApiRecorder:
    """A stand-in for the Redshift Data API: records statements, answers the audit query."""

    batches: list[list[str]] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    fail_batches: bool = False
    refuse_staged: str | None = None
    """Refuse a batch whose staged lines hold this text, as Redshift's COPY refuses a row."""
    staged: Path | None = None
    rows_by_key: dict[str, int] = field(default_factory=dict)

    def batch_execute_statement(self, **kwargs: Any) -> dict[str, str]:
        self.batches.append(kwargs["Sqls"])
        return {"Id": f"batch-{len(self.batches)}"}

    def execute_statement(self, **kwargs: Any) -> dict[str, str]:
        self.statements.append(kwargs["Sql"])
        return {"Id": "query"}

    def describe_statement(self, Id: str) -> dict[str, str]:  # noqa: N803 - the API's name
        if Id.startswith("batch") and self.fail_batches:
            return {"Status": "FAILED", "Error": "ERROR: permission denied for relation"}
        if Id.startswith("batch") and self.refuse_staged and self.staged:
            text = "".join(p.read_text() for p in self.staged.rglob("part-*"))
            if self.refuse_staged in text:
                self.batches.pop()  # rolled back
                return {
                    "Status": "FAILED",
                    "Error": "ERROR: Load into table 'flight_processed' failed. Check "
                    "'sys_load_error_detail' system table for details.",
                }
        return {"Status": "FINISHED"}

    def get_statement_result(self, Id: str) -> dict[str, Any]:  # noqa: N803
        records = [[{"stringValue": k}, {"longValue": n}] for k, n in self.rows_by_key.items()]
        return {"Records": records}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("s3")


@pytest.fixture
def glue_job(
    aws: Any, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[GlueRecorder, DataApiRecorder, list[str], Path]:
    local = tmp_path / "raw"
    local.mkdir()
    aws.create_bucket(Bucket=RAW_BUCKET)
    aws.put_bucket_versioning(Bucket=RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    (tmp_path / "airport_codes.csv").write_text(AIRPORTS)
    staging = tmp_path / "staging"
    glue, data_api = GlueRecorder(), DataApiRecorder(staged=staging)
    install_awsglue(monkeypatch, spark, glue, local)
    real_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda name, **kw: data_api if name == "redshift-data" else real_client(name, **kw),
    )
    topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    boto3.client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
    )
    argv = [
        "flight_etl.py",
        *("--JOB_NAME", "flightpipe-dev-flight-etl", "--JOB_RUN_ID", "jr_1"),
        *("--validated_uri", f"s3://{RAW_BUCKET}/validated/"),
        *("--dimension_uri", str(tmp_path / "airport_codes.csv")),
        *("--staging_uri", staging.as_uri()),
        *("--redshift_workgroup", "flightpipe-dev", "--redshift_database", "flightpipe"),
        *("--redshift_copy_role_arn", "arn:aws:iam::111111111111:role/copy"),
        *("--env", "dev", "--raw_prefix", "raw/", "--quarantine_prefix", "quarantine/"),
        *("--alert_topic_arn", topic),
        *("--state_machine_arn", "arn:aws:states:us-east-1:123456789012:stateMachine:main"),
    ]
    return glue, data_api, argv, local


def upload(aws: Any, local: Path, name: str, text: str) -> str:
    (local / name).write_text(text)
    response = aws.put_object(Bucket=RAW_BUCKET, Key=f"validated/{name}", Body=text.encode())
    return str(response["VersionId"])


def test_glue_run_stages_enriched_rows_and_loads_them_in_one_batch_then_commits(
    glue_job: tuple[GlueRecorder, DataApiRecorder, list[str], Path], aws: Any, spark: SparkSession
) -> None:
    glue, data_api, argv, local = glue_job
    version = upload(aws, local, "2024-01-01.csv", DAY_1)
    data_api.rows_by_key = {"validated/2024-01-01.csv": 2}

    result = flight_etl.main(argv)

    ((_, options),) = [c for c in glue.calls if c[0] == "from_options"]
    assert options["transformation_ctx"] == "validated_flights"
    assert options["connection_options"]["paths"] == [f"s3://{RAW_BUCKET}/validated/"]
    assert [name for name, _ in glue.calls] == ["job.init", "from_options", "job.commit"]
    assert result.rows_by_key == {"validated/2024-01-01.csv": 2}

    (batch,) = data_api.batches
    delete, copy, audit = batch
    assert delete == "DELETE FROM flight_processed WHERE flight_date IN (DATE '2024-01-01')"
    staged = argv[argv.index("--staging_uri") + 1] + "/jr_1/"
    assert copy.startswith("COPY flight_processed (flight_date, carrier, origin_airport_id")
    assert f"FROM '{staged}' IAM_ROLE 'arn:aws:iam::111111111111:role/copy'" in copy
    assert f"'{version}' AS source_version" in audit
    assert f"'{hashlib.sha256(DAY_1.encode()).hexdigest()}' AS sha256" in audit

    assert copy.endswith("DELIMITER '\\t' ESCAPE DATEFORMAT 'YYYY-MM-DD'")

    rows = [staged_fields(r.value) for r in spark.read.text(staged).collect()]
    by_carrier = {r["carrier"]: r for r in rows}
    assert by_carrier["DL"]["origin_city"] == "Atlanta"
    assert by_carrier["DL"]["dest_name"] == "LAX"
    assert by_carrier["AA"]["dest_city"] is None
    assert by_carrier["AA"]["dep_delay"] is None
    assert {r["source_file"] for r in rows} == {f"s3://{RAW_BUCKET}/validated/2024-01-01.csv"}


def test_glue_reports_an_object_that_is_no_daily_file_even_when_it_is_all_there_is(
    glue_job: tuple[GlueRecorder, DataApiRecorder, list[str], Path], aws: Any
) -> None:
    glue, data_api, argv, local = glue_job
    upload(aws, local, "notes.csv", DAY_1)

    result = flight_etl.main(argv)

    assert list(result.refused) == [f"s3://{RAW_BUCKET}/validated/notes.csv"]
    assert "YYYY-MM-DD.csv" in result.refused[f"s3://{RAW_BUCKET}/validated/notes.csv"]
    assert result.rows_by_key == {}
    assert data_api.batches == []
    # Reported once: the bookmark moves past it, as it does past a loaded file.
    assert [name for name, _ in glue.calls] == ["job.init", "from_options", "job.commit"]


def test_glue_bookmark_means_the_next_run_reads_only_the_new_file(
    glue_job: tuple[GlueRecorder, DataApiRecorder, list[str], Path], aws: Any
) -> None:
    _, data_api, argv, local = glue_job
    upload(aws, local, "2024-01-01.csv", DAY_1)
    flight_etl.main(argv)
    upload(aws, local, "2024-01-02.csv", DAY_2)

    flight_etl.main(argv)
    nothing = flight_etl.main(argv)

    assert len(data_api.batches) == 2  # the third run found nothing and touched no warehouse
    assert (
        data_api.batches[1][0]
        == "DELETE FROM flight_processed WHERE flight_date IN (DATE '2024-01-02')"
    )
    assert nothing.rows_by_key == {}


def test_glue_does_not_commit_the_bookmark_when_the_warehouse_load_fails(
    glue_job: tuple[GlueRecorder, DataApiRecorder, list[str], Path], aws: Any
) -> None:
    glue, data_api, argv, local = glue_job
    upload(aws, local, "2024-01-01.csv", DAY_1)
    data_api.fail_batches = True

    with pytest.raises(RuntimeError, match="FAILED: ERROR: permission denied"):
        flight_etl.main(argv)

    assert ("job.commit", None) not in glue.calls
    assert glue.committed == set()


def published_alerts() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    queue = sqs.get_queue_url(QueueName="alerts")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def day_with_a_delay_too_big_for_integer(rows: int, bad_line: int) -> str:
    lines = ["Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay"]
    lines += ["DL,10397,12892,5,-3"] * (rows)
    lines[bad_line - 1] = "DL,10397,12892,99999999999,-3"
    return "\n".join(lines) + "\n"


def test_glue_sets_aside_a_file_whose_value_the_warehouse_cannot_hold_and_loads_the_rest(
    glue_job: tuple[GlueRecorder, DataApiRecorder, list[str], Path], aws: Any
) -> None:
    glue, data_api, argv, local = glue_job
    upload(aws, local, "2024-01-01.csv", DAY_1)
    bad = upload(aws, local, "2024-01-02.csv", day_with_a_delay_too_big_for_integer(12, 11))

    result = flight_etl.main(argv)

    [rejection] = result.rejected
    reason = "line 11, DepDelay: 99999999999 is outside -2147483648..2147483647"
    assert (rejection.file.key, rejection.file.version, rejection.reason) == (
        "validated/2024-01-02.csv",
        bad,
        reason,
    )
    # Glue's cast would have made the value NULL; it fails the read instead, and the one
    # batch that committed holds the good day and the reject record.
    (batch,) = data_api.batches
    assert batch[0] == "DELETE FROM flight_processed WHERE flight_date IN (DATE '2024-01-01')"
    assert batch[-1].startswith("INSERT INTO flight_load_rejects")
    assert f"'{bad}' AS validated_version" in batch[-1]
    assert ("job.commit", None) in glue.calls
    listed = aws.list_objects_v2(Bucket=RAW_BUCKET, Prefix="quarantine/")["Contents"]
    assert [o["Key"] for o in listed] == [
        "quarantine/2024-01-02.csv",
        "quarantine/2024-01-02.csv.validation.json",
    ]
    body = aws.get_object(Bucket=RAW_BUCKET, Key="quarantine/2024-01-02.csv.validation.json")
    document = json.loads(body["Body"].read())
    assert (document["line"], document["column"], document["value"]) == (
        11,
        "DepDelay",
        "99999999999",
    )
    # Planted by hand: no upload names it, so no run will report it; the job alerts itself.
    [alert] = published_alerts()
    assert f"REJECTED s3://{RAW_BUCKET}/validated/2024-01-02.csv" in alert["Message"]
    assert reason in alert["Message"]
    assert "CloudWatch log group /aws-glue/jobs/error, stream jr_1" in alert["Message"]


def test_glue_finds_the_file_of_a_row_redshift_refused_by_halving_the_load(
    glue_job: tuple[GlueRecorder, DataApiRecorder, list[str], Path], aws: Any
) -> None:
    _, data_api, argv, local = glue_job
    upload(aws, local, "2024-01-01.csv", DAY_1)
    upload(aws, local, "2024-01-02.csv", DAY_1.replace("AA,", "ZZ,"))  # Redshift refuses ZZ
    upload(aws, local, "2024-01-03.csv", DAY_1)
    data_api.refuse_staged = "ZZ"

    result = flight_etl.main(argv)

    [rejection] = result.rejected
    assert rejection.file.key == "validated/2024-01-02.csv"
    assert "sys_load_error_detail" in rejection.reason
    # All three failed, then the first half alone loaded, then the rest failed, then the one
    # file left after the culprit loaded with its reject record.
    assert [batch[0] for batch in data_api.batches] == [
        "DELETE FROM flight_processed WHERE flight_date IN (DATE '2024-01-01')",
        "DELETE FROM flight_processed WHERE flight_date IN (DATE '2024-01-03')",
    ]
    assert data_api.batches[-1][-1].startswith("INSERT INTO flight_load_rejects")
    listed = aws.list_objects_v2(Bucket=RAW_BUCKET, Prefix="validated/")["Contents"]
    assert [o["Key"] for o in listed] == ["validated/2024-01-01.csv", "validated/2024-01-03.csv"]
