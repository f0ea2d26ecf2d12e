"""What a piece of work would cost on AWS: the twin's counts of what it used, at AWS's prices.

The twin counts what AWS bills by (job runs, crawls, state transitions, requests, statements);
it cannot know how long each would take on AWS, whose Glue workers start in seconds to
minutes and whose Redshift is not the twin's PostgreSQL. So every job run and crawl is billed
at AWS's minimum (``PriceSettings``): a lower bound when runs take longer than the minimum.
Redshift Serverless bills the time its workgroup is active, not each statement ("When queries
run, you're billed according to the capacity used in a given duration ... When no queries are
running, you aren't billed for compute capacity",
https://docs.aws.amazon.com/redshift/latest/mgmt/serverless-billing.html): statements that
overlap or follow each other within the minimum share one active period (``active_periods``),
on the twin's clock. Express duration is the twin's own, rounded up as AWS rounds it (the
router does no work AWS would do slower).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pipeline.settings import AwsSettings, GlueJobSettings, PriceSettings

WORKER_DPUS: Final[dict[str, float]] = {
    "G.1X": 1.0,
    "G.2X": 2.0,
    "G.4X": 4.0,
    "G.8X": 8.0,
}
"""DPUs per worker of each Glue worker type ("G.1X ... DPU: 1 DPU (4 vCPUs, 16 GB memory)",
https://docs.aws.amazon.com/glue/latest/dg/worker-types.html)."""

LOAD_RUNS: Final = "Glue load job runs"
CRAWLS: Final = "Glue crawls"
REDSHIFT: Final = "Redshift Serverless: statements and load transactions"
"""Items of an estimate that targets are set on."""

_SECONDS_PER_HOUR: Final = 3600
_MB_PER_GB: Final = 1024


Span = tuple[float, float]
"""A start and an end, in seconds on one clock."""


def active_periods(spans: Sequence[Span], minimum_seconds: float) -> list[Span]:
    """The periods a workgroup is active for ``spans`` of work: each period lasts at least
    ``minimum_seconds`` from its start, and a span that starts within one extends it."""
    periods: list[Span] = []
    for start, end in sorted(spans):
        if periods and start <= periods[-1][1]:
            periods[-1] = (periods[-1][0], max(periods[-1][1], end))
        else:
            periods.append((start, max(end, start + minimum_seconds)))
    return periods


@dataclass(frozen=True)
class Usage:
    """What one piece of work used, as counted on the twin."""

    validation_runs: int
    load_runs: int
    crawls: int
    statements: Sequence[Span]
    """When each Redshift Data API statement the state machines ran (ExecuteStatement and
    BatchExecuteStatement calls) started and ended."""
    load_transactions: Sequence[Span]
    """When each load run's warehouse transaction ran. On AWS it goes through the Data API
    too (``jobs.redshift``: a batch, then the count of its rows, back to back); the twin's load
    writes PostgreSQL directly, so its Data API never sees it: each is taken as an instant at
    its run's end, which the minimum then bills."""
    transitions: int
    """Standard state transitions, as AWS bills them (states entered, and each retry)."""
    express_seconds: Sequence[float]
    """The duration of each Express request (the router's executions), one per event."""


@dataclass(frozen=True)
class Cost:
    """One line of an estimate: what is billed, how it was counted, in US dollars."""

    item: str
    count: int
    billed_as: str
    usd: float


def estimate(usage: Usage, prices: PriceSettings, aws: AwsSettings) -> list[Cost]:
    """The AWS cost of ``usage`` at ``prices``, with the jobs' workers and the warehouse's
    capacity ``aws`` deploys, one line per billed item."""
    job_minutes = prices.glue_job_minimum_seconds / 60

    def job_run(job: GlueJobSettings) -> float:
        dpus = job.workers * WORKER_DPUS[job.worker_type]
        return dpus * prices.glue_job_minimum_seconds / _SECONDS_PER_HOUR * prices.glue_dpu_hour_usd

    def workers(job: GlueJobSettings) -> str:
        return f"{job.workers} x {job.worker_type}, {job_minutes:g} min minimum each"

    crawl = (
        prices.crawler_dpus
        * prices.crawler_minimum_seconds
        / _SECONDS_PER_HOUR
        * prices.crawler_dpu_hour_usd
    )
    step = prices.express_duration_step_ms / 1000
    billed_seconds = sum(math.ceil(s / step) * step for s in usage.express_seconds)
    memory_gb = prices.express_memory_chunk_mb / _MB_PER_GB
    express = len(usage.express_seconds) * prices.express_request_usd + (
        billed_seconds * memory_gb * prices.express_gb_second_usd
    )
    periods = active_periods(
        [*usage.statements, *usage.load_transactions], prices.redshift_minimum_seconds
    )
    active_seconds = sum(end - start for start, end in periods)
    warehouse = (
        aws.redshift_base_capacity
        * active_seconds
        / _SECONDS_PER_HOUR
        * prices.redshift_rpu_hour_usd
    )
    return [
        Cost(
            "Glue validation job runs",
            usage.validation_runs,
            workers(aws.validation_job),
            usage.validation_runs * job_run(aws.validation_job),
        ),
        Cost(
            LOAD_RUNS,
            usage.load_runs,
            workers(aws.load_job),
            usage.load_runs * job_run(aws.load_job),
        ),
        Cost(
            CRAWLS,
            usage.crawls,
            f"{prices.crawler_dpus:g} DPU, {prices.crawler_minimum_seconds / 60:g} min "
            "minimum each",
            usage.crawls * crawl,
        ),
        Cost(
            "Step Functions Standard transitions",
            usage.transitions,
            "per transition",
            usage.transitions * prices.standard_transition_usd,
        ),
        Cost(
            "Step Functions Express requests",
            len(usage.express_seconds),
            f"per request + {billed_seconds:.1f} s x {prices.express_memory_chunk_mb} MB",
            express,
        ),
        Cost(
            REDSHIFT,
            len(usage.statements) + len(usage.load_transactions),
            f"{aws.redshift_base_capacity} RPU x {active_seconds:,.0f} s active in "
            f"{len(periods)} period{'s' if len(periods) != 1 else ''} "
            f"({prices.redshift_minimum_seconds} s minimum each)",
            warehouse,
        ),
    ]


DAILY_FILE: Final = Usage(
    validation_runs=1,
    load_runs=1,
    crawls=1,
    statements=((0.0, 0.2), (3.0, 3.2)),
    load_transactions=((3.0, 3.0),),
    transitions=45,
    express_seconds=(0.1,),
)
"""One daily file arriving on its own, as ``make bench BENCH_ARGS="--only twin"`` counted its
warm file (docs/ARCHITECTURE.md, "What it costs on AWS"): one validation run, one load run,
one crawl, two Data API statements and the load's transaction within seconds (one active
period of the warehouse: its minimum), 45 state transitions, one Express request. What it
costs depends on what an environment deploys (workers, base capacity); the counts do not."""
