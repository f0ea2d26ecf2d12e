"""The event-driven pipeline on the local twin: uploads start runs of the deployed ASL.

Everything here goes through the twin's AWS endpoint as a user's uploads would: S3 events to
EventBridge, the router, the main state machine, real validation and load job runs, the
crawler, SNS. Each test has its own buckets, resources and database on the shared services.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.metrics import (
    ENVIRONMENT,
    FILES_LOADED,
    FILES_QUARANTINED,
    FILES_VALIDATED,
    NAMESPACE,
    ROWS_LOADED,
    UNITS,
    VALIDATED_TO_LOADED_SECONDS,
)
from pipeline.core.settings import JobSettings
from pipeline.core.uploads import Upload, run_name
from pipeline.local.runs import Run
from pipeline.local.twin import LocalTwin
from pipeline.sample import SampleSpec, write_sample
from pipeline.settings import Settings
from tests.expected import audit_rows, expected_days, warehouse_days

RUN_TIMEOUT_SECONDS = 300


@pytest.fixture
def twin(settings: Settings) -> LocalTwin:
    running = LocalTwin(settings)
    running.start()
    _ = running.resources
    return running


def sample(
    folder: Path, days: int, flights_per_day: int = 400, start: str = "2024-03-01"
) -> list[Path]:
    spec = SampleSpec(
        days=days,
        flights_per_day=flights_per_day,
        start=dt.date.fromisoformat(start),
        seed=11,
    )
    return list(write_sample(folder, spec).daily)


def follow(twin: LocalTwin, uploads: Sequence[Upload]) -> list[Run]:
    names = [run_name(u.bucket, u.key, u.version) for u in uploads]
    runs = twin.runs.follow(names, RUN_TIMEOUT_SECONDS, 0.2)
    assert all(run.finished for run in runs), runs
    return runs


def with_dimension(twin: LocalTwin, folder: Path) -> None:
    [run] = follow(twin, [twin.upload_dimension(folder / "airport_codes.csv")])
    assert run.status == "SUCCEEDED", (run.failed_step, run.cause)


def failure_alerts(twin: LocalTwin) -> list[str]:
    return [a["message"] for a in twin.alerts() if a["attributes"].get("outcome") == "failed"]


def data_api_calls(twin: LocalTwin, run: Run) -> list[str]:
    """The Redshift Data API actions the run's tasks called, in order."""
    events = twin.client("stepfunctions").get_execution_history(
        executionArn=run.arn, maxResults=1000
    )["events"]
    scheduled = [e["taskScheduledEventDetails"] for e in events if e["type"] == "TaskScheduled"]
    return [d["resource"] for d in scheduled if d["resourceType"] == "aws-sdk:redshiftdata"]


def recreate_job(twin: LocalTwin, name: str, **changes: Any) -> None:
    """Create the job ``name`` again as it is, with ``changes`` (moto has no UpdateJob)."""
    glue = twin.client("glue")
    job = glue.get_job(JobName=name)["Job"]
    kept = ("Role", "Command", "DefaultArguments", "ExecutionProperty", "GlueVersion")
    glue.delete_job(JobName=name)
    glue.create_job(Name=name, **{**{key: job[key] for key in kept}, **changes})


def malformed(path: Path) -> Path:
    """The file with one delay that is not a number: the gate quarantines it."""
    path.write_text(path.read_text().replace("\n", "\nDL,10397,12892,late,4\n", 1))
    return path


def job_runs(twin: LocalTwin, job: str) -> list[dict[str, Any]]:
    """A job's runs, as Glue lists them."""
    pages = twin.client("glue").get_paginator("get_job_runs").paginate(JobName=job)
    return [run for page in pages for run in page["JobRuns"]]


def load_runs(twin: LocalTwin) -> list[dict[str, Any]]:
    return job_runs(twin, twin.resources.names.load_job)


def crawls(twin: LocalTwin) -> list[dict[str, Any]]:
    """The flight crawler's crawls, as Glue lists them."""
    name = twin.resources.names.flight_crawler
    return list(twin.client("glue").list_crawls(CrawlerName=name)["Crawls"])


def loaded_versions(twin: LocalTwin) -> list[tuple[str, str]]:
    """(upload key, upload version) of every audit row."""
    _, rows = twin.warehouse.query(
        "SELECT upload_key, upload_version FROM flight_load_audit ORDER BY upload_key"
    )
    return [(key, version) for key, version in rows]


