"""The bad-input catalog: each kind of odd or broken file and the outcome the gate gives it.

Transport quirks are normalized and the file loads; content errors and unreadable files are
quarantined, with the rule they break named. Validated at the gate directly (fast); none of
them may raise.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from pipeline.core.contract import (
    AIRPORTS,
    DAILY_FLIGHTS,
    FLIGHT_PROCESSED,
    Column,
    Dialect,
    FileContract,
    create_table_sql,
)
from pipeline.core.settings import QualitySettings
from quality.expectations import WarehouseLimit
from quality.gate import FileRule, Outcome, Verdict, check_daily_file, check_dimension
from quality.suites import daily_suite, dimension_suite

TODAY = dt.date(2026, 11, 26)
KNOWN = [10397, 12892, 11298, 13930]
HEADER = "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay"
ROWS = ["DL,10397,12892,5,-3", "AA,12892,11298,,", "UA,11298,13930,47,52", "WN,13930,10397,-4,-9"]


def daily(*rows: str, header: str = HEADER, newline: str = "\n") -> bytes:
    return newline.join([header, *rows]).encode() + newline.encode()


GOOD = daily(*ROWS)
INTEGER = "-2147483648..2147483647"
"""The warehouse's INTEGER, as findings state it."""
DIMENSION_NAME = "airport_codes.csv"
DEFAULTS = QualitySettings()


@dataclass(frozen=True)
class Case:
    kind: str
    data: bytes
    outcome: Outcome
    rule: str  # what the findings (or the normalization notes) must mention
    name: str = "2024-01-01.csv"
    quality: QualitySettings = DEFAULTS


@cache
def verdict_of(case: Case) -> Verdict:
    """The gate's verdict on a case: a dimension's, or a daily file's."""
    if case.name == DIMENSION_NAME:
        return check_dimension(case.name, case.data, case.quality)
    return check_daily_file(case.name, case.data, KNOWN, case.quality, TODAY)


