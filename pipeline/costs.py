"""What a piece of work would cost on AWS: the twin's counts of what it used, at AWS's prices.

The twin counts what AWS bills by (job runs, crawls, state transitions, requests, statements);
it cannot know how long each would take on AWS, whose Glue workers start in seconds to
minutes and whose Redshift is not the twin's PostgreSQL. So every job run, crawl and statement
is billed at AWS's minimum (``PriceSettings``): a lower bound for the Glue side when runs take
longer than the minimum, and an upper bound for Redshift, whose concurrent statements share
one active period on AWS but are billed one minimum each here. Express duration is the
twin's own, rounded up as AWS rounds it (the router does no work AWS would do slower).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pipeline.settings import PriceSettings

WORKER_DPUS: Final[dict[str, float]] = {
    "G.025X": 0.25,
    "G.1X": 1.0,
    "G.2X": 2.0,
    "G.4X": 4.0,
    "G.8X": 8.0,
}
"""DPUs per worker of each Glue worker type ("G.1X ... DPU: 1 DPU (4 vCPUs, 16 GB memory)",
https://docs.aws.amazon.com/glue/latest/dg/worker-types.html)."""

LOAD_RUNS: Final = "Glue load job runs"
CRAWLS: Final = "Glue crawls"
"""Items of an estimate that targets are set on."""

_SECONDS_PER_HOUR: Final = 3600
_MB_PER_GB: Final = 1024


@dataclass(frozen=True)
class Usage:
    """What one piece of work used, as counted on the twin."""

    validation_runs: int
    load_runs: int
    crawls: int
    statements: int
    """Redshift Data API statements the state machines ran (ExecuteStatement and
    BatchExecuteStatement calls)."""
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


def estimate(usage: Usage, prices: PriceSettings) -> list[Cost]:
    """The AWS cost of ``usage``, one line per billed item."""
    dpus = WORKER_DPUS[prices.glue_worker_type]
    job_minutes = prices.glue_job_minimum_seconds / 60

    def job_run(workers: int) -> float:
        dpu_hours = workers * dpus * prices.glue_job_minimum_seconds / _SECONDS_PER_HOUR
        return dpu_hours * prices.glue_dpu_hour_usd

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
    statement = (
        prices.redshift_base_rpus
        * prices.redshift_minimum_seconds
        / _SECONDS_PER_HOUR
        * prices.redshift_rpu_hour_usd
    )
    worker = prices.glue_worker_type
    return [
        Cost(
            "Glue validation job runs",
            usage.validation_runs,
            f"{prices.validation_workers} x {worker}, {job_minutes:g} min minimum each",
            usage.validation_runs * job_run(prices.validation_workers),
        ),
        Cost(
            LOAD_RUNS,
            usage.load_runs,
            f"{prices.load_workers} x {worker}, {job_minutes:g} min minimum each",
            usage.load_runs * job_run(prices.load_workers),
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
            "Redshift Serverless statements",
            usage.statements,
            f"{prices.redshift_base_rpus} RPU, {prices.redshift_minimum_seconds} s minimum each",
            usage.statements * statement,
        ),
        # On AWS the load's transaction goes through the Data API too (``jobs.redshift``: a
        # batch, then the count of its rows, back to back); the twin's load writes PostgreSQL
        # directly, so its Data API never sees it.
        Cost(
            "Redshift Serverless, the loads' transactions",
            usage.load_runs,
            f"{prices.redshift_base_rpus} RPU, {prices.redshift_minimum_seconds} s minimum per "
            "load run",
            usage.load_runs * statement,
        ),
    ]
