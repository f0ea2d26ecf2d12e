"""After a deployment: the smoke test, one synthetic day through the pipeline with every trace
of it removed after; the health check, which changes nothing; and the word to operations when
a deployment failed.

Each reaches one environment through a ``Target``: its clients and the names of its resources.
On AWS the target is made from the caller's credentials (``Target.on_aws``: after a deployment,
the smoke role's); on the twin the CLI makes it from the twin's endpoint. What runs is the same.

The smoke test uploads a small daily file for ``SMOKE_DATE`` to the raw bucket, as any upload
arrives, with airport ids from the dimension in use; its run goes through the gate, the crawler
and the load like any other. Once the run succeeded and the day's rows and audit are queryable
(through the Redshift Data API, as the smoke role's database user), the day is removed: every
version of its objects (the upload, its validated copy, its validation outcome, a quarantined
copy), its rows, audit rows and reject records, and its quality report files. The same removal
runs first, so a smoke test killed half-way leaves nothing the next one would count. What it
does not remove is what AWS keeps of any run: the execution's history, the jobs' logs and
metrics, S3 access logs, the staged lines (which expire with the staging bucket's rule) and
the success message on the alert topic (on-call's subscriptions take failures only).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, Final, Protocol

from pipeline.core.contract import AIRPORTS, DAILY_FLIGHTS
from pipeline.core.data_api import DataApi
from pipeline.core.uploads import Upload, execution_arn, run_name
from pipeline.core.warehouse import day_rows_sql, remove_day_statements
from pipeline.deployment import Names
from pipeline.settings import BUCKET_PURPOSES, Settings
from quality.reports import remove_published

SMOKE_DATE: Final = dt.date(1987, 9, 30)
"""The day reserved for smoke tests: the eve of the first month of the US DOT on-time data
(October 1987), so no real daily file carries it. Whatever the warehouse holds for it is a
smoke test's, and is removed."""
SMOKE_FLIGHTS: Final = 12
"""Flights in the smoke test's file: a few per airport pair, enough for the gate's checks."""
SMOKE_AIRPORTS: Final = 3
"""Airports of the dimension in use that the file's flights fly between."""


class SmokeError(RuntimeError):
    """The smoke test or the health check failed; the message says what and what to do."""


class ReportSite(Protocol):
    """Where an environment's quality report is: removes file versions' validations."""

    def remove(self, uri: str, versions: Iterable[str]) -> list[str]: ...


@dataclass(frozen=True)
class PublishedReports:
    """The quality report in the reports bucket, as on AWS."""

    s3: Any
    bucket: str
    prefix: str

    def remove(self, uri: str, versions: Iterable[str]) -> list[str]:
        with tempfile.TemporaryDirectory(prefix="flightpipe-smoke-") as workspace:
            return remove_published(
                self.s3, self.bucket, self.prefix, Path(workspace), uri=uri, versions=versions
            )


@dataclass(frozen=True)
class Target:
    """One environment's pipeline, as the smoke test and the health check reach it."""

    settings: Settings
    client: Callable[[str], Any]
    """A boto3 client of a service, in the environment's account and region."""
    buckets: Mapping[str, str]
    """Bucket names by purpose (``BUCKET_PURPOSES``)."""
    main_arn: str
    router_arn: str
    operations_topic_arn: str
    reports: ReportSite

    @classmethod
    def on_aws(cls, settings: Settings, session: Any = None) -> Target:
        """The environment of ``settings`` in the account of the caller's credentials: names
        as the CDK app gives them (``pipeline.deployment.Names``, buckets by account)."""
        import boto3

        session = session or boto3.Session(region_name=settings.aws.region)
        caller = session.client("sts").get_caller_identity()
        account, partition = caller["Account"], caller["Arn"].split(":")[1]
        region = session.region_name
        names = Names.of(settings)
        buckets = {p: settings.bucket_name(p, account) for p in BUCKET_PURPOSES}
        machine = f"arn:{partition}:states:{region}:{account}:stateMachine:"
        s3 = session.client("s3")
        return cls(
            settings=settings,
            # One client per service: each new one costs a moment to build.
            client=cache(session.client),
            buckets=buckets,
            main_arn=machine + names.main,
            router_arn=machine + names.router,
            operations_topic_arn=f"arn:{partition}:sns:{region}:{account}:{names.operations_topic}",
            reports=PublishedReports(s3, buckets["reports"], settings.storage.reports_prefix),
        )

    @property
    def smoke_key(self) -> str:
        return f"{self.settings.storage.raw_prefix}{SMOKE_DATE.isoformat()}.csv"

    @property
    def warehouse(self) -> DataApi:
        """The warehouse through the Data API, as the caller's database user."""
        return DataApi(
            self.client("redshift-data"),
            self.settings.warehouse.workgroup,
            self.settings.warehouse.database,
            poll_seconds=self.settings.timing.poll_interval_seconds,
        )

    def query(self, sql: str) -> list[list[Any]]:
        """Rows of one statement, each value as the Data API types it."""
        warehouse = self.warehouse
        return [
            [next(iter(field.values())) for field in record]
            for record in warehouse.records(warehouse.execute(sql))
        ]


