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
from dataclasses import dataclass

import pytest

from pipeline.contract import DAILY_FLIGHTS
from pipeline.settings import QualitySettings
from quality.gate import Outcome, check_daily_file, check_dimension

TODAY = dt.date(2026, 11, 26)
KNOWN = [10397, 12892, 11298, 13930]
HEADER = "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay"
ROWS = ["DL,10397,12892,5,-3", "AA,12892,11298,,", "UA,11298,13930,47,52", "WN,13930,10397,-4,-9"]


def daily(*rows: str, header: str = HEADER, newline: str = "\n") -> bytes:
    return newline.join([header, *rows]).encode() + newline.encode()


GOOD = daily(*ROWS)


@dataclass(frozen=True)
class Case:
    kind: str
    data: bytes
    outcome: Outcome
    rule: str  # what the findings (or the normalization notes) must mention
    name: str = "2024-01-01.csv"


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
    Case("absurd delay", daily("DL,10397,12892,9999,-3"), Outcome.WARNINGS, "be_between"),
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
        "be_in_set",
    ),
    Case("cancelled flights (empty delays)", daily("DL,10397,12892,,", *ROWS), Outcome.PASSED, ""),
]


@pytest.mark.parametrize("case", CATALOG, ids=[c.kind for c in CATALOG])
def test_bad_input_catalog(case: Case) -> None:
    verdict = check_daily_file(case.name, case.data, KNOWN, QualitySettings(), TODAY)

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


@pytest.mark.parametrize(
    ("kind", "data", "outcome", "rule"),
    [
        ("good dimension", DIMENSION, Outcome.PASSED, ""),
        (
            "duplicated airport id",
            DIMENSION + "10397,Atlanta,GA,Other\n",
            Outcome.QUARANTINED,
            "unique",
        ),
        ("empty city", DIMENSION + "11298,,TX,DFW\n", Outcome.QUARANTINED, "'column': 'city'"),
        ("non-integer id", DIMENSION + "ABC,Dallas,TX,DFW\n", Outcome.QUARANTINED, "'ABC'"),
        ("no airports", "airport_id,city,state,name\n", Outcome.QUARANTINED, "at least one row"),
        ("not a CSV", "\x00\x01binary", Outcome.QUARANTINED, "binary"),
    ],
)
def test_broken_dimension_files_are_refused(
    kind: str, data: str, outcome: Outcome, rule: str
) -> None:
    verdict = check_dimension("airport_codes.csv", data.encode())
    assert verdict.outcome is outcome, verdict.reason
    assert rule in verdict.reason


@pytest.mark.parametrize(
    "data",
    [GOOD, daily(*ROWS, "DL, 10397 ,12892,1,1"), daily(*ROWS[:2], '"UA",11298,13930,47,52')],
    ids=["canonical", "blanks around a value", "quoted value"],
)
def test_the_normalized_copy_is_what_normalize_writes_whatever_the_shortcut(data: bytes) -> None:
    from quality.gate import _frame, normalize, read_table

    verdict = check_daily_file("2024-01-01.csv", data, KNOWN, QualitySettings(), TODAY)

    frame, _ = _frame(read_table(data, DAILY_FLIGHTS), DAILY_FLIGHTS)
    assert verdict.normalized == normalize(frame, DAILY_FLIGHTS)
    assert (verdict.normalized == data) is (data == GOOD)


def test_a_short_row_among_many_is_found_by_its_number() -> None:
    rows = [*ROWS * 500, "DL,10397,12892,5", *ROWS * 10]
    verdict = check_daily_file("2024-01-01.csv", daily(*rows), KNOWN, QualitySettings(), TODAY)
    assert verdict.outcome is Outcome.QUARANTINED
    assert "row 2002 has fewer fields" in verdict.reason
