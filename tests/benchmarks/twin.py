"""The event path on the twin (``make bench``, ``--only twin``): upload, S3 event, router, runs.

Each scenario times what a user waits for, from the first upload (the S3 PUT) until the last
of its runs has finished, beside the bench's DuckDB + COPY reference of the same files computed
in the same run, with the peak memory of all processes:

- one warm file: one daily file on a running twin (its dimension and one earlier file loaded
  through the event path first, so Spark is up), upload to queryable (target under 10 s, aim
  4 s);
- a burst of 30 files, 5M flights, uploaded at once (targets: at least 100,000 rows/s end to
  end, at most 3 load job runs and 3 crawls);
- 365 daily files of about 1,000 flights uploaded at once (targets: every run SUCCEEDED, at
  most 5 load runs and 5 crawls, under 3 minutes);
- peak memory under 4 GB in each.

The scenarios share one twin, each in its own database and bucket prefix, so each has its own
jobs, crawler and state machines (``scenario_twin``). After each, what it used is read from the
twin's services, for the runs started since its first upload: the validation and load job runs
(GetJobRuns), the flight crawler's crawls (ListCrawls), the Data API statements of its database
(ListStatements), the state transitions AWS bills for the main machine's executions
(GetExecutionHistory) and the router's Express requests with their durations (ListExecutions:
AWS refuses it for Express machines and meters them itself; moto 5.2.5 serves it). Then its
AWS cost (``pipeline.costs``). Targets are reported, never asserted; a scenario that ends with
rows missing is reported like the others, and the bench fails once every table is printed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rich.table import Table

from pipeline.core.contract import FLIGHT_PROCESSED
from pipeline.core.uploads import Upload, run_name
from pipeline.costs import CRAWLS, LOAD_RUNS, Cost, Usage, estimate
from pipeline.local.runs import Run
from pipeline.local.services import LocalServices
from pipeline.local.twin import LocalTwin
from pipeline.sample import SampleSpec
from pipeline.settings import Settings
from tests.benchmarks.etl import (
    BIG_PEAK_MB,
    YEAR,
    PeakMemory,
    Row,
    Sample,
    bench_settings,
    out,
    progress,
    sample,
    scenario_twin,
    stop_services,
    table_rows,
    time_reference_load,
)

RUN_TIMEOUT_SECONDS: Final = 600
"""How long a scenario's runs are followed before its counts are read as they stand."""
POLL_SECONDS: Final = 0.1

WARM = SampleSpec(days=2, flights_per_day=3000, seed=5)  # one to warm up, one measured
WARM_TARGET_SECONDS: Final = 10.0
WARM_AIM_SECONDS: Final = 4.0
BURST = SampleSpec(days=30, flights_per_day=166_667)  # 5M flights
BURST_ROWS_PER_SECOND: Final = 100_000
BURST_MOSTLOAD_RUNS: Final = 3
BURST_MOSTCRAWLS: Final = 3
BACKFILL_DAYS: Final = 365  # of YEAR, the ETL scenarios' year of about 1,000 flights a day
BACKFILL_MOSTLOAD_RUNS: Final = 5
BACKFILL_MOSTCRAWLS: Final = 5
BACKFILL_TARGET_SECONDS: Final = 180.0


@dataclass(frozen=True)
class Used:
    """What a scenario used, read from the twin's services after it."""

    runs: Counter[str]
    """The main machine's executions, by status."""
    usage: Usage


@dataclass(frozen=True)
class Outcome:
    """One scenario: its row of the results table, what it used and the targets on those."""

    label: str
    row: Row
    used: Used
    limits: dict[str, int]
    """The most of each cost item (by its ``Cost.item``) the scenario may use."""
    all_succeeded: bool | None = None
    """Whether every run SUCCEEDED, where that is a target."""


# -- counting on the twin ---------------------------------------------------------------------


def _since(items: Iterable[dict[str, Any]], field: str, start: dt.datetime) -> list[Any]:
    return [item for item in items if item[field] >= start]


def _pages(client: Any, operation: str, key: str, **arguments: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**arguments):
        yield from page[key]


def _crawls(glue: Any, crawler: str, start: dt.datetime) -> list[dict[str, Any]]:
    """The crawler's crawls started from ``start`` on (ListCrawls).

    moto 5.2.5 answers ListCrawls with the first 20 crawls and no NextToken, so the crawls are
    asked for by start time instead (a START_TIME filter, in moto's form of the time: ISO 8601,
    UTC, no zone), from the last one each answer holds, until an answer holds none not seen.
    """
    found: dict[str, dict[str, Any]] = {}
    bound = start
    while True:
        value = bound.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
        page = glue.list_crawls(
            CrawlerName=crawler,
            Filters=[{"FieldName": "START_TIME", "FilterOperator": "GE", "FieldValue": value}],
        )["Crawls"]
        new = {crawl["CrawlId"]: crawl for crawl in page if crawl["CrawlId"] not in found}
        if not new:
            return list(found.values())
        found.update(new)
        bound = page[-1]["StartTime"]