def test_three_uploaded_days_each_run_to_success_and_load(twin: LocalTwin, data_dir: Path) -> None:
    days = sample(data_dir, 3)
    with_dimension(twin, data_dir)

    uploads = [twin.upload_daily(day) for day in days]
    runs = follow(twin, uploads)

    assert [run.status for run in runs] == ["SUCCEEDED"] * 3, [
        (r.failed_step, r.cause) for r in runs
    ]
    assert [run.key for run in runs] == [u.key for u in uploads]
    assert warehouse_days(twin.warehouse) == expected_days(days)
    successes = [a["message"] for a in twin.alerts() if a["attributes"]["outcome"] == "succeeded"]
    expected = expected_days(days)
    for upload, day in zip(uploads, days, strict=True):
        [message] = [m for m in successes if upload.uri in m]
        # The rows come from the load audit, through the state machine's Data API query.
        assert f"{expected[day.stem].flights} rows in the warehouse" in message
    assert failure_alerts(twin) == []
    # Each load ran as the Glue job run its task started: the audit names that run (Glue's
    # --JOB_RUN_ID), the one the state machine recorded.
    _, audited = twin.warehouse.query("SELECT DISTINCT job_run_id FROM flight_load_audit")
    assert {job_run_id for (job_run_id,) in audited} <= {r["Id"] for r in load_runs(twin)}
    for (job_run_id,) in audited:
        assert sum(f"written by load run {job_run_id}." in m for m in successes) >= 1
    for run in runs:
        # The row count polled its statement, round the loop at least once (the twin's Data API
        # reports a statement STARTED when first described), before reading its result.
        calls = data_api_calls(twin, run)
        assert calls[0] == "executeStatement", calls
        assert calls[-1] == "getStatementResult", calls
        assert calls[1:-1].count("describeStatement") >= 2, calls
    # The crawler registered the validated files' schema in the catalog.
    glue = twin.client("glue")
    table = glue.get_table(DatabaseName=twin.resources.names.database, Name="validated")["Table"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns == {
        "carrier": "string",
        "originairportid": "bigint",
        "destairportid": "bigint",
        "depdelay": "bigint",
        "arrdelay": "bigint",
    }


def test_a_validation_run_works_with_the_settings_its_job_was_created_with(
    twin: LocalTwin, data_dir: Path
) -> None:
    [day] = sample(data_dir, 1)
    with_dimension(twin, data_dir)
    # The job created again with other settings, as a deploy would: a day's file is too large.
    name = twin.resources.names.validation_job
    defaults = twin.client("glue").get_job(JobName=name)["Job"]["DefaultArguments"]
    created = JobSettings.model_validate_json(defaults["--settings"])
    limit = day.stat().st_size - 1
    quality = created.quality.model_copy(update={"max_file_bytes": limit})
    strict = created.model_copy(update={"quality": quality})
    recreate_job(twin, name, DefaultArguments={**defaults, "--settings": strict.model_dump_json()})

    [run] = follow(twin, [twin.upload_daily(day)])

    assert (run.status, run.failed_step) == ("FAILED", "validation")
    assert f"over the limit of {limit:,} bytes" in run.cause
    assert warehouse_days(twin.warehouse) == {}


def test_a_bad_file_fails_its_run_with_one_alert_while_the_good_ones_load(
    twin: LocalTwin, data_dir: Path
) -> None:
    good_day, other_day, bad_day = sample(data_dir, 3)
    malformed(bad_day)
    with_dimension(twin, data_dir)

    uploads = [twin.upload_daily(path) for path in (good_day, bad_day, other_day)]
    good, bad, other = follow(twin, uploads)

    assert (good.status, other.status) == ("SUCCEEDED", "SUCCEEDED")
    assert (bad.status, bad.failed_step) == ("FAILED", "validation")
    assert bad.cause.startswith("QuarantinedError")
    [alert] = failure_alerts(twin)
    assert f"FAILED at the validation step for {uploads[1].uri}" in alert
    assert "DepDelay: 'late' is not a whole number (line 2)" in alert
    assert bad.arn in alert
    assert "Quality report: " in alert
    assert warehouse_days(twin.warehouse) == expected_days([good_day, other_day])


def in_environment(twin: LocalTwin, env: str) -> None:
    """Create the validation and load jobs again with settings naming ``env``, as a deploy of
    that environment would: their runs put their metrics under it, apart from other tests'."""
    glue = twin.client("glue")
    for name in (twin.resources.names.validation_job, twin.resources.names.load_job):
        defaults = glue.get_job(JobName=name)["Job"]["DefaultArguments"]
        created = JobSettings.model_validate_json(defaults["--settings"])
        named = created.model_copy(update={"env": env}).model_dump_json()
        recreate_job(twin, name, DefaultArguments={**defaults, "--settings": named})


def statistics(twin: LocalTwin, env: str, since: dt.datetime) -> dict[str, dict[str, Any]]:
    """Each metric's statistics in ``env`` since ``since``, over one period, read from the
    endpoint's CloudWatch as a dashboard reads them."""
    cloudwatch = twin.client("cloudwatch")
    found: dict[str, dict[str, Any]] = {}
    for name in UNITS:
        points = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": ENVIRONMENT, "Value": env}],
            StartTime=since - dt.timedelta(minutes=1),
            EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum", "SampleCount", "Maximum"],
        )["Datapoints"]
        if points:
            [found[name]] = points
    return found