CATALOG = [
    Case("empty file", b"", Outcome.QUARANTINED, "not empty"),
    Case("whitespace only", b"  \n\n", Outcome.QUARANTINED, "not empty"),
    Case("header only", daily(), Outcome.QUARANTINED, "at least one row"),
    Case(
        "missing column",
        daily("DL,10397,12892,5", header="Carrier,OriginAirportID,DestAirportID,DepDelay"),
        Outcome.QUARANTINED,
        "missing ['ArrDelay']",
    ),
    Case(
        "renamed column",
        daily(*ROWS, header=HEADER.replace("ArrDelay", "ArrivalDelay")),
        Outcome.QUARANTINED,
        "missing ['ArrDelay']",
    ),
    Case(
        "extra columns",
        daily(*(r + ",N123" for r in ROWS), header=HEADER + ",TailNum"),
        Outcome.PASSED,
        "extra columns dropped",
    ),
    Case(
        "columns reordered and in other case",
        daily(
            "-3,5,12892,10397,DL", header="arrdelay,DEPDELAY,DestAirportId,originairportid,carrier"
        ),
        Outcome.PASSED,
        "columns reordered",
    ),
    Case("wrong delimiter", GOOD.replace(b",", b";"), Outcome.QUARANTINED, "comma-separated"),
    Case(
        "quoted fields with commas",
        daily('"DL",10397,12892,5,-3,"late, weather"', header=HEADER + ",Remark"),
        Outcome.PASSED,
        "extra columns dropped",
    ),
    Case("UTF-8 byte-order mark", b"\xef\xbb\xbf" + GOOD, Outcome.PASSED, "byte-order mark"),
    Case(
        "Latin-1 bytes",
        f"{HEADER},Remark\nDL,10397,12892,5,-3,caf\u00e9\n".encode("latin-1"),
        Outcome.PASSED,
        "Latin-1",
    ),
    Case("CRLF line endings", daily(*ROWS, newline="\r\n"), Outcome.PASSED, "CRLF"),
    Case("non-numeric delay", daily("DL,10397,12892,late,-3"), Outcome.QUARANTINED, "'late'"),
    Case("fractional delay", daily("DL,10397,12892,12.5,-3"), Outcome.QUARANTINED, "'12.5'"),
    Case(
        "absurd delay",
        daily("DL,10397,12892,9999,-3"),
        Outcome.WARNINGS,
        "DepDelay: 9999 is outside -120..2400",
    ),
    Case("negative airport id", daily("DL,-10397,12892,5,-3"), Outcome.QUARANTINED, "'-10397'"),
    Case("zero airport id", daily("DL,0,12892,5,-3"), Outcome.QUARANTINED, "'0'"),
    Case("lowercase carrier", daily("dl,10397,12892,5,-3"), Outcome.QUARANTINED, "'dl'"),
    Case("three-letter carrier", daily("DAL,10397,12892,5,-3"), Outcome.QUARANTINED, "'DAL'"),
    Case("blank lines", daily(ROWS[0], "", ROWS[1], "  "), Outcome.PASSED, "blank lines"),
    Case("truncated last line", daily(ROWS[0], "AA,12892,11"), Outcome.QUARANTINED, "row 3"),
    Case("header repeated inside", daily(ROWS[0], HEADER, ROWS[1]), Outcome.QUARANTINED, "row 3"),
    Case("gzip file named .csv", gzip.compress(GOOD), Outcome.QUARANTINED, "gzip"),
    Case("non-CSV object", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", Outcome.QUARANTINED, "binary"),
    Case("name not a date", GOOD, Outcome.QUARANTINED, "YYYY-MM-DD", name="flights.csv"),
    Case("impossible date", GOOD, Outcome.QUARANTINED, "no real date", name="2024-02-30.csv"),
    Case("future date", GOOD, Outcome.QUARANTINED, "after today", name="2099-12-31.csv"),
    Case(
        "all airports unknown",
        daily("DL,99991,99992,5,-3", "AA,99993,99994,1,1"),
        Outcome.QUARANTINED,
        "DestAirportID: 99992 is no airport of the dimension",
    ),
    Case("cancelled flights (empty delays)", daily("DL,10397,12892,,", *ROWS), Outcome.PASSED, ""),
    Case(
        "missing carrier",
        daily(",10397,12892,5,-3", *ROWS),
        Outcome.QUARANTINED,
        "Carrier: a value is missing (line 2)",
    ),
    Case(
        "missing origin airport",
        daily(*ROWS, "DL,,12892,5,-3"),
        Outcome.QUARANTINED,
        "OriginAirportID: a value is missing",
    ),
    Case(
        "missing destination airport",
        daily(*ROWS, "DL,10397, ,5,-3"),
        Outcome.QUARANTINED,
        "DestAirportID: a value is missing",
    ),
    Case("airport code for an id", daily("DL,10397,LAX,5,-3"), Outcome.QUARANTINED, "'LAX'"),
    Case(
        "non-numeric arrival delay", daily("DL,10397,12892,5,early"), Outcome.QUARANTINED, "'early'"
    ),
    Case(
        "absurd arrival delay",
        daily("DL,10397,12892,5,9999"),
        Outcome.WARNINGS,
        "ArrDelay: 9999 is outside -120..2400 minutes",
    ),
    # What the warehouse would refuse at load (the contract: widths and the INTEGER range).
    Case(
        "delay over the warehouse's INTEGER",
        daily("DL,10397,12892,99999999999,-3", *ROWS),
        Outcome.QUARANTINED,
        f"DepDelay: 99999999999 is outside {INTEGER} (line 2)",
    ),
    Case(
        "arrival delay under the warehouse's INTEGER",
        daily(*ROWS, "DL,10397,12892,5,-2147483649"),
        Outcome.QUARANTINED,
        f"ArrDelay: -2147483649 is outside {INTEGER} (line 6)",
    ),
    Case(
        "origin airport id over the warehouse's INTEGER",
        daily(*ROWS, "DL,2147483648,12892,5,-3", "AA,2147483648,12892,5,-3"),
        Outcome.QUARANTINED,
        f"OriginAirportID: 2147483648 is outside {INTEGER} (line 6, and 1 more row)",
    ),
    Case(
        "one destination airport id over the INTEGER, among known ones",
        daily(*ROWS * 30, "", "DL,10397,2147483648,5,-3"),  # 1 unknown of 121: under 5 %
        Outcome.QUARANTINED,
        f"DestAirportID: 2147483648 is outside {INTEGER} (line 123)",
    ),
    Case(
        "delay of a thousand digits",
        daily("DL,10397,12892," + "9" * 1000 + ",1"),
        Outcome.QUARANTINED,
        f"DepDelay: {'9' * 40}… is outside {INTEGER} (line 2)",
    ),
    Case(
        "carrier wider than its column",
        daily(*ROWS, "D" * 257 + ",10397,12892,5,-3"),
        Outcome.QUARANTINED,
        f"Carrier: '{'D' * 40}…' is 257 bytes of UTF-8 (257 characters), over the column's "
        "256 bytes (line 6)",
    ),
    Case(
        "carrier of \\N, Redshift's NULL marker",
        daily("\\N,10397,12892,5,-3"),
        Outcome.QUARANTINED,
        "Carrier: \\N would load as NULL on Redshift",
    ),
    Case(
        "line feed inside a quoted value",
        daily('"D\nL",10397,12892,5,-3'),
        Outcome.QUARANTINED,
        "Carrier: 'D\\nL' holds a line feed, which the warehouse load cannot carry (line 2)",
    ),
    Case(
        "NUL byte deep in the file",
        daily(*ROWS * 4000, "D\x00,10397,12892,5,-3"),
        Outcome.QUARANTINED,
        "binary content (a NUL byte on line 16002)",
    ),
    Case(
        "a 10 MB line",
        daily(*(r + "," for r in ROWS[:2]), ROWS[2] + "," + "x" * 10**7, header=HEADER + ",Remark"),
        Outcome.QUARANTINED,
        "line length: line 4 is 10,000,021 bytes, over the limit of 65,536 bytes a line "
        "(QualitySettings.max_line_bytes)",
    ),
    Case(
        "file over the size limit",
        GOOD,
        Outcome.QUARANTINED,
        f"file size: the file is {len(GOOD)} bytes, over the limit of 100 bytes "
        "(QualitySettings.max_file_bytes)",
        quality=QualitySettings(max_file_bytes=100),
    ),
]


@pytest.mark.parametrize("case", CATALOG, ids=[c.kind for c in CATALOG])
def test_bad_input_catalog(case: Case) -> None:
    verdict = verdict_of(case)

    assert verdict.outcome is case.outcome, verdict.reason
    said = verdict.reason + " " + " ".join(verdict.details.get("quirks", []))
    assert case.rule in said
    if case.outcome is Outcome.QUARANTINED:
        assert verdict.normalized is None
        assert any(f.blocking for f in verdict.findings)
    else:
        assert verdict.normalized is not None


def test_catalog_covers_at_least_25_kinds() -> None:
    assert len({c.kind for c in CATALOG}) >= 25


def test_a_loadable_file_is_normalized_to_the_canonical_shape() -> None:
    odd = b"\xef\xbb\xbf" + daily(
        '-3,5,12892,10397,"DL",x',
        "",
        header="arrdelay,DEPDELAY,DestAirportId,originairportid,carrier,n",
        newline="\r\n",
    )
    verdict = check_daily_file("2024-01-01.csv", odd, KNOWN, QualitySettings(), TODAY)

    assert verdict.normalized == (HEADER + "\nDL,10397,12892,5,-3\n").encode()
    rows = list(csv.reader(io.StringIO(verdict.normalized.decode())))
    assert tuple(rows[0]) == DAILY_FLIGHTS.headers


def test_few_unknown_airports_load_under_the_threshold_and_many_do_not() -> None:
    rows = [*ROWS * 25, "DL,99991,12892,1,1"]  # 1 of 101 flights: under 5 %
    assert (
        check_daily_file("2024-01-01.csv", daily(*rows), KNOWN, QualitySettings(), TODAY).outcome
        is Outcome.PASSED
    )
    strict = QualitySettings(max_unknown_airport_share=0.0)
    assert (
        check_daily_file("2024-01-01.csv", daily(*rows), KNOWN, strict, TODAY).outcome
        is Outcome.QUARANTINED
    )


DIMENSION = (
    "airport_id,city,state,name\n10397,Atlanta,GA,Hartsfield-Jackson\n12892,Los Angeles,CA,LAX\n"
)


def dimension(kind: str, text: str, outcome: Outcome, rule: str) -> Case:
    return Case(kind, text.encode(), outcome, rule, name=DIMENSION_NAME)


DIMENSION_CATALOG = [
    dimension("good dimension", DIMENSION, Outcome.PASSED, ""),
    dimension(
        "duplicated airport id",
        DIMENSION + "10397,Atlanta,GA,Other\n",
        Outcome.QUARANTINED,
        "airport_id: '10397' appears more than once",
    ),
    dimension(
        "empty city", DIMENSION + "11298,,TX,DFW\n", Outcome.QUARANTINED, "city: a value is missing"
    ),
    dimension("non-integer id", DIMENSION + "ABC,Dallas,TX,DFW\n", Outcome.QUARANTINED, "'ABC'"),
    dimension(
        "empty airport id",
        DIMENSION + ",Dallas,TX,DFW\n",
        Outcome.QUARANTINED,
        "airport_id: a value is missing",
    ),
    dimension(
        "empty name",
        DIMENSION + "11298,Dallas,TX,\n",
        Outcome.QUARANTINED,
        "name: a value is missing",
    ),
    dimension(
        "no airports", "airport_id,city,state,name\n", Outcome.QUARANTINED, "at least one row"
    ),
    dimension("not a CSV", "\x00\x01binary", Outcome.QUARANTINED, "binary"),
    dimension(
        "airport id over the warehouse's INTEGER",
        DIMENSION + "2147483648,Boise,ID,BOI\n",
        Outcome.QUARANTINED,
        f"airport_id: 2147483648 is outside {INTEGER} (line 4)",
    ),
    dimension(
        "names wider than the warehouse column",
        DIMENSION + "11298,Dallas,TX," + "N" * 300 + "\n",
        Outcome.QUARANTINED,
        f"name: '{'N' * 40}…' is 300 bytes of UTF-8 (300 characters), over the column's 256 "
        "bytes (line 4)",
    ),
    dimension(
        "multibyte name that fits in characters but not in bytes",
        DIMENSION + "11298,Dallas,TX," + "\u00e9" * 200 + "\n",
        Outcome.QUARANTINED,
        "is 400 bytes of UTF-8 (200 characters), over the column's 256 bytes (line 4)",
    ),
    dimension(
        "city wider than its column",
        DIMENSION + "11298," + "C" * 257 + ",TX,DFW\n",
        Outcome.QUARANTINED,
        "city: 'CCCC",
    ),
    dimension(
        "state wider than its column",
        DIMENSION + "11298,Dallas," + "S" * 257 + ",DFW\n",
        Outcome.QUARANTINED,
        "state: 'SSSS",
    ),
    dimension(
        "name of \\N, Redshift's NULL marker",
        DIMENSION + "11298,Dallas,TX,\\N\n",
        Outcome.QUARANTINED,
        "name: \\N would load as NULL on Redshift",
    ),
    dimension(
        "carriage return inside a quoted city",
        DIMENSION + '11298,"Dal\rlas",TX,DFW\n',
        Outcome.QUARANTINED,
        "city: 'Dal\\rlas' holds a carriage return",
    ),
    dimension(
        "line feed inside a quoted state",
        DIMENSION + '11298,Dallas,"T\nX",DFW\n',
        Outcome.QUARANTINED,
        "state: 'T\\nX' holds a line feed",
    ),
    dimension(
        "a line over the length limit",
        DIMENSION + "11298,Dallas,TX,DFW," + "x" * 70_000 + "\n",
        Outcome.QUARANTINED,
        "line 4 is 70,020 bytes, over the limit of 65,536 bytes a line",
    ),
    Case(
        "dimension over the size limit",
        DIMENSION.encode(),
        Outcome.QUARANTINED,
        "over the limit of 10 bytes (QualitySettings.max_file_bytes)",
        name=DIMENSION_NAME,
        quality=QualitySettings(max_file_bytes=10),
    ),
]


@pytest.mark.parametrize("case", DIMENSION_CATALOG, ids=[c.kind for c in DIMENSION_CATALOG])
def test_broken_dimension_files_are_refused(case: Case) -> None:
    verdict = verdict_of(case)
    assert verdict.outcome is case.outcome, verdict.reason
    assert case.rule in verdict.reason


# --- coverage: every rule of the gate and every warehouse column has a case ------------------

TABLE_LEVEL = ("expect_table_row_count_to_be_between", "expect_table_columns_to_match_set")
"""Expectations no readable file fails: the gate refuses a file without rows or without the
contract's columns before the suite runs (FileRule.AT_LEAST_ONE_ROW, REQUIRED_COLUMNS)."""


def broken(cases: list[Case]) -> set[tuple[str, str | None]]:
    """The expectations, by type and column, that the cases' validations failed."""
    results = [
        result
        for case in cases
        if verdict_of(case).validation is not None
        for result in verdict_of(case).validation.results
    ]
    return {
        (r.expectation_config.type, r.expectation_config.kwargs.get("column"))
        for r in results
        if not r.success
    }


@pytest.mark.parametrize(
    ("suite", "cases"),
    [(daily_suite(DEFAULTS, KNOWN), CATALOG), (dimension_suite(), DIMENSION_CATALOG)],
    ids=["daily file", "dimension"],
)
def test_every_expectation_of_the_suites_is_broken_by_a_case_of_the_catalog(
    suite: Any, cases: list[Case]
) -> None:
    rules = {
        (e.expectation_type, getattr(e, "column", None))
        for e in suite.expectations
        if e.expectation_type not in TABLE_LEVEL
    }
    assert rules - broken(cases) == set()


def test_every_rule_of_a_readable_file_is_broken_by_a_case_of_the_catalog() -> None:
    refused = {
        finding.rule
        for case in CATALOG + DIMENSION_CATALOG
        if verdict_of(case).validation is None
        for finding in verdict_of(case).findings
    }
    assert set(FileRule) - refused == set()


def test_every_warehouse_column_fed_from_a_file_has_a_case_over_its_limits() -> None:
    suites = {DAILY_FLIGHTS: daily_suite(DEFAULTS, KNOWN), AIRPORTS: dimension_suite()}
    failed = broken(CATALOG + DIMENSION_CATALOG)
    for name in FLIGHT_PROCESSED.column_names:
        if name in DERIVED:
            continue
        contract, column = fed_by(name)
        limits = {
            (e.expectation_type, column.name)
            for e in suites[contract].expectations
            if isinstance(e, WarehouseLimit) and e.column == column.name
        }
        assert limits, name
        assert limits - failed == set(), name


@pytest.mark.parametrize(
    "data",
    [GOOD, daily(*ROWS, "DL, 10397 ,12892,1,1"), daily(*ROWS[:2], '"UA",11298,13930,47,52')],
    ids=["canonical", "blanks around a value", "quoted value"],
)
def test_the_normalized_copy_is_what_normalize_writes_whatever_the_shortcut(data: bytes) -> None:
    from quality.gate import _frame, normalize, read_table

    verdict = check_daily_file("2024-01-01.csv", data, KNOWN, QualitySettings(), TODAY)

    frame, _ = _frame(
        read_table(data, DAILY_FLIGHTS, QualitySettings().max_line_bytes), DAILY_FLIGHTS
    )
    assert verdict.normalized == normalize(frame, DAILY_FLIGHTS)
    assert (verdict.normalized == data) is (data == GOOD)


@pytest.mark.parametrize("blank", ["", "  ", "\t", " \t "], ids=["empty", "spaces", "tab", "mixed"])
def test_a_blank_line_alone_is_skipped_and_findings_name_the_lines_as_uploaded(blank: str) -> None:
    data = daily(ROWS[0], blank, "dl,10397,12892,5,-3")
    verdict = check_daily_file("2024-01-01.csv", data, KNOWN, QualitySettings(), TODAY)
    assert "blank lines skipped" in verdict.details["quirks"]
    assert verdict.reason == "Carrier: 'dl' is not two capital letters or digits (line 4)"


def test_each_validation_checks_the_airports_and_settings_it_is_given_not_earlier_ones() -> None:
    data = daily("DL,10397,12892,5,-3", "DL,10397,12892,3000,-3")
    lenient, strict = QualitySettings(delay_in_range_mostly=0.5), QualitySettings()
    for known, quality, reason in [
        (KNOWN, lenient, ""),
        ([10397], lenient, "DestAirportID: 12892 is no airport of the dimension (line 2"),
        (KNOWN, strict, "DepDelay: 3000 is outside -120..2400 minutes (line 3)"),
        (KNOWN, lenient, ""),
    ]:
        verdict = check_daily_file("2024-01-01.csv", data, known, quality, TODAY)
        assert verdict.reason.startswith(reason), verdict.reason
        assert bool(verdict.findings) is bool(reason)


def test_a_short_row_among_many_is_found_by_its_number() -> None:
    rows = [*ROWS * 500, "DL,10397,12892,5", *ROWS * 10]
    verdict = check_daily_file("2024-01-01.csv", daily(*rows), KNOWN, QualitySettings(), TODAY)
    assert verdict.outcome is Outcome.QUARANTINED
    assert "row 2002 has fewer fields" in verdict.reason


# --- every limit of the warehouse, one past it ------------------------------------------------

_DDL_COLUMN = re.compile(r"^\s+(\w+) (INTEGER|VARCHAR\((\d+)\))", re.MULTILINE)
DERIVED = ("flight_date", "source_file", "loaded_at")
"""Warehouse columns the pipeline fills itself, from no file."""
INTEGER_BOUNDS = (-(2**31), 2**31 - 1)
"""INTEGER on Redshift and PostgreSQL alike."""


def fed_by(warehouse_column: str) -> tuple[FileContract, Column]:
    """The file column a warehouse column is loaded from: a daily file's own, or an airport
    detail of the dimension (``origin_city`` from ``city``)."""
    for contract, name in (
        (DAILY_FLIGHTS, warehouse_column),
        (AIRPORTS, warehouse_column.partition("_")[2]),
    ):
        for column in contract.columns:
            if column.name == name:
                return contract, column
    raise AssertionError(f"no file feeds {warehouse_column}")


def one_past(sql_type: str, width: str) -> list[tuple[str, str]]:
    """Values one past the limit of a column type, each with how a finding states the limit."""
    if sql_type == "INTEGER":
        low, high = INTEGER_BOUNDS
        return [(str(v), f"outside {low}..{high}") for v in (low - 1, high + 1)]
    size = int(width)
    # Multibyte: a PostgreSQL VARCHAR(size) takes it (it counts characters), Redshift does not.
    value = "\u00e9" * (size // 2) + "x" * (size % 2 + 1)
    assert len(value.encode()) == size + 1
    assert len(value) <= size
    return [(value, f"over the column's {size} bytes")]


def with_value(contract: FileContract, column: Column, value: str) -> bytes:
    """A good file of the contract, with one more row that holds ``value`` in ``column``."""
    if contract is AIRPORTS:
        row = {"airport_id": "11298", "city": "Dallas", "state": "TX", "name": "DFW"}
        good = DIMENSION.encode()
    else:
        row = dict(zip(DAILY_FLIGHTS.headers, ROWS[0].split(","), strict=True))
        good = GOOD
    row[str(column.source)] = value
    return good + ",".join(row[h] for h in contract.headers).encode() + b"\n"


@pytest.mark.parametrize("dialect", list(Dialect))
def test_a_value_one_past_each_warehouse_limit_is_refused_at_the_gate(dialect: Dialect) -> None:
    walked = []
    for name, sql_type, width in _DDL_COLUMN.findall(create_table_sql(FLIGHT_PROCESSED, dialect)):
        if name in DERIVED:
            continue
        contract, column = fed_by(name)
        for value, limit in one_past(sql_type, width):
            data = with_value(contract, column, value)
            verdict = (
                check_dimension(DIMENSION_NAME, data, QualitySettings())
                if contract is AIRPORTS
                else check_daily_file("2024-01-01.csv", data, KNOWN, QualitySettings(), TODAY)
            )
            assert verdict.outcome is Outcome.QUARANTINED, (name, value)
            assert any(
                f.rule == column.source and limit in f.observed and f.blocking
                for f in verdict.findings
            ), (name, verdict.reason)
        walked.append(name)
    fed = [c for c in FLIGHT_PROCESSED.column_names if c not in DERIVED]
    assert walked == fed


def test_a_missing_value_breaks_only_the_rule_that_a_value_is_required() -> None:
    # The per-value checks (type, range, width) see missing values too, and let them be; the
    # bad carrier comes last, so a missing value mistaken for the last distinct one would show.
    rows = (*ROWS, ",10397,12892,5,-3", "DL,10397,12892,5,", "xyz,10397,12892,5,-3")

    verdict = check_daily_file("2024-01-05.csv", daily(*rows), KNOWN, DEFAULTS, TODAY)

    assert [(f.rule, f.observed) for f in verdict.findings if f.blocking] == [
        ("Carrier", "a value is missing (line 6)"),
        ("Carrier", "'xyz' is not two capital letters or digits (line 8)"),
    ]
