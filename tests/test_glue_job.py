"""The Glue entrypoints on the real ``awsglue`` library, Glue's JVM half stood in for.

Arguments are parsed by Glue's own ``getResolvedOptions`` from an argument vector shaped as
Glue hands it over, and ``job.init`` / ``job.commit`` go through the real ``awsglue.job.Job``;
``tests.glue`` stands in for the JVM classes under them (the job bookmark and the S3 reader),
and the twin's Data API (``tests.redshift``) for Redshift: it refuses what the Data API refuses
and runs the job's Redshift statements on the test's PostgreSQL database. Everything else is
real: the entrypoint's own code, Spark reading and enriching the files (at their S3 URIs,
served from local copies), S3 (moto, in-process) for versions, metadata and checksums.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import awsglue.context
import boto3
import psycopg
import pytest
from awsglue.utils import getResolvedOptions
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from jobs import flight_etl, validation
from jobs.flights import read_daily_files
from jobs.glue_source import GlueBookmarkedSource
from jobs.redshift import RedshiftWarehouse
from pipeline import workflow
from pipeline.core.contract import SOURCE_KEY, SOURCE_VERSION, header_names
from pipeline.core.errors import plain_error
from pipeline.core.metrics import (
    FILES_LOADED,
    ROWS_LOADED,
    VALIDATED_TO_LOADED_SECONDS,
    put_metrics,
)
from pipeline.local.services import LocalServices
from pipeline.settings import Settings, load_settings
from tests.glue import BOOKMARK_ENABLED, GlueJvm, glue_argv, install_glue_jvm, run_id
from tests.redshift import WORKGROUP, batches_sent, install_data_api, redshift_tables
from tests.test_metrics import Refusing, jobs_metric_calls, put_values

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
JOB_NAME = "flightpipe-dev-flight-etl"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("s3")


@dataclass
class GlueJob:
    """The load job as Glue runs it: Glue's JVM and the Data API stood in for, S3 in moto."""

    jvm: GlueJvm
    s3: Any
    arguments: dict[str, str]
    """The run's arguments, named as the state machine names them, with local locations."""
    warehouse_url: str
    """The database the Data API's statements run in."""
    gets: list[dict[str, str]]
    """Every GetObject the job's S3 clients sent: the key and the byte range asked for."""

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.warehouse_url) as conn:
            return conn.execute(sql).fetchall()

    def argv(self, run: int = 1) -> list[str]:
        return glue_argv("flight_etl.py", self.arguments, job_name=JOB_NAME, run=run)

    def upload(
        self, name: str, text: str, *, by_hand: bool = False, upload: str = "", upload_key: str = ""
    ) -> str:
        """Put a validated copy in S3 and in Glue's local view of it; return its version id.

        The validation job has S3 keep the copy's SHA-256 checksum and names the upload's
        version (``upload``) and key (``upload_key``) in the copy's metadata; a copy written
        ``by_hand`` has neither.
        """
        (self.jvm.local / name).write_text(text)
        written = {} if by_hand else {"ChecksumAlgorithm": "SHA256"}
        metadata = {SOURCE_VERSION: upload} if upload else {}
        metadata |= {SOURCE_KEY: quote(upload_key)} if upload_key else {}
        response = self.s3.put_object(
            Bucket=RAW_BUCKET,
            Key=f"validated/{name}",
            Body=text.encode(),
            Metadata=metadata,
            **written,
        )
        return str(response["VersionId"])