def test_the_runs_put_their_metrics_on_the_endpoint_under_their_environment(
    twin: LocalTwin, data_dir: Path
) -> None:
    env = f"metrics-{twin.settings.storage.bucket_prefix}"
    in_environment(twin, env)
    good_day, other_day, bad_day = sample(data_dir, 3)
    malformed(bad_day)
    since = dt.datetime.now(dt.UTC)
    with_dimension(twin, data_dir)

    uploads = [twin.upload_daily(path) for path in (good_day, bad_day, other_day)]
    good, bad, other = follow(twin, uploads)

    assert (good.status, bad.status, other.status) == ("SUCCEEDED", "FAILED", "SUCCEEDED")
    cloudwatch = twin.client("cloudwatch")
    dimension = [{"Name": ENVIRONMENT, "Value": env}]
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE, Dimensions=dimension)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == sorted(UNITS)
    assert all(m["Dimensions"] == dimension for m in listed)
    found = statistics(twin, env, since)
    assert {name: point["Unit"] for name, point in found.items()} == UNITS
    # Validated: the dimension and two days; quarantined: one day. Each validation run put
    # its counts once, the failed run's too (whichever run of a burst validated a file).
    validation_runs = job_runs(twin, twin.resources.names.validation_job)
    assert (found[FILES_VALIDATED]["Sum"], found[FILES_QUARANTINED]["Sum"]) == (3, 1)
    assert found[FILES_VALIDATED]["SampleCount"] == len(validation_runs)
    assert found[FILES_QUARANTINED]["SampleCount"] == len(validation_runs)
    # Loaded: the two good days and their rows, once per load run that succeeded.
    loads = [r for r in load_runs(twin) if r["JobRunState"] == "SUCCEEDED"]
    expected = expected_days([good_day, other_day])
    assert found[FILES_LOADED]["Sum"] == 2
    assert found[FILES_LOADED]["SampleCount"] == len(loads)
    assert found[ROWS_LOADED]["Sum"] == sum(day.flights for day in expected.values())
    # The wait: from the oldest copy a load loaded being written (its validation) to that
    # load's commit, which is after the load's transaction started (the audit's loaded_at).
    _, audited = twin.warehouse.query(
        "SELECT job_run_id, source_key, source_version, loaded_at FROM flight_load_audit"
    )
    versions = twin.s3.list_object_versions(Bucket=twin.settings.raw_bucket, Prefix="validated/")
    written = {(v["Key"], v["VersionId"]): v["LastModified"] for v in versions["Versions"]}
    oldest: dict[str, dt.datetime] = {}
    started: dict[str, dt.datetime] = {}
    for job_run_id, key, version, loaded_at in audited:
        copy = written[key, version]
        oldest[job_run_id] = min(oldest.get(job_run_id, copy), copy)
        started[job_run_id] = loaded_at.replace(tzinfo=loaded_at.tzinfo or dt.UTC)
    waited = found[VALIDATED_TO_LOADED_SECONDS]
    assert waited["SampleCount"] == len(oldest)  # one per load that loaded a file
    at_least = max((started[run] - oldest[run]).total_seconds() for run in oldest)
    at_most = (dt.datetime.now(dt.UTC) - min(oldest.values())).total_seconds()
    assert at_least - 1 <= waited["Maximum"] <= at_most, (at_least, waited, at_most)