@dataclass(frozen=True)
class SmokeResult:
    upload: Upload
    run: str
    rows: int
    seconds: float
    removed: int
    """Objects, object versions and report files removed after it."""


def dimension_airports(target: Target) -> list[int]:
    """The airport ids of the dimension in use (its validated copy), or a SmokeError saying
    there is none: the smoke test never uploads a dimension."""
    s3 = target.client("s3")
    bucket = target.buckets["dim"]
    key = target.settings.storage.validated_dimension_key
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except s3.exceptions.NoSuchKey:
        raise SmokeError(
            f"no airport dimension is in use in {target.settings.env.value}: "
            f"s3://{bucket}/{key} does not exist. Upload airport_codes.csv to "
            f"s3://{bucket}/{target.settings.storage.dimension_key}, wait for its run to "
            "succeed, then run the smoke test again; it never uploads a dimension itself"
        ) from None
    column = AIRPORTS.columns[0].source
    ids = sorted({int(row[column]) for row in csv.DictReader(io.StringIO(body)) if row[column]})
    if len(ids) < 2:
        raise SmokeError(f"s3://{bucket}/{key} holds {len(ids)} airport(s): a flight needs two")
    return ids


def smoke_file(airports: Sequence[int]) -> bytes:
    """The smoke test's daily file: ``SMOKE_FLIGHTS`` flights between the first airports of
    ``airports``, in the daily contract's columns."""
    used = list(airports[:SMOKE_AIRPORTS])
    pairs = [(a, b) for a in used for b in used if a != b]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(DAILY_FLIGHTS.headers)
    for n in range(SMOKE_FLIGHTS):
        origin, dest = pairs[n % len(pairs)]
        writer.writerow(("ZZ", origin, dest, n % 15 - 5, n % 20 - 8))
    return text.getvalue().encode()


def remove_traces(target: Target) -> int:
    """Remove everything of ``SMOKE_DATE`` from the environment: the report pages of every
    version of its upload, then every version and delete marker of its objects, then its
    rows, audit rows and reject records. Returns the objects and report files removed."""
    storage = target.settings.storage
    s3 = target.client("s3")
    bucket = target.buckets["raw"]
    key = target.smoke_key
    name = key.rsplit("/", 1)[-1]
    results = storage.results_of(key)
    prefixes = (key, storage.validated_prefix + name, storage.quarantine_prefix + name, results)
    versions = [
        (item["Key"], item["VersionId"])
        for prefix in prefixes
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        for item in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
    ]
    # A quarantined upload's version is moved away; its validation outcome still names it.
    uploads = {v for k, v in versions if k == key} | {
        k.removeprefix(results).removesuffix(".json") for k, _ in versions if k.startswith(results)
    }
    sfn = target.client("stepfunctions")
    for version in uploads:
        earlier = run_name(bucket, key, version)
        if _execution(sfn, execution_arn(target.main_arn, earlier))["status"] == "RUNNING":
            raise RunStillGoingError(
                f"an earlier smoke test's run {earlier} is still going: nothing is removed "
                "under it; run the smoke test again once it has ended (`flightpipe runs`)"
            )
    removed = len(target.reports.remove(f"s3://{bucket}/{key}", sorted(uploads)))
    for object_key, version in versions:
        s3.delete_object(Bucket=bucket, Key=object_key, VersionId=version)
    target.warehouse.batch(remove_day_statements(SMOKE_DATE))
    return removed + len(versions)


def smoke_tested(settings: Settings) -> None:
    """A SmokeError unless the environment runs smoke tests (``aws.smoke_test``)."""
    env = settings.env.value
    if not settings.aws.smoke_test:
        raise SmokeError(
            f"{env} runs no smoke test (aws.smoke_test is false there): its smoke role may "
            f"only read. `flightpipe --env {env} health` checks it without changing anything"
        )


def smoke(target: Target, timeout_seconds: float, say: Callable[[str], None]) -> SmokeResult:
    """Run the smoke test: see the module's docstring. Raises SmokeError when it failed,
    after removing what it made, unless its run is still going (see ``RunStillGoingError``)."""
    smoke_tested(target.settings)
    airports = dimension_airports(target)
    started = time.monotonic()
    say(f"removing what an earlier smoke test of {SMOKE_DATE} may have left")
    remove_traces(target)
    body = smoke_file(airports)
    bucket = target.buckets["raw"]
    response = target.client("s3").put_object(Bucket=bucket, Key=target.smoke_key, Body=body)
    upload = Upload(bucket, target.smoke_key, response["VersionId"])
    name = run_name(upload.bucket, upload.key, upload.version)
    say(f"uploaded {upload.uri} ({SMOKE_FLIGHTS} flights); waiting for run {name}")
    going = False
    try:
        _succeeded(target, name, timeout_seconds)
        rows, audited = (int(v) for v in target.query(day_rows_sql(SMOKE_DATE))[0])
        if (rows, audited) != (SMOKE_FLIGHTS, SMOKE_FLIGHTS):
            raise SmokeError(
                f"run {name} succeeded, but the warehouse holds {rows} row(s) of {SMOKE_DATE} "
                f"and its audit {audited}, not the {SMOKE_FLIGHTS} flights uploaded"
            )
        seconds = time.monotonic() - started
        say(f"{rows} rows of {SMOKE_DATE} queryable after {seconds:.0f} s")
    except RunStillGoingError:
        going = True
        raise
    finally:
        if not going:
            say("removing the smoke test's objects, rows and report pages")
            removed = remove_traces(target)
    return SmokeResult(upload, name, rows, seconds, removed)


