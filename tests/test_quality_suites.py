"""The expectation suites follow the contract and the quality settings."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipeline.core.contract import DAILY_FLIGHTS, ColumnType
from pipeline.core.settings import QualitySettings
from quality.expectations import WarehouseLimit
from quality.suites import BLOCKING, SAYS, WARNING, daily_suite, dimension_suite


def by_type(suite: Any, kind: str) -> list[Any]:
    return [e for e in suite.expectations if e.expectation_type == kind]


def test_every_contract_column_is_required_and_every_integer_column_typed() -> None:
    suite = daily_suite(QualitySettings(), [10397])
    (columns,) = by_type(suite, "expect_table_columns_to_match_set")
    assert set(columns.column_set) == {c.name for c in DAILY_FLIGHTS.columns}
    typed = {e.column for e in by_type(suite, "expect_column_values_to_match_regex_per_value")}
    integers = {c.name for c in DAILY_FLIGHTS.columns if c.type is ColumnType.INTEGER}
    assert integers <= typed
    not_null = {e.column for e in by_type(suite, "expect_column_values_to_not_be_null")}
    assert not_null == {c.name for c in DAILY_FLIGHTS.columns if not c.nullable}


def test_thresholds_come_from_the_settings_and_delay_range_is_a_warning() -> None:
    quality = QualitySettings(
        min_delay_minutes=-60, max_delay_minutes=900, max_unknown_airport_share=0.2
    )
    suite = daily_suite(quality, [10397, 12892])
    ranges = by_type(suite, "expect_column_values_to_be_between_per_value")
    assert {(e.min_value, e.max_value, e.severity) for e in ranges} == {(-60, 900, WARNING)}
    known = by_type(suite, "expect_column_values_to_be_in_set_per_value")
    assert {(tuple(e.value_set), e.mostly, e.severity) for e in known} == {
        ((10397, 12892), 0.8, BLOCKING)
    }


def test_dimension_ids_must_be_unique() -> None:
    (unique,) = by_type(dimension_suite(), "expect_column_values_to_be_unique")
    assert unique.column == "airport_id"
    assert unique.severity == BLOCKING


NAN = float("nan")
PER_VALUE_CASES = {
    "regex": (
        pd.Series(["DL", "xyz", None, "DL", "dl", "xyz", "AA", None] * 50, dtype="category"),
        "ExpectColumnValuesToMatchRegex",
        {"regex": r"^[A-Z]{2}$"},
        150,
    ),
    "between": (
        pd.Series([5.0, 3000.0, NAN, -200.0, 5.0, 2400.0, -120.0, NAN] * 50),
        "ExpectColumnValuesToBeBetween",
        {"min_value": -120, "max_value": 2400, "mostly": 0.7},
        100,
    ),
    "between, strict": (
        pd.Series([5.0, 3000.0, NAN, -200.0, 5.0, 2400.0, -120.0, NAN] * 50),
        "ExpectColumnValuesToBeBetween",
        {"min_value": -120, "max_value": 2400, "strict_min": True, "strict_max": True},
        200,
    ),
    "in set": (
        pd.Series([10397.0, 99.0, NAN, 12892.0, 99.0, NAN, 5.0, 10397.0] * 50),
        "ExpectColumnValuesToBeInSet",
        {"value_set": [10397, 12892], "mostly": 0.5},
        150,
    ),
}


@pytest.mark.parametrize("case", PER_VALUE_CASES.values(), ids=PER_VALUE_CASES.keys())
def test_each_per_value_expectation_counts_exactly_like_gx_own(case: tuple[Any, ...]) -> None:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from quality import expectations

    values, kind, kwargs, unexpected = case
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("compare")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": pd.DataFrame({"column": values})})
    )
    gx_own, per_value = getattr(gxe, kind), getattr(expectations, kind + "PerValue")
    assert issubclass(per_value, gx_own)
    theirs, ours = (
        batch.validate(expectation(column="column", **kwargs), result_format="COMPLETE")
        for expectation in (gx_own, per_value)
    )

    assert ours.result == theirs.result
    assert ours.success == theirs.success
    assert ours.result["unexpected_count"] == unexpected
    assert ours.result["missing_count"] == 100


@pytest.mark.parametrize(
    "suite",
    [daily_suite(QualitySettings(), [10397]), dimension_suite()],
    ids=["daily file", "dimension"],
)
def test_every_expectation_says_in_plain_words_what_breaks_it(suite: Any) -> None:
    # The on-call alert quotes these words: no expectation may fall back to GX's own names.
    silent = [
        e.expectation_type
        for e in suite.expectations
        if not isinstance(e, WarehouseLimit) and not (e.meta or {}).get(SAYS)
    ]
    assert silent == []