@pytest.fixture
def job(
    aws: Any,
    spark: SparkSession,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[GlueJob]:
    local = tmp_path / "raw"
    local.mkdir()
    aws.create_bucket(Bucket=RAW_BUCKET)
    aws.put_bucket_versioning(Bucket=RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    (tmp_path / "airport_codes.csv").write_text(AIRPORTS)
    staging = tmp_path / "staging"
    jvm = GlueJvm(spark, local, s3_prefix=f"s3://{RAW_BUCKET}/validated/")
    install_data_api(monkeypatch, settings)
    redshift_tables(boto3.client("redshift-data"), settings.warehouse.database)
    gets: list[dict[str, str]] = []
    real_client = boto3.client

    def client(name: str, **kw: Any) -> Any:
        made = real_client(name, **kw)
        if name == "s3":  # what the job asks of S3 objects: a whole object, or a range of one
            made.meta.events.register(
                "provide-client-params.s3.GetObject",
                lambda params, **_: gets.append(
                    {"Key": params["Key"], "Range": params.get("Range", "")}
                ),
            )
        return made

    monkeypatch.setattr(boto3, "client", client)
    topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    boto3.client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
    )
    arguments = {
        "--job-bookmark-option": BOOKMARK_ENABLED,
        "--validated_uri": f"s3://{RAW_BUCKET}/validated/",
        "--dimension_uri": str(tmp_path / "airport_codes.csv"),
        "--staging_uri": staging.as_uri(),
        "--redshift_workgroup": WORKGROUP,
        "--redshift_database": settings.warehouse.database,
        "--redshift_copy_role_arn": "arn:aws:iam::111111111111:role/copy",
        **workflow.job_arguments(load_settings("dev")),
        "--alert_topic_arn": topic,
        "--state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:main",
    }
    with install_glue_jvm(monkeypatch, jvm):
        yield GlueJob(jvm, aws, arguments, LocalServices(settings).warehouse_url, gets)


def test_glue_run_stages_enriched_rows_and_loads_them_in_one_batch_then_commits(
    job: GlueJob, aws: Any, spark: SparkSession
) -> None:
    version = job.upload("2024-01-01.csv", DAY_1)

    result = flight_etl.main(job.argv())

    ((_, options),) = [c for c in job.jvm.calls if c[0] == "from_options"]
    assert options["transformation_ctx"] == "validated_flights"
    assert options["connection_options"]["paths"] == [f"s3://{RAW_BUCKET}/validated/"]
    assert [name for name, _ in job.jvm.calls] == ["job.init", "from_options", "job.commit"]
    _, (name, args) = job.jvm.calls[0]
    assert (name, args["job_bookmark_option"]) == (JOB_NAME, BOOKMARK_ENABLED)
    assert result.job_run_id == run_id(1)
    assert result.rows_by_key == {"validated/2024-01-01.csv": 2}

    # One transaction, which COPYs the lines Spark staged under the run's prefix.
    ((status, batch),) = batches_sent()
    assert status == "FINISHED"
    staged = f"{job.arguments['--staging_uri']}/{run_id(1)}/flights/"
    (copy,) = [sql for sql in batch if sql.startswith("COPY flight_processed")]
    assert f"FROM '{staged}' IAM_ROLE 'arn:aws:iam::111111111111:role/copy'" in copy
    assert copy.endswith("DELIMITER '\\t' ESCAPE DATEFORMAT 'YYYY-MM-DD'")

    uri = f"s3://{RAW_BUCKET}/validated/2024-01-01.csv"
    assert job.rows(
        "SELECT carrier, origin_city, dest_name, dest_city, dep_delay, source_file "
        "FROM flight_processed ORDER BY carrier"
    ) == [
        ("AA", "Los Angeles", None, None, None, uri),
        ("DL", "Atlanta", "LAX", "Los Angeles", 5, uri),
    ]
    assert job.rows(
        "SELECT source_key, source_version, sha256, row_count, job_run_id FROM flight_load_audit"
    ) == [
        (
            "validated/2024-01-01.csv",
            version,
            hashlib.sha256(DAY_1.encode()).hexdigest(),
            2,
            run_id(1),
        )
    ]
    # The version and the digest come from the copy's HEAD (S3 keeps the copy's SHA-256
    # checksum), its header from a range of its first bytes: nothing fetched it whole.
    assert [get["Key"] for get in job.gets if not get["Range"]] == []


def test_glue_reports_an_object_that_is_no_daily_file_even_when_it_is_all_there_is(
    job: GlueJob, aws: Any
) -> None:
    job.upload("notes.csv", DAY_1)

    result = flight_etl.main(job.argv())

    assert list(result.refused) == [f"s3://{RAW_BUCKET}/validated/notes.csv"]
    assert "YYYY-MM-DD.csv" in result.refused[f"s3://{RAW_BUCKET}/validated/notes.csv"]
    assert result.rows_by_key == {}
    assert batches_sent() == []
    # Reported once: the bookmark moves past it, as it does past a loaded file.
    assert [name for name, _ in job.jvm.calls] == ["job.init", "from_options", "job.commit"]


def test_glue_bookmark_means_the_next_run_reads_only_the_new_file(job: GlueJob, aws: Any) -> None:
    job.upload("2024-01-01.csv", DAY_1)
    flight_etl.main(job.argv(run=1))
    job.upload("2024-01-02.csv", DAY_2)

    flight_etl.main(job.argv(run=2))
    nothing = flight_etl.main(job.argv(run=3))

    assert len(batches_sent()) == 2  # the third run found nothing and touched no warehouse
    assert nothing.rows_by_key == {}
    assert job.rows("SELECT source_key, job_run_id FROM flight_load_audit ORDER BY 1") == [
        ("validated/2024-01-01.csv", run_id(1)),
        ("validated/2024-01-02.csv", run_id(2)),
    ]


def test_glue_bookmark_reads_a_corrected_file_again(job: GlueJob, aws: Any) -> None:
    job.upload("2024-01-01.csv", DAY_1)
    flight_etl.main(job.argv(run=1))
    corrected = job.upload("2024-01-01.csv", DAY_1.replace("DL,", "UA,"))

    flight_etl.main(job.argv(run=2))

    assert len(batches_sent()) == 2
    assert job.rows("SELECT carrier FROM flight_processed ORDER BY 1") == [("AA",), ("UA",)]
    audited = job.rows("SELECT job_run_id, source_version FROM flight_load_audit ORDER BY 1")
    assert audited[-1] == (run_id(2), corrected)


def test_glue_stops_uncommitted_when_a_copy_is_replaced_while_the_load_reads_it(
    job: GlueJob, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = job.upload("2024-01-01.csv", DAY_1)
    replace_days = RedshiftWarehouse.replace_days
    replaced: list[str] = []

    def promoted_meanwhile(self: RedshiftWarehouse, *args: Any, **kwargs: Any) -> Any:
        # A correction promoted after the load listed the copy and before Spark read it.
        if not replaced:
            replaced.append(job.upload("2024-01-01.csv", DAY_1.replace("DL,", "UA,")))
        return replace_days(self, *args, **kwargs)

    monkeypatch.setattr(RedshiftWarehouse, "replace_days", promoted_meanwhile)

    with pytest.raises(flight_etl.LoadFailedError) as failure:
        flight_etl.main(job.argv(run=1))

    assert (
        f"s3://{RAW_BUCKET}/validated/2024-01-01.csv changed while the load read it: "
        f"version {listed} was listed, {replaced[0]} is there now"
    ) in str(failure.value)
    assert batches_sent() == []  # nothing reached the warehouse
    assert ("job.commit", None) not in job.jvm.calls

    monkeypatch.setattr(RedshiftWarehouse, "replace_days", replace_days)
    retried = flight_etl.main(job.argv(run=2))

    assert retried.rows_by_key == {"validated/2024-01-01.csv": 2}
    assert job.rows("SELECT source_version FROM flight_load_audit") == [(replaced[0],)]
    assert job.rows("SELECT carrier FROM flight_processed ORDER BY 1") == [("AA",), ("UA",)]


def test_glue_does_not_commit_the_bookmark_when_the_warehouse_load_fails(
    job: GlueJob, aws: Any
) -> None:
    job.upload("2024-01-01.csv", DAY_1)
    with psycopg.connect(job.warehouse_url) as conn:
        conn.execute("ALTER TABLE flight_load_audit RENAME TO audit_elsewhere")

    with pytest.raises(RuntimeError, match='FAILED: ERROR: relation "flight_load_audit"'):
        flight_etl.main(job.argv())

    assert ("job.commit", None) not in job.jvm.calls
    assert job.jvm.committed == set()
    assert job.rows("SELECT count(*) FROM flight_processed") == [(0,)]  # rolled back


def test_glue_load_puts_its_metrics_once_its_transaction_and_bookmark_committed(
    job: GlueJob, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = jobs_metric_calls(monkeypatch)
    seen_at_put: list[tuple[int, int]] = []  # (bookmark commits, audit rows) at each put

    def put_once_committed(*args: Any, **kwargs: Any) -> bool:
        committed = job.jvm.calls.count(("job.commit", None))
        [(audited,)] = job.rows("SELECT count(*) FROM flight_load_audit")
        seen_at_put.append((committed, audited))
        return put_metrics(*args, **kwargs)

    monkeypatch.setattr(flight_etl, "put_metrics", put_once_committed)
    job.upload("2024-01-01.csv", DAY_1)
    time.sleep(1.1)  # S3's LastModified has whole seconds: the oldest copy is the first
    job.upload("2024-01-02.csv", DAY_2)

    loaded = flight_etl.main(job.argv(run=1))
    nothing = flight_etl.main(job.argv(run=2))

    assert (loaded.rows, nothing.rows) == (3, 0)
    assert seen_at_put == [(1, 2), (2, 2)]
    first, second = sent
    # From the oldest copy's validation (its version's LastModified: when the gate wrote it)
    # to the load's commit, the time the values are put at.
    written = [
        aws.head_object(Bucket=RAW_BUCKET, Key=f"validated/{name}")["LastModified"]
        for name in ("2024-01-01.csv", "2024-01-02.csv")
    ]
    committed_at = first["MetricData"][0]["Timestamp"]
    waited = (committed_at - min(written)).total_seconds()
    assert 0 <= waited < 60
    assert put_values(first, "dev") == {
        FILES_LOADED: 2,
        ROWS_LOADED: 3,
        VALIDATED_TO_LOADED_SECONDS: waited,
    }
    # A run that found nothing new loaded nothing, and no file waited for it.
    assert put_values(second, "dev") == {FILES_LOADED: 0, ROWS_LOADED: 0}


def test_glue_load_that_fails_puts_no_metrics(
    job: GlueJob, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = jobs_metric_calls(monkeypatch)
    job.upload("2024-01-01.csv", DAY_1)
    with psycopg.connect(job.warehouse_url) as conn:
        conn.execute("ALTER TABLE flight_load_audit RENAME TO audit_elsewhere")

    with pytest.raises(flight_etl.LoadFailedError):
        flight_etl.main(job.argv())

    assert sent == []


def test_glue_load_whose_metrics_cannot_be_put_ends_as_it_would_have_and_says_why(
    job: GlueJob, aws: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refusing = Refusing(
        EndpointConnectionError(endpoint_url="https://monitoring.us-east-1.amazonaws.com/")
    )
    jobs_metric_calls(monkeypatch, instead=refusing)
    version = job.upload("2024-01-01.csv", DAY_1)

    result = flight_etl.main(job.argv())

    assert result.rows_by_key == {"validated/2024-01-01.csv": 2}
    assert job.rows("SELECT source_version, row_count FROM flight_load_audit") == [(version, 2)]
    assert ("job.commit", None) in job.jvm.calls
    assert refusing.calls == 1
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [warning] = [e for e in logged if e["message"].startswith("could not put")]
    assert warning["level"] == "WARNING"
    assert warning["message"].startswith(
        "could not put the metrics FilesLoaded=1, RowsLoaded=2, ValidatedToLoadedSeconds="
    )
    assert "EndpointConnectionError" in warning["message"]
    assert "monitoring.us-east-1.amazonaws.com" in warning["message"]


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
    job: GlueJob, aws: Any
) -> None:
    job.upload("2024-01-01.csv", DAY_1)
    bad = job.upload("2024-01-02.csv", day_with_a_delay_too_big_for_integer(12, 11), by_hand=True)

    result = flight_etl.main(job.argv())

    [rejection] = result.rejected
    reason = "line 11, DepDelay: 99999999999 is outside -2147483648..2147483647"
    assert (rejection.file.key, rejection.file.version, rejection.reason) == (
        "validated/2024-01-02.csv",
        bad,
        reason,
    )
    # Glue's cast would have made the value NULL; it fails the read instead, and the one
    # batch holds the good day and the reject record.
    ((status, _),) = batches_sent()
    assert status == "FINISHED"
    assert job.rows("SELECT DISTINCT flight_date::text FROM flight_processed") == [("2024-01-01",)]
    assert job.rows(
        "SELECT validated_key, validated_version, reason, line, column_name, value, job_run_id "
        "FROM flight_load_rejects"
    ) == [("validated/2024-01-02.csv", bad, reason, 11, "DepDelay", "99999999999", run_id(1))]
    assert ("job.commit", None) in job.jvm.calls
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
    assert f"CloudWatch log group /aws-glue/jobs/error, stream {run_id(1)}" in alert["Message"]


def test_a_malformed_value_fails_the_glue_read_as_it_fails_the_twins(
    job: GlueJob, spark: SparkSession
) -> None:
    text = DAY_1.replace("DL,10397,12892,5,", "DL,10397,12892,7.5,")
    job.upload("2024-01-02.csv", text)
    local = job.jvm.local / "2024-01-02.csv"
    twin = read_daily_files(spark, {str(local): header_names(text.splitlines()[0])})
    glue = GlueBookmarkedSource(
        awsglue.context.GlueContext(spark.sparkContext),  # the JVM stand-in's
        f"s3://{RAW_BUCKET}/validated/",
        job.s3,
        max_header_bytes=len(text),
    ).new_flights()
    assert glue.flights is not None

    errors = []
    for flights, read_at in ((twin, local.as_uri()), (glue.flights, glue.files[0].uri)):
        with pytest.raises(Py4JJavaError) as failure:
            flights.collect()
        errors.append(plain_error(failure.value).replace(read_at, "<the file>"))

    assert errors[0] == errors[1]
    assert "MALFORMED_RECORD_IN_PARSING" in errors[0]


def test_glue_reads_the_files_as_the_twin_does_so_a_fractional_delay_is_set_aside(
    job: GlueJob, aws: Any
) -> None:
    """Glue's own reader would read ``7.5`` as text and a cast would make it 7; the twin's
    read, with the contract's types, refuses it, and so must the Glue job's."""
    job.upload("2024-01-01.csv", DAY_1)
    bad = job.upload(
        "2024-01-02.csv",
        DAY_1.replace("DL,10397,12892,5,", "DL,10397,12892,7.5,"),
        upload="u1",
        upload_key="incoming/2024-01-02.csv",  # as the copy names it, whatever the raw prefix
    )

    result = flight_etl.main(job.argv())

    [rejection] = result.rejected
    assert (rejection.file.version, rejection.reason) == (
        bad,
        "line 2, DepDelay: 7.5 is not a whole number",
    )
    upload = (rejection.file.upload_key, rejection.file.upload_version)
    assert upload == ("incoming/2024-01-02.csv", "u1")
    assert job.rows("SELECT DISTINCT flight_date::text FROM flight_processed") == [("2024-01-01",)]


def test_glue_finds_the_file_of_a_row_redshift_refused_by_halving_the_load(
    job: GlueJob, aws: Any
) -> None:
    job.upload("2024-01-01.csv", DAY_1)
    job.upload("2024-01-02.csv", DAY_1.replace("AA,", "ZZ,"))
    job.upload("2024-01-03.csv", DAY_1)
    # A row the warehouse refuses for a reason the contract's scan cannot know of: the COPY
    # fails with Redshift's message, which names no row, so only halving finds the file.
    with psycopg.connect(job.warehouse_url) as conn:
        conn.execute("ALTER TABLE flight_processed ADD CHECK (carrier <> 'ZZ')")

    result = flight_etl.main(job.argv())

    [rejection] = result.rejected
    assert rejection.file.key == "validated/2024-01-02.csv"
    assert "sys_load_error_detail" in rejection.reason
    # All three failed, then the first half alone loaded, then the rest failed, then the
    # culprit alone, then the one file left loaded with the culprit's reject record.
    assert [status for status, _ in batches_sent()] == [
        "FAILED",
        "FINISHED",
        "FAILED",
        "FAILED",
        "FINISHED",
    ]
    assert job.rows("SELECT DISTINCT flight_date::text FROM flight_processed ORDER BY 1") == [
        ("2024-01-01",),
        ("2024-01-03",),
    ]
    assert job.rows("SELECT validated_key FROM flight_load_rejects") == [
        ("validated/2024-01-02.csv",)
    ]
    listed = aws.list_objects_v2(Bucket=RAW_BUCKET, Prefix="validated/")["Contents"]
    assert [o["Key"] for o in listed] == ["validated/2024-01-01.csv", "validated/2024-01-03.csv"]


def state_machine_arguments(state: str) -> dict[str, str]:
    """The arguments a job's run gets, as Glue receives them: the job's default arguments, and
    those the main state machine passes with placeholders filled as CDK fills them, each path
    (``.$``) resolved to a value."""
    settings = load_settings("dev")
    definition = workflow.main_definition(settings)
    text = workflow.render(definition)
    filled = workflow.substitute(
        text, {name: f"filled-{name}" for name in workflow.placeholders(definition)}
    )
    arguments = json.loads(filled)["States"][state]["Parameters"]["Arguments"]
    return workflow.job_arguments(settings) | {
        name.removesuffix(".$"): f"value of {value}" if name.endswith(".$") else value
        for name, value in arguments.items()
    }


@pytest.mark.parametrize(
    ("state", "job_arguments"),
    [
        ("Validate upload", validation.GLUE_ARGUMENTS),
        ("Load validated files", flight_etl.GLUE_ARGUMENTS),
    ],
)
def test_each_job_parses_what_the_state_machine_passes_with_glues_own_parser(
    state: str, job_arguments: tuple[str, ...]
) -> None:
    passed = state_machine_arguments(state)
    argv = glue_argv("job.py", passed, job_name="flightpipe-dev-job")

    args = getResolvedOptions(argv, list(job_arguments))

    # Every argument the job asks for is passed, and every one passed is read (Glue itself
    # reads the bookmark option).
    expected = {"JOB_NAME": "flightpipe-dev-job"}
    expected |= {name.removeprefix("--"): value for name, value in passed.items()}
    bookmark = expected.pop("job-bookmark-option", "job-bookmark-disable")
    assert {name: args[name] for name in job_arguments} == expected
    assert (args["JOB_RUN_ID"], args["job_bookmark_option"]) == (run_id(1), bookmark)