def test_ten_files_uploaded_at_once_are_each_loaded_exactly_once(
    twin: LocalTwin, data_dir: Path
) -> None:
    days = sample(data_dir, 10, flights_per_day=200)
    with_dimension(twin, data_dir)

    uploads = [twin.upload_daily(day) for day in days]
    runs = follow(twin, uploads)

    # Concurrent runs met a running crawl or load: they joined it instead of failing.
    assert [run.status for run in runs] == ["SUCCEEDED"] * 10, [r.cause for r in runs]
    keys = [key for key, _, _ in audit_rows(twin.warehouse)]
    assert sorted(keys) == sorted(f"validated/{day.name}" for day in days)
    assert warehouse_days(twin.warehouse) == expected_days(days)


def test_the_same_event_delivered_twice_starts_one_run(twin: LocalTwin, data_dir: Path) -> None:
    [day] = sample(data_dir, 1)
    with_dimension(twin, data_dir)
    upload = twin.upload_daily(day)
    [run] = follow(twin, [upload])
    assert run.status == "SUCCEEDED"

    # EventBridge delivers at least once: the same Object Created event again.
    detail = {
        "bucket": {"name": upload.bucket},
        "object": {"key": upload.key, "version-id": upload.version},
    }
    entry = {"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}
    assert twin.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0

    sfn = twin.client("stepfunctions")
    deadline = time.monotonic() + 60
    while True:
        routed = sfn.list_executions(stateMachineArn=twin.resources.router_arn)["executions"]
        mine = [e for e in routed if e["status"] != "RUNNING"]
        if len(mine) >= 3 or time.monotonic() > deadline:  # dimension, upload, duplicate
            break
        time.sleep(0.2)
    assert [e["status"] for e in routed] == ["SUCCEEDED"] * 3
    runs = twin.runs.all()
    assert [r.name for r in runs].count(run.name) == 1
    assert len(runs) == 2  # the dimension's run and the file's
    assert [key for key, _, _ in audit_rows(twin.warehouse)] == [f"validated/{day.name}"]


def test_a_failed_load_job_run_fails_the_run_with_an_alert(twin: LocalTwin, data_dir: Path) -> None:
    [day] = sample(data_dir, 1)
    with_dimension(twin, data_dir)
    # Inject the failure into the job itself: its runs now load into a database that is not
    # there (Glue passes a job's NonOverridableArguments over the run's own).
    recreate_job(
        twin,
        twin.resources.names.load_job,
        NonOverridableArguments={"--redshift_database": "nowhere"},
    )

    [run] = follow(twin, [twin.upload_daily(day)])

    assert (run.status, run.failed_step) == ("FAILED", "load")
    assert '"nowhere" does not exist' in run.cause
    [alert] = failure_alerts(twin)
    assert "FAILED at the load step" in alert
    assert '"nowhere" does not exist' in alert
    assert warehouse_days(twin.warehouse) == {}


def test_a_bad_file_uploaded_while_a_load_runs_is_never_loaded(
    twin: LocalTwin, data_dir: Path
) -> None:
    big, bad = sample(data_dir, 2, flights_per_day=150_000)
    malformed(bad)
    with_dimension(twin, data_dir)
    glue = twin.client("glue")

    first = twin.upload_daily(big)
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while not any(
        r["JobRunState"] == "RUNNING"
        for r in glue.get_job_runs(JobName=twin.resources.names.load_job)["JobRuns"]
    ):
        assert time.monotonic() < deadline, "the load never started"
        time.sleep(0.05)
    second = twin.upload_daily(bad)
    loaded, refused = follow(twin, [first, second])

    assert loaded.status == "SUCCEEDED"
    assert (refused.status, refused.failed_step) == ("FAILED", "validation")
    assert warehouse_days(twin.warehouse) == expected_days([big])
    quarantined = twin.s3.list_objects_v2(Bucket=twin.settings.raw_bucket, Prefix="quarantine/")
    assert [o["Key"] for o in quarantined["Contents"]] == [
        f"quarantine/{bad.name}",
        f"quarantine/{bad.name}.validation.json",
    ]


JVM_NOISE = ("Py4J", "Traceback", ".scala", "\n\tat ")


def with_bad_line_11(path: Path) -> bytes:
    """The file's content with line 11's departure delay too big for any INTEGER."""
    lines = path.read_text().splitlines()
    fields = lines[10].split(",")
    fields[3] = "99999999999"
    lines[10] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode()


REASON = "line 11, DepDelay: 99999999999 is outside -2147483648..2147483647"


def test_a_planted_copy_the_warehouse_cannot_hold_is_rejected_with_an_alert_and_files_load(
    twin: LocalTwin, data_dir: Path
) -> None:
    first, second, third, planted_day = sample(data_dir, 4)
    with_dimension(twin, data_dir)
    bucket = twin.settings.raw_bucket
    # A validated copy the gate never saw: no upload, no run of its own.
    twin.s3.put_object(
        Bucket=bucket, Key=f"validated/{planted_day.name}", Body=with_bad_line_11(planted_day)
    )

    runs = follow(twin, [twin.upload_daily(day) for day in (first, second)])

    assert [run.status for run in runs] == ["SUCCEEDED"] * 2, [r.cause for r in runs]
    assert warehouse_days(twin.warehouse) == expected_days([first, second])
    listed = twin.s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/")["Contents"]
    assert [o["Key"] for o in listed] == [
        f"quarantine/{planted_day.name}",
        f"quarantine/{planted_day.name}.validation.json",
    ]
    result = twin.s3.get_object(Bucket=bucket, Key=f"quarantine/{planted_day.name}.validation.json")
    document = json.loads(result["Body"].read())
    assert (document["line"], document["column"], document["value"]) == (
        11,
        "DepDelay",
        "99999999999",
    )
    # No run will report it, so the load that rejected it did: one alert, in plain words.
    [alert] = failure_alerts(twin)
    assert f"REJECTED s3://{bucket}/validated/{planted_day.name}" in alert
    assert REASON in alert
    assert str(twin.services.aws_log) in alert
    assert not any(noise in alert for noise in JVM_NOISE), alert

    [later] = follow(twin, [twin.upload_daily(third)])
    assert later.status == "SUCCEEDED"
    assert warehouse_days(twin.warehouse) == expected_days([first, second, third])


def test_a_copy_changed_after_validation_fails_its_own_run_at_the_load_step(
    twin: LocalTwin, data_dir: Path
) -> None:
    # The endpoint's loads wait for the run lock (tests.conftest.ENDPOINT_LOCK_WAIT_SECONDS),
    # which the test holds while it changes a validated copy.
    good_day, bad_day = sample(data_dir, 2)
    with_dimension(twin, data_dir)
    bucket, key = twin.settings.raw_bucket, f"validated/{bad_day.name}"

    with twin.warehouse.exclusive_run():
        good, bad = (twin.upload_daily(day) for day in (good_day, bad_day))
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while twin.promoted_version(key) != bad.version:
            assert time.monotonic() < deadline, "the file was never promoted"
            time.sleep(0.1)
        # The gate passed it; now its copy holds what the warehouse cannot.
        head = twin.s3.head_object(Bucket=bucket, Key=key)
        twin.s3.put_object(
            Bucket=bucket, Key=key, Body=with_bad_line_11(bad_day), Metadata=head["Metadata"]
        )
    loaded, rejected = follow(twin, [good, bad])

    assert loaded.status == "SUCCEEDED", loaded.cause
    assert (rejected.status, rejected.failed_step) == ("FAILED", "load")
    assert REASON in rejected.cause
    assert warehouse_days(twin.warehouse) == expected_days([good_day])
    # Its own run reports it; the load that rejected it did not alert as well.
    [alert] = failure_alerts(twin)
    assert f"FAILED at the load step for {bad.uri} (version {bad.version}): " in alert
    assert f"the load set aside {key}: {REASON}" in alert
    assert rejected.arn in alert
    assert not any(noise in alert for noise in JVM_NOISE), alert


BURST = 30


def test_thirty_uploads_at_once_each_load_exactly_once_in_a_few_loads_and_crawls(
    twin: LocalTwin, data_dir: Path
) -> None:
    days = sample(data_dir, BURST, flights_per_day=100)
    with_dimension(twin, data_dir)

    uploads = [twin.upload_daily(day) for day in days]
    runs = follow(twin, uploads)

    assert [run.status for run in runs] == ["SUCCEEDED"] * BURST, [r.cause for r in runs]
    assert loaded_versions(twin) == sorted((u.key, u.version) for u in uploads)
    assert warehouse_days(twin.warehouse) == expected_days(days)
    # A few validation runs validated the burst, each version once, each named in its result.
    validations = {r["Id"] for r in job_runs(twin, twin.resources.names.validation_job)}
    assert len(validations) - 1 <= BURST // 3  # less the dimension's
    validated_by = [
        json.loads(
            twin.s3.get_object(
                Bucket=u.bucket, Key=twin.settings.storage.result_key(u.key, u.version)
            )["Body"].read()
        )["validated_by"]
        for u in uploads
    ]
    assert set(validated_by) <= validations
    # The runs waited for the burst's validations, then shared a crawl and a load.
    assert len(load_runs(twin)) <= 3
    assert len(crawls(twin)) <= 3


def test_a_file_validated_while_a_load_runs_is_loaded_by_a_later_load(
    twin: LocalTwin, data_dir: Path
) -> None:
    big, late = sample(data_dir, 2, flights_per_day=150_000)
    with_dimension(twin, data_dir)

    first = twin.upload_daily(big)
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while not any(r["JobRunState"] == "RUNNING" for r in load_runs(twin)):
        assert time.monotonic() < deadline, "the load never started"
        time.sleep(0.05)
    second = twin.upload_daily(late)
    runs = follow(twin, [first, second])

    assert [run.status for run in runs] == ["SUCCEEDED"] * 2, [r.cause for r in runs]
    assert warehouse_days(twin.warehouse) == expected_days([big, late])
    _, loads = twin.warehouse.query(
        "SELECT upload_version, job_run_id FROM flight_load_audit ORDER BY loaded_at"
    )
    [(first_version, first_load), (second_version, second_load)] = loads
    assert (first_version, second_version) == (first.version, second.version)
    assert first_load != second_load
    assert len(load_runs(twin)) == 2


def test_a_bad_file_in_a_burst_fails_alone_with_one_alert_and_the_loads_stay_few(
    twin: LocalTwin, data_dir: Path
) -> None:
    days = sample(data_dir, 12, flights_per_day=100)
    bad_day = malformed(days[6])
    with_dimension(twin, data_dir)

    uploads = [twin.upload_daily(day) for day in days]
    runs = follow(twin, uploads)

    bad = runs[6]
    assert (bad.status, bad.failed_step) == ("FAILED", "validation")
    others = runs[:6] + runs[7:]
    assert [run.status for run in others] == ["SUCCEEDED"] * 11, [r.cause for r in others]
    [alert] = failure_alerts(twin)
    assert f"FAILED at the validation step for {uploads[6].uri}" in alert
    good = [day for day in days if day != bad_day]
    assert warehouse_days(twin.warehouse) == expected_days(good)
    assert len(load_runs(twin)) <= 3


def test_a_day_uploaded_again_during_a_burst_keeps_only_its_newest_version(
    twin: LocalTwin, data_dir: Path
) -> None:
    days = sample(data_dir, 8, flights_per_day=100)
    again = data_dir / "again" / days[3].name
    again.parent.mkdir()
    # The same day, other flights: fewer of them.
    again.write_text("".join(days[3].read_text().splitlines(keepends=True)[:40]))
    with_dimension(twin, data_dir)

    uploads = [twin.upload_daily(day) for day in days]
    newer = twin.upload_daily(again)
    runs = follow(twin, [*uploads, newer])

    assert [run.status for run in runs] == ["SUCCEEDED"] * 9, [r.cause for r in runs]
    assert warehouse_days(twin.warehouse) == expected_days([*days, again])
    # The older upload of the day was replaced before the burst's load read it: its run
    # succeeded as superseded, and says so.
    older = uploads[3]
    assert loaded_versions(twin) == sorted(
        (u.key, u.version) for u in [*uploads[:3], *uploads[4:], newer]
    )
    [message] = [
        m["message"] for m in twin.alerts() if f"(version {older.version})" in m["message"]
    ]
    assert message.startswith(f"Superseded {older.uri} (version {older.version}): a newer upload")
