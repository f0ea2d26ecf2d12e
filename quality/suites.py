"""Expectation suites for the daily file and the airport dimension, generated from the contract.

The gate validates files as read: every value is still the text of the CSV, so a non-numeric
delay is a failed expectation with the offending values, not a parse error. Each expectation is
blocking (GX severity ``critical``: the file is quarantined) or a warning (the file loads and
the warning is reported); thresholds come from the typed settings.
"""

from __future__ import annotations

from collections.abc import Iterable

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity

from pipeline.contract import AIRPORTS, DAILY_FLIGHTS, Column, ColumnType, FileContract
from pipeline.settings import QualitySettings
from quality.expectations import (
    ExpectColumnIntegersToBeBetween,
    ExpectColumnValueBytesToBeAtMost,
    ExpectColumnValuesToLoadVerbatim,
    ExpectColumnValuesToMatchRegexPerValue,
)

BLOCKING = FailureSeverity.CRITICAL
WARNING = FailureSeverity.WARNING

DAILY_SUITE = "daily_flights"
DIMENSION_SUITE = "airport_codes"

_INTEGER = r"^-?[0-9]+$"
_POSITIVE_INTEGER = r"^[1-9][0-9]*$"
CARRIER_CODE = r"^[A-Z0-9]{2}$"
"""Two capital letters or digits, as the DOT assigns them (AA, DL, 9E)."""

NUMERIC_SUFFIX = "_number"
"""The gate adds ``<column>_number`` to integer columns (NULL if not a number)."""


def _contract_expectations(contract: FileContract) -> Iterable[gxe.Expectation]:
    """Column set, types and the warehouse's limits, straight from the contract: required
    columns present and typed, and every value one the warehouse can hold."""
    yield gxe.ExpectTableColumnsToMatchSet(
        column_set=[c.name for c in contract.columns], exact_match=False, severity=BLOCKING
    )
    for column in contract.columns:
        if not column.nullable:
            yield gxe.ExpectColumnValuesToNotBeNull(column=column.name, severity=BLOCKING)
        if column.type is ColumnType.INTEGER:
            yield ExpectColumnValuesToMatchRegexPerValue(
                column=column.name,
                regex=_POSITIVE_INTEGER if column.name.endswith("airport_id") else _INTEGER,
                severity=BLOCKING,
            )
        yield from _warehouse_limits(column)


def _warehouse_limits(column: Column) -> Iterable[gxe.Expectation]:
    """What the warehouse column this column feeds enforces at load, checked at the gate."""
    if column.type.bounds is not None:
        low, high = column.type.bounds
        yield ExpectColumnIntegersToBeBetween(
            column=column.name, min_value=low, max_value=high, severity=BLOCKING
        )
    if column.width is not None:
        yield ExpectColumnValueBytesToBeAtMost(
            column=column.name, max_bytes=column.width, severity=BLOCKING
        )
        yield ExpectColumnValuesToLoadVerbatim(column=column.name, severity=BLOCKING)


def daily_suite(quality: QualitySettings, known_airports: Iterable[int]) -> gx.ExpectationSuite:
    """The suite every daily file must pass; ``known_airports`` are the dimension's ids."""
    known = sorted(set(known_airports))
    expectations: list[gxe.Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, severity=BLOCKING),
        *_contract_expectations(DAILY_FLIGHTS),
        ExpectColumnValuesToMatchRegexPerValue(
            column="carrier", regex=CARRIER_CODE, severity=BLOCKING
        ),
    ]
    for delay in ("dep_delay", "arr_delay"):
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=delay + NUMERIC_SUFFIX,
                min_value=quality.min_delay_minutes,
                max_value=quality.max_delay_minutes,
                mostly=quality.delay_in_range_mostly,
                severity=WARNING,
            )
        )
    for end in ("origin_airport_id", "dest_airport_id"):
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=end + NUMERIC_SUFFIX,
                value_set=known,
                mostly=1 - quality.max_unknown_airport_share,
                severity=BLOCKING,
            )
        )
    return gx.ExpectationSuite(name=DAILY_SUITE, expectations=expectations)


def dimension_suite() -> gx.ExpectationSuite:
    """The suite a new airport dimension must pass before it replaces the current one."""
    return gx.ExpectationSuite(
        name=DIMENSION_SUITE,
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1, severity=BLOCKING),
            *_contract_expectations(AIRPORTS),
            gxe.ExpectColumnValuesToBeUnique(column="airport_id", severity=BLOCKING),
            gxe.ExpectColumnValuesToNotBeNull(column="city", severity=BLOCKING),
            gxe.ExpectColumnValuesToNotBeNull(column="name", severity=BLOCKING),
        ],
    )
