"""The AWS cost estimate (``pipeline.costs``): counts at the prices and minimums of the settings."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.costs import REDSHIFT, Cost, Usage, active_periods, estimate
from pipeline.settings import AwsSettings, GlueJobSettings, PriceSettings

NOTHING = Usage(
    validation_runs=0,
    load_runs=0,
    crawls=0,
    statements=(),
    load_transactions=(),
    transitions=0,
    express_seconds=(),
)


def lines(usage: Usage, prices: PriceSettings, aws: AwsSettings | None = None) -> dict[str, Cost]:
    return {cost.item: cost for cost in estimate(usage, prices, aws or AwsSettings())}


def test_nothing_used_costs_nothing() -> None:
    assert sum(cost.usd for cost in estimate(NOTHING, PriceSettings(), AwsSettings())) == 0


def test_each_job_run_pays_the_minimum_on_every_worker_of_its_type() -> None:
    prices = PriceSettings(glue_dpu_hour_usd=1.0, glue_job_minimum_seconds=1800)
    aws = AwsSettings(
        validation_job=GlueJobSettings(worker_type="G.2X", workers=3),
        load_job=GlueJobSettings(worker_type="G.2X", workers=5),
    )
    usage = dataclasses.replace(NOTHING, validation_runs=4, load_runs=2)
    found = lines(usage, prices, aws)
    # runs x workers x 2 DPUs per G.2X worker x half an hour x 1 USD per DPU-hour
    assert found["Glue validation job runs"].usd == pytest.approx(4 * 3 * 2 * 0.5)
    assert found["Glue load job runs"].usd == pytest.approx(2 * 5 * 2 * 0.5)
    assert found["Glue validation job runs"].count == 4


def test_each_crawl_pays_the_crawler_minimum() -> None:
    prices = PriceSettings(crawler_dpu_hour_usd=2.0, crawler_minimum_seconds=900, crawler_dpus=2)
    usage = dataclasses.replace(NOTHING, crawls=3)
    assert lines(usage, prices)["Glue crawls"].usd == pytest.approx(3 * 2 * 0.25 * 2.0)


def test_standard_transitions_are_billed_each() -> None:
    prices = PriceSettings(standard_transition_usd=0.5)
    usage = dataclasses.replace(NOTHING, transitions=7)
    assert lines(usage, prices)["Step Functions Standard transitions"].usd == pytest.approx(3.5)


def test_express_pays_per_request_and_its_duration_rounded_up_to_the_step() -> None:
    prices = PriceSettings(
        express_request_usd=10.0,
        express_gb_second_usd=1.0,
        express_duration_step_ms=100,
        express_memory_chunk_mb=512,
    )
    usage = dataclasses.replace(NOTHING, express_seconds=(0.01, 0.1, 0.25))
    express = lines(usage, prices)["Step Functions Express requests"]
    # 0.1 + 0.1 + 0.3 s billed, at half a GB
    assert express.usd == pytest.approx(3 * 10.0 + 0.5 * 0.5)
    assert express.count == 3


def test_the_warehouse_is_billed_for_its_active_periods_at_base_capacity() -> None:
    prices = PriceSettings(redshift_rpu_hour_usd=3.0, redshift_minimum_seconds=120)
    usage = dataclasses.replace(
        NOTHING,
        # Three statements in one period (the second and third start within the first's
        # minimum; the third runs past it), one alone, and a load's transaction inside the first.
        statements=((0, 1), (30, 31), (100, 200), (1000, 1001)),
        load_transactions=((50, 50),),
    )
    warehouse = lines(usage, prices, AwsSettings(redshift_base_capacity=16))[REDSHIFT]
    # 0 to 200 s, then 1000 to 1120 s: 320 s at 16 RPU and 3 USD per RPU-hour.
    assert warehouse.usd == pytest.approx(16 * 320 / 3600 * 3.0)
    assert warehouse.count == 5
    assert "2 periods" in warehouse.billed_as


def test_statements_apart_each_pay_the_minimum() -> None:
    assert active_periods([(0, 1), (120, 121), (500, 500)], 60) == [
        (0, 60),
        (120, 180),
        (500, 560),
    ]