def billed_transitions(events: Iterable[dict[str, Any]]) -> int:
    """State transitions AWS bills an execution for: "Step Functions counts a state transition
    each time a step of your workflow is executed", and "each retry will be charged as an
    additional state transition" (https://aws.amazon.com/step-functions/pricing/). A step
    executed is a state entered; a retry is a task scheduled again after its first attempt."""
    types = Counter(event["type"] for event in events)
    entered = sum(n for kind, n in types.items() if kind.endswith("StateEntered"))
    retries = max(0, types["TaskScheduled"] - types["TaskStateEntered"])
    return entered + retries


def used_since(twin: LocalTwin, start: dt.datetime) -> Used:
    """What the scenario's resources did from ``start`` on, from the twin's APIs."""
    names = twin.resources.names
    glue, sfn = twin.client("glue"), twin.client("stepfunctions")
    jobs = {
        job: _since(_pages(glue, "get_job_runs", "JobRuns", JobName=job), "StartedOn", start)
        for job in (names.validation_job, names.load_job)
    }
    crawls = _crawls(glue, names.flight_crawler, start)
    statements = _since(
        _pages(
            twin.client("redshift-data"),
            "list_statements",
            "Statements",
            Database=twin.settings.warehouse.database,
        ),
        "CreatedAt",
        start.replace(microsecond=0),  # moto keeps a statement's times to the second
    )
    main = _since(
        _pages(sfn, "list_executions", "executions", stateMachineArn=twin.resources.main_arn),
        "startDate",
        start,
    )
    transitions = sum(
        billed_transitions(
            _pages(sfn, "get_execution_history", "events", executionArn=e["executionArn"])
        )
        for e in main
    )
    routed = _since(
        _pages(sfn, "list_executions", "executions", stateMachineArn=twin.resources.router_arn),
        "startDate",
        start,
    )
    now = dt.datetime.now(dt.UTC)
    express = tuple((e.get("stopDate", now) - e["startDate"]).total_seconds() for e in routed)
    usage = Usage(
        validation_runs=len(jobs[names.validation_job]),
        load_runs=len(jobs[names.load_job]),
        crawls=len(crawls),
        statements=[
            (st["CreatedAt"].timestamp(), st["UpdatedAt"].timestamp()) for st in statements
        ],
        load_transactions=[
            (run["CompletedOn"].timestamp(),) * 2
            for run in jobs[names.load_job]
            if "CompletedOn" in run
        ],
        transitions=transitions,
        express_seconds=express,
    )
    return Used(Counter(e["status"] for e in main), usage)


# -- scenarios --------------------------------------------------------------------------------


def _follow(twin: LocalTwin, uploads: Sequence[Upload]) -> list[Run]:
    """Follow the uploads' runs until all have finished or the timeout passed."""
    names = [run_name(u.bucket, u.key, u.version) for u in uploads]
    return twin.runs.follow(names, RUN_TIMEOUT_SECONDS, POLL_SECONDS)


def _measure(
    name: str, label: str, data: Sample, files: Sequence[Path], primer: Sequence[Path] = ()
) -> tuple[Row, Used]:
    """One scenario in its own database and prefix: the dimension and ``primer`` through the
    event path first, then ``files`` uploaded at once, timed until their runs have finished,
    counted, and beside the reference load of the same files."""
    progress.log(f"scenario: {label}")
    twin = scenario_twin(name, warm_up=True)
    _ = twin.resources  # the buckets' events reach the router only once it is provisioned
    _follow(twin, [twin.upload_dimension(data.dimension)])
    _follow(twin, [twin.upload_daily(path) for path in primer])
    start = dt.datetime.now(dt.UTC)
    with PeakMemory(twin.services) as memory:
        began = time.perf_counter()
        runs = _follow(twin, [twin.upload_daily(path) for path in files])
        seconds = time.perf_counter() - began
    used = used_since(twin, start)
    expected = data.rows_of([*primer, *files])
    found = table_rows(twin.warehouse.url, FLIGHT_PROCESSED.name)
    unfinished = sum(1 for run in runs if not run.finished)
    problem = ""
    if found != expected:
        problem = f"{label}: {found:,} rows in {FLIGHT_PROCESSED.name}, expected {expected:,}"
        if unfinished:
            problem += f" ({unfinished} runs unfinished after {RUN_TIMEOUT_SECONDS} s)"
        progress.log(problem)
    reference = time_reference_load(twin, data.dimension, files, data.rows_of(files))
    row = Row(
        label, data.rows_of(files), seconds, reference.seconds, memory.peak_mb, problem=problem
    )
    return row, used


def _peak_target(row: Row) -> tuple[str, bool]:
    return f"peak < {BIG_PEAK_MB:,} MB", (row.peak_mb or 0.0) < BIG_PEAK_MB


def warm_file() -> Outcome:
    data = sample(WARM)
    primer, measured = data.daily
    label = "twin: 1 warm file, upload to queryable"
    row, used = _measure("twin_warm", label, data, [measured], primer=[primer])
    peak, peak_met = _peak_target(row)
    seconds = row.flightpipe_s or 0.0
    return Outcome(
        label,
        dataclasses.replace(
            row,
            target=f"< {WARM_TARGET_SECONDS:g} s (aim {WARM_AIM_SECONDS:g} s), {peak}",
            met=seconds < WARM_TARGET_SECONDS and peak_met,
        ),
        used,
        limits={},
    )


