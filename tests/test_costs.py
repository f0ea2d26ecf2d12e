"""The AWS cost estimate (``pipeline.costs``): counts at the prices and minimums of the settings."""

from __future__ import annotations

import pytest

from pipeline.costs import Cost, Usage, estimate
from pipeline.settings import PriceSettings

NOTHING = Usage(
    validation_runs=0, load_runs=0, crawls=0, statements=0, transitions=0, express_seconds=()
)


def lines(usage: Usage, prices: PriceSettings) -> dict[str, Cost]:
    return {cost.item: cost for cost in estimate(usage, prices)}


def test_nothing_used_costs_nothing() -> None:
    assert sum(cost.usd for cost in estimate(NOTHING, PriceSettings())) == 0


def test_each_job_run_pays_the_minimum_on_every_worker_of_its_type() -> None:
    prices = PriceSettings(
        glue_dpu_hour_usd=1.0,
        glue_job_minimum_seconds=1800,
        glue_worker_type="G.2X",
        validation_workers=3,
        load_workers=5,
    )
    usage = Usage(
        validation_runs=4, load_runs=2, crawls=0, statements=0, transitions=0, express_seconds=()
    )
    found = lines(usage, prices)
    # runs x workers x 2 DPUs per G.2X worker x half an hour x 1 USD per DPU-hour
    assert found["Glue validation job runs"].usd == pytest.approx(4 * 3 * 2 * 0.5)
    assert found["Glue load job runs"].usd == pytest.approx(2 * 5 * 2 * 0.5)
    assert found["Glue validation job runs"].count == 4


def test_each_crawl_pays_the_crawler_minimum() -> None:
    prices = PriceSettings(crawler_dpu_hour_usd=2.0, crawler_minimum_seconds=900, crawler_dpus=2)
    usage = Usage(
        validation_runs=0, load_runs=0, crawls=3, statements=0, transitions=0, express_seconds=()
    )
    assert lines(usage, prices)["Glue crawls"].usd == pytest.approx(3 * 2 * 0.25 * 2.0)


def test_standard_transitions_are_billed_each() -> None:
    prices = PriceSettings(standard_transition_usd=0.5)
    usage = Usage(
        validation_runs=0, load_runs=0, crawls=0, statements=0, transitions=7, express_seconds=()
    )
    assert lines(usage, prices)["Step Functions Standard transitions"].usd == pytest.approx(3.5)


def test_express_pays_per_request_and_its_duration_rounded_up_to_the_step() -> None:
    prices = PriceSettings(
        express_request_usd=10.0,
        express_gb_second_usd=1.0,
        express_duration_step_ms=100,
        express_memory_chunk_mb=512,
    )
    usage = Usage(
        validation_runs=0,
        load_runs=0,
        crawls=0,
        statements=0,
        transitions=0,
        express_seconds=(0.01, 0.1, 0.25),
    )
    express = lines(usage, prices)["Step Functions Express requests"]
    # 0.1 + 0.1 + 0.3 s billed, at half a GB
    assert express.usd == pytest.approx(3 * 10.0 + 0.5 * 0.5)
    assert express.count == 3


def test_every_statement_and_every_load_pays_the_minimum_at_base_capacity() -> None:
    prices = PriceSettings(
        redshift_rpu_hour_usd=3.0, redshift_base_rpus=16, redshift_minimum_seconds=120
    )
    usage = Usage(
        validation_runs=0, load_runs=2, crawls=0, statements=5, transitions=0, express_seconds=()
    )
    found = lines(usage, prices)
    minimum = 16 * 120 / 3600 * 3.0
    assert found["Redshift Serverless statements"].usd == pytest.approx(5 * minimum)
    assert found["Redshift Serverless, the loads' transactions"].usd == pytest.approx(2 * minimum)
