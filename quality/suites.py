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

from pipeline.core.contract import AIRPORTS, DAILY_FLIGHTS, Column, ColumnType, FileContract
from pipeline.core.settings import QualitySettings
from quality.expectations import (
    ExpectColumnIntegersToBeBetween,
    ExpectColumnValueBytesToBeAtMost,
    ExpectColumnValuesToBeBetweenPerValue,
    ExpectColumnValuesToBeInSetPerValue,
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

SAYS = "says"
"""The ``meta`` entry of each expectation: what a value that breaks it is, in plain words
(``'xyz' is not two capital letters or digits``), for findings and the on-call alert; a
table-level expectation says what is wrong with the file."""


def _says(words: str) -> dict[str, str]:
    return {SAYS: words}


def _contract_expectations(contract: FileContract) -> Iterable[gxe.Expectation]:
    """Column set, types and the warehouse's limits, straight from the contract: required
    columns present and typed, and every value one the warehouse can hold."""
    yield gxe.ExpectTableColumnsToMatchSet(
        column_set=[c.name for c in contract.columns],
        exact_match=False,
        severity=BLOCKING,
        meta=_says("the file lacks columns of the contract"),
    )
    for column in contract.columns:
        if not column.nullable:
            yield gxe.ExpectColumnValuesToNotBeNull(
                column=column.name, severity=BLOCKING, meta=_says("is missing")
            )
        if column.type is ColumnType.INTEGER:
            identifier = column.name.endswith("airport_id")
            yield ExpectColumnValuesToMatchRegexPerValue(
                column=column.name,
                regex=_POSITIVE_INTEGER if identifier else _INTEGER,
                severity=BLOCKING,
                meta=_says(
                    "is not a positive whole number" if identifier else "is not a whole number"
                ),
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
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1, severity=BLOCKING, meta=_says("the file has no flights")
        ),
        *_contract_expectations(DAILY_FLIGHTS),
        ExpectColumnValuesToMatchRegexPerValue(
            column="carrier",
            regex=CARRIER_CODE,
            severity=BLOCKING,
            meta=_says("is not two capital letters or digits"),
        ),
    ]
    for delay in ("dep_delay", "arr_delay"):
        expectations.append(
            ExpectColumnValuesToBeBetweenPerValue(
                column=delay + NUMERIC_SUFFIX,
                min_value=quality.min_delay_minutes,
                max_value=quality.max_delay_minutes,
                mostly=quality.delay_in_range_mostly,
                severity=WARNING,
                meta=_says(
                    f"is outside {quality.min_delay_minutes}..{quality.max_delay_minutes} minutes"
                ),
            )
        )
    for end in ("origin_airport_id", "dest_airport_id"):
        expectations.append(
            ExpectColumnValuesToBeInSetPerValue(
                column=end + NUMERIC_SUFFIX,
                value_set=known,
                mostly=1 - quality.max_unknown_airport_share,
                severity=BLOCKING,
                meta=_says("is no airport of the dimension"),
            )
        )
    return gx.ExpectationSuite(name=DAILY_SUITE, expectations=expectations)


def dimension_suite() -> gx.ExpectationSuite:
    """The suite a new airport dimension must pass before it replaces the current one."""
    return gx.ExpectationSuite(
        name=DIMENSION_SUITE,
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(
                min_value=1, severity=BLOCKING, meta=_says("the file has no airports")
            ),
            *_contract_expectations(AIRPORTS),
            gxe.ExpectColumnValuesToBeUnique(
                column="airport_id", severity=BLOCKING, meta=_says("appears more than once")
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="city", severity=BLOCKING, meta=_says("is missing")
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="name", severity=BLOCKING, meta=_says("is missing")
            ),
        ],
    )