def burst() -> Outcome:
    data = sample(BURST)
    label = f"twin: {len(data.daily)} files ({data.rows_of(data.daily) / 1e6:.1f}M) at once"
    row, used = _measure("twin_burst", label, data, data.daily)
    peak, peak_met = _peak_target(row)
    rate = (row.rows or 0) / (row.flightpipe_s or float("inf"))
    return Outcome(
        label,
        dataclasses.replace(
            row,
            target=f">= {BURST_ROWS_PER_SECOND:,} rows/s, {peak}",
            met=rate >= BURST_ROWS_PER_SECOND and peak_met,
        ),
        used,
        limits={LOAD_RUNS: BURST_MOSTLOAD_RUNS, CRAWLS: BURST_MOSTCRAWLS},
    )


def backfill() -> Outcome:
    data = sample(YEAR)
    files = data.daily[:BACKFILL_DAYS]
    label = f"twin: {len(files)} daily files at once"
    row, used = _measure("twin_backfill", label, data, files)
    peak, peak_met = _peak_target(row)
    return Outcome(
        label,
        dataclasses.replace(
            row,
            target=f"< {BACKFILL_TARGET_SECONDS:g} s, {peak}",
            met=(row.flightpipe_s or 0.0) < BACKFILL_TARGET_SECONDS and peak_met,
        ),
        used,
        limits={LOAD_RUNS: BACKFILL_MOSTLOAD_RUNS, CRAWLS: BACKFILL_MOSTCRAWLS},
        all_succeeded=used.runs == Counter({"SUCCEEDED": len(files)}),
    )


# -- report -----------------------------------------------------------------------------------


def _met(met: bool | None) -> str:
    return "-" if met is None else "yes" if met else "no"


def usage_table(outcome: Outcome, settings: Settings) -> Table:
    """What a scenario used, its targets, and what that would cost on AWS."""
    table = Table(
        title=f"{outcome.label}: what it used (read from the twin) and its AWS cost",
        caption=(
            "Job runs and crawls are billed at AWS's minimums (the twin's durations are not "
            "AWS's), Redshift for the periods its statements kept it active (pipeline/costs.py). "
            "Prices: PriceSettings (US East, on-demand, no free tier); workers: AwsSettings."
        ),
    )
    for name in ("item", "count", "target", "met", "billed on AWS as", "USD"):
        table.add_column(name, justify="right" if name in ("count", "USD") else "left")
    runs = ", ".join(f"{n} {status}" for status, n in sorted(outcome.used.runs.items()))
    table.add_row(
        "main runs",
        runs or "none",
        "all SUCCEEDED" if outcome.all_succeeded is not None else "-",
        _met(outcome.all_succeeded),
        "-",
        "-",
    )
    costs = estimate(outcome.used.usage, settings.prices, settings.aws)
    for cost in costs:
        limit = outcome.limits.get(cost.item)
        table.add_row(
            cost.item,
            f"{cost.count:,}",
            "-" if limit is None else f"<= {limit}",
            _met(None if limit is None else cost.count <= limit),
            cost.billed_as,
            f"{cost.usd:.4f}",
        )
    table.add_row("total", "", "", "", "", f"{_total(costs):.4f}")
    return table


def _total(costs: Sequence[Cost]) -> float:
    return sum(cost.usd for cost in costs)


def cost_summary(outcomes: Sequence[Outcome], settings: Settings) -> list[str]:
    """The estimate of every scenario as a Markdown table, for docs/ARCHITECTURE.md."""
    lines = [
        f"| work (bench of {dt.date.today().isoformat()}) | main runs | validation runs | "
        "crawls | load runs | Data API statements | state transitions | Express requests | "
        "AWS estimate (USD) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        usage = outcome.used.usage
        runs = ", ".join(f"{n} {status}" for status, n in sorted(outcome.used.runs.items()))
        lines.append(
            f"| {outcome.label.removeprefix('twin: ')} | {runs} | {usage.validation_runs} | "
            f"{usage.crawls} | {usage.load_runs} | {len(usage.statements)} | "
            f"{usage.transitions:,} | {len(usage.express_seconds)} | "
            f"{_total(estimate(usage, settings.prices, settings.aws)):.3f} |"
        )
    return lines


def twin_rows() -> list[Row]:
    # A fresh twin: its endpoint (and its Spark, in the background) starts with the first scenario.
    stop_services(LocalServices(bench_settings("twin", warm_up=True)))
    costed = bench_settings()
    outcomes = []
    # Each scenario's table as soon as it ends: a run cut short still leaves its figures.
    for scenario in (warm_file, burst, backfill):
        outcomes.append(scenario())
        out.print(usage_table(outcomes[-1], costed))
    stop_services(LocalServices(bench_settings("twin", warm_up=True)))
    out.print("AWS cost estimate, as Markdown:")
    for line in cost_summary(outcomes, costed):
        out.print(line, soft_wrap=True)
    return [outcome.row for outcome in outcomes]