class RunStillGoingError(SmokeError):
    """The smoke run had not ended in time. It is left to end: stopping it could stop a load
    it shares with real files (one load takes every validated file waiting), and removing its
    files under a running load would fail that load. The next smoke test removes what it
    left, before it uploads anything."""


def _succeeded(target: Target, name: str, timeout_seconds: float) -> None:
    """Wait for run ``name`` of the main state machine to succeed: a SmokeError if it ended
    otherwise, ``RunStillGoingError`` if it had not ended in time."""
    sfn = target.client("stepfunctions")
    arn = execution_arn(target.main_arn, name)
    deadline = time.monotonic() + timeout_seconds
    while True:
        described = _execution(sfn, arn)
        status = described["status"]
        if status == "SUCCEEDED":
            return
        if status not in ("RUNNING", "PENDING_REDRIVE", "NOT STARTED"):
            raise SmokeError(
                f"run {name} ended {status}: {described.get('error', '')}: "
                f"{described.get('cause', '')}"
            )
        if time.monotonic() > deadline:
            raise RunStillGoingError(
                f"run {name} was {status} after {timeout_seconds:.0f} s; it is left to end, "
                "and nothing was removed while it runs (the next smoke test removes it first). "
                "`flightpipe runs` (or the console) shows where it waits"
            )
        time.sleep(target.settings.timing.poll_interval_seconds)


def _execution(sfn: Any, arn: str) -> dict[str, Any]:
    """An execution's description; ``NOT STARTED`` while its event has not reached the router."""
    try:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return {"status": "NOT STARTED"}
    return described


@dataclass(frozen=True)
class Check:
    """One line of the health check."""

    what: str
    healthy: bool
    detail: str


NEWEST_RUNS: Final = 20
"""How many of the main state machine's newest runs the health check reports."""


def health(target: Target) -> list[Check]:
    """What the environment has, read only: each bucket, both state machines active, the
    Glue jobs and crawlers, and the newest runs' statuses (reported; a failed run is a file's
    outcome, such as a quarantine, not the deployment's health)."""
    names = Names.of(target.settings)
    s3, sfn, glue = (target.client(s) for s in ("s3", "stepfunctions", "glue"))
    checks = []
    for purpose, bucket in target.buckets.items():
        checks.append(_check(f"bucket {purpose}", partial(s3.head_bucket, Bucket=bucket)))
    for arn in (target.main_arn, target.router_arn):
        described = _answer(partial(sfn.describe_state_machine, stateMachineArn=arn))
        status = described.get("status", "missing") if described else "missing"
        checks.append(Check(f"state machine {arn.rsplit(':', 1)[-1]}", status == "ACTIVE", status))
    for job in (names.validation_job, names.load_job):
        checks.append(_check(f"glue job {job}", partial(glue.get_job, JobName=job)))
    for crawler in (names.flight_crawler, names.dimension_crawler):
        checks.append(_check(f"crawler {crawler}", partial(glue.get_crawler, Name=crawler)))
    runs = _answer(
        partial(sfn.list_executions, stateMachineArn=target.main_arn, maxResults=NEWEST_RUNS)
    )
    if runs is None:
        checks.append(Check(f"newest {NEWEST_RUNS} runs", False, "not readable"))
    else:
        statuses = Counter(e["status"] for e in runs["executions"])
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(statuses.items()))
        checks.append(Check(f"newest {NEWEST_RUNS} runs", True, summary or "none yet"))
    return checks


def _answer(call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """The call's answer; None when AWS refused it (missing, or not readable)."""
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError:
        return None


def _check(what: str, call: Callable[[], dict[str, Any]]) -> Check:
    found = _answer(call) is not None
    return Check(what, found, "present" if found else "missing or not readable")


def deployment_failed(target: Target, run_url: str) -> str:
    """Tell the environment's operations topic that its deployment failed; the message id."""
    env = target.settings.env.value
    message = (
        f"The deployment of flightpipe {env} failed or was cancelled: the environment may run "
        f"the previous version, or part of the new one. What failed and why is in the "
        f"workflow run: "
        f"{run_url or '(no run address given)'}. Fix it on main and merge again; nothing is "
        "promoted past a failed environment."
    )
    response = target.client("sns").publish(
        TopicArn=target.operations_topic_arn,
        Subject=f"flightpipe {env}: deployment failed",
        Message=message,
    )
    return str(response["MessageId"])
