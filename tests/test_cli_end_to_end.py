"""End to end through the `flightpipe` command, as a user runs it, on the local twin."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.postgres import PostgresWarehouse
from pipeline.local.services import LocalServices
from pipeline.settings import REPO_ROOT, Settings
from tests.conftest import isolated_settings, settings_env
from tests.expected import expected_days, warehouse_days


def flightpipe(
    settings: Settings, *args: str, stdout_to: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command, its stdout a pipe or, as ``> file`` makes it, the file ``stdout_to``."""
    with contextlib.ExitStack() as stack:
        stdout = subprocess.PIPE if stdout_to is None else stack.enter_context(stdout_to.open("wb"))
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO_ROOT,
            env=settings_env(settings, spark_master="local[2]"),
            stdout=stdout,
            stderr=subprocess.PIPE,
            check=False,
            text=True,
            timeout=600,
        )


def unknown_airport_flights(data: Path) -> int:
    """Flights with an end missing from the dimension, counted with plain csv."""
    with open(data / "airport_codes.csv", newline="") as handle:
        known = {int(row["airport_id"]) for row in csv.DictReader(handle)}
    count = 0
    for path in sorted(data.glob("????-??-??.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                ends = (int(row["OriginAirportID"]), int(row["DestAirportID"]))
                count += any(end not in known for end in ends)
    return count


def test_sample_then_ingest_loads_what_an_independent_count_expects(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "sample"
    made = flightpipe(
        settings, "sample", "--days", "3", "--flights-per-day", "2000", "--out", str(data)
    )
    assert made.returncode == 0, made.stderr

    ingested = flightpipe(
        settings, "ingest", "--dim", str(data / "airport_codes.csv"), str(data), "--format", "json"
    )

    assert ingested.returncode == 0, ingested.stderr
    files = json.loads(ingested.stdout)
    assert [(f["file"], f["outcome"]) for f in files] == [
        ("airport_codes.csv", "in use"),
        ("raw/2024-01-01.csv", "loaded"),
        ("raw/2024-01-02.csv", "loaded"),
        ("raw/2024-01-03.csv", "loaded"),
    ]
    warehouse = PostgresWarehouse(LocalServices(settings).warehouse_url)
    daily = sorted(data.glob("????-??-??.csv"))
    assert warehouse_days(warehouse) == expected_days(daily)
    flights = sum(f["rows"] for f in files if f["file"].startswith("raw/"))
    assert flights == sum(t.flights for t in expected_days(daily).values())
    _, rows = warehouse.query(
        "SELECT count(*) FROM flight_processed WHERE origin_city IS NULL OR dest_city IS NULL"
    )
    assert rows[0][0] == unknown_airport_flights(data) > 0


@dataclass(frozen=True)
class Batch:
    settings: Settings
    ingested: subprocess.CompletedProcess[str]
    """The ingest, its stdout a pipe and its format the table."""


@pytest.fixture(scope="module")
def mixed_batch(services: LocalServices, tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """The dimension, a good day and a misnamed file, ingested once for the tests reading it.

    Those tests only read what the ingest left, so one ingest (half a minute) serves them all.
    """
    settings = isolated_settings("mixed_batch")
    data = tmp_path_factory.mktemp("mixed")
    made = flightpipe(
        settings, "sample", "--days", "1", "--flights-per-day", "50", "--out", str(data)
    )
    assert made.returncode == 0, made.stderr
    (data / "flights-final.csv").write_text((data / "2024-01-01.csv").read_text())
    ingested = flightpipe(settings, "ingest", "--dim", str(data / "airport_codes.csv"), str(data))
    return Batch(settings, ingested)


def test_ingest_quarantines_a_misnamed_file_and_exits_1_while_good_files_load(
    mixed_batch: Batch,
) -> None:
    settings, ingested = mixed_batch.settings, mixed_batch.ingested

    assert ingested.returncode == 1
    assert "raw/flights-final.csv" in ingested.stdout
    assert "quarantined" in ingested.stdout
    assert "YYYY-MM-DD.csv" in ingested.stdout
    assert "Rows per day" in ingested.stdout
    assert "flights with an unknown airport" in ingested.stdout
    assert "alert for on-call" in ingested.stderr
    assert "Quarantined s3://" in ingested.stderr
    status = flightpipe(settings, "status", "--format", "json")
    assert status.returncode == 0, status.stderr
    measures = {m["measure"]: m["value"] for m in json.loads(status.stdout)}
    assert measures["files loaded"] == 1
    assert measures["rows"] > 0

    runs = flightpipe(settings, "runs", "--format", "json")
    assert runs.returncode == 0, runs.stderr
    listed = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(runs.stdout)}
    assert (listed["flights-final.csv"]["status"], listed["flights-final.csv"]["failed step"]) == (
        "FAILED",
        "validation",
    )
    assert listed["2024-01-01.csv"]["status"] == "SUCCEEDED"
    alerts = flightpipe(settings, "alerts", "--failed", "--format", "json")
    [alert] = json.loads(alerts.stdout)
    assert "raw/flights-final.csv" in alert["message"]

    report = flightpipe(settings, "report", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert "quality report: " in report.stderr
    latest = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(report.stdout)}
    assert latest["flights-final.csv"]["outcome"] == "quarantined"
    assert "dated file name" in latest["flights-final.csv"]["failed expectations"]
    assert latest["2024-01-01.csv"]["outcome"] == "passed"
    assert latest["2024-01-01.csv"]["page"].endswith(".html")


def key(uri: str) -> str:
    """``s3://bucket/key`` -> ``key``."""
    return uri.split("/", 3)[3]


def text(value: Any) -> str:
    """A JSON value as CSV and tables write it."""
    return "" if value is None else str(value)


# For each command, a table's columns and what a JSON record shows in them.
TABLES: dict[str, tuple[Sequence[str], Callable[[dict[str, Any]], list[str]]]] = {
    "runs": (
        ("started", "file", "status", "seconds", "failed step", "error", "run"),
        lambda r: [
            r["started"],
            key(r["file"]),
            r["status"],
            text(r["seconds"]),
            r["failed step"],
            r["error"].split("\n", 1)[0],
            r["run"][:12],
        ],
    ),
    "status": (("measure", "value"), lambda r: [r["measure"], text(r["value"])]),
    "alerts": (
        ("time", "subject", "message"),
        lambda r: [r["time"], r["subject"], " / ".join(r["message"].splitlines())],
    ),
    "report": (
        ("file", "outcome", "failed expectations", "validated at"),
        lambda r: [key(r["file"]), r["outcome"], r["failed expectations"], r["validated at"]],
    ),
}
BOX = set("┏┃┡│└")
"""The first character of every line of a rich table but its title."""


@pytest.mark.parametrize("command", TABLES)
def test_a_piped_table_has_one_whole_line_per_row_and_no_wider(
    mixed_batch: Batch, command: str
) -> None:
    columns, shown = TABLES[command]
    records = json.loads(flightpipe(mixed_batch.settings, command, "--format", "json").stdout)

    piped = flightpipe(mixed_batch.settings, command)

    assert piped.returncode == 0, piped.stderr
    rows = [shown(record) for record in records]
    lines = [line for line in piped.stdout.splitlines() if line[:1] in BOX]
    cells = [[c.strip() for c in line[1:-1].split(line[0])] for line in lines if line[0] in "┃│"]
    assert cells == [list(columns), *rows]
    widths = [max(map(len, column)) for column in zip(columns, *rows, strict=True)]
    assert {len(line) for line in lines} == {sum(widths) + 3 * len(widths) + 1}


def test_grep_finds_a_run_by_its_file_name(mixed_batch: Batch) -> None:
    found = subprocess.run(
        f"{sys.executable} -m pipeline runs | grep -F 2024-01-01.csv",
        shell=True,
        cwd=REPO_ROOT,
        env=settings_env(mixed_batch.settings),
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )

    [line] = found.stdout.splitlines()
    assert " raw/2024-01-01.csv " in line
    assert " SUCCEEDED " in line


def test_a_piped_ingest_keeps_every_value_of_its_tables_on_one_line(mixed_batch: Batch) -> None:
    lines = mixed_batch.ingested.stdout.splitlines()

    [quarantined] = [line for line in lines if "raw/flights-final.csv" in line]
    assert " quarantined " in quarantined
    assert "the name must be YYYY-MM-DD.csv, e.g. 2024-01-31.csv │" in quarantined
    [report] = [line for line in lines if "quality report" in line]
    assert Path(report.split("│")[2].strip()).is_file()


@pytest.mark.parametrize(
    "command",
    [("runs",), ("status",), ("alerts",), ("report",), ("local", "status"), ("query", "SELECT 1")],
    ids=" ".join,
)
def test_csv_has_lf_line_endings_and_the_values_of_the_one_json_document(
    mixed_batch: Batch, command: tuple[str, ...], tmp_path: Path
) -> None:
    as_json = flightpipe(mixed_batch.settings, *command, "--format", "json")
    # A file, not a pipe read as text: that would turn CRLF into LF before the test saw it.
    as_csv = flightpipe(
        mixed_batch.settings, *command, "--format", "csv", stdout_to=tmp_path / "out.csv"
    )

    assert as_json.returncode == as_csv.returncode == 0, as_json.stderr + as_csv.stderr
    records = json.loads(as_json.stdout)
    assert records
    written = (tmp_path / "out.csv").read_bytes().decode()
    assert "\r" not in written
    assert list(csv.DictReader(io.StringIO(written))) == [
        {column: text(value) for column, value in record.items()} for record in records
    ]


def test_a_file_missing_a_column_is_named_without_a_traceback(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "narrow"
    assert flightpipe(settings, "sample", "--days", "1", "--out", str(data)).returncode == 0
    day = data / "2024-01-01.csv"
    day.write_text("\n".join(line.rsplit(",", 1)[0] for line in day.read_text().splitlines()))

    ingested = flightpipe(settings, "ingest", str(data), "--format", "json")

    assert ingested.returncode == 1
    outcomes = {f["file"]: f for f in json.loads(ingested.stdout)}
    assert outcomes["raw/2024-01-01.csv"]["outcome"] == "quarantined"
    assert "missing ['ArrDelay']" in outcomes["raw/2024-01-01.csv"]["reason"]
    assert "missing ['ArrDelay']" in ingested.stderr  # the alert
    assert "Traceback" not in ingested.stderr


def test_query_prints_csv_and_refuses_writes(settings: Settings) -> None:
    up = flightpipe(settings, "local", "up")
    assert up.returncode == 0, up.stderr
    assert "state machine (main)" in up.stdout
    listed = flightpipe(settings, "query", "SELECT 1 AS one, 'a,b' AS two", "--format", "csv")
    assert listed.stdout.splitlines() == ["one,two", '1,"a,b"']

    refused = flightpipe(settings, "query", "DELETE FROM flight_processed")
    assert refused.returncode == 1
    assert "read-only transaction" in refused.stderr


def test_usage_errors_exit_2(settings: Settings) -> None:
    assert flightpipe(settings, "ingest").returncode == 2
    assert flightpipe(settings, "no-such-command").returncode == 2


def test_a_malformed_file_is_quarantined_naming_the_rule_and_nothing_loads(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "bad"
    assert flightpipe(settings, "sample", "--days", "1", "--out", str(data)).returncode == 0
    day = data / "2024-01-01.csv"
    day.write_text(day.read_text().replace("\n", "\nDL,10397,12892,late,4\n", 1))

    ingested = flightpipe(settings, "ingest", str(data))

    assert ingested.returncode == 1
    assert "Quarantined s3://" in ingested.stderr
    assert "DepDelay: 'late' is not a whole number (line 2)" in ingested.stderr
    assert "Traceback" not in ingested.stderr
    assert " INFO " not in ingested.stderr  # logs stay quiet without -v
    warehouse = PostgresWarehouse(LocalServices(settings).warehouse_url)
    assert warehouse.query("SELECT count(*) FROM flight_processed")[1] == [(0,)]


def test_a_damaged_validated_copy_is_rejected_naming_its_line_column_and_value(
    settings: Settings, tmp_path: Path
) -> None:
    from pipeline.local.twin import LocalTwin

    twin = LocalTwin(settings)
    twin.start()
    # Only the gate writes there; should a copy ever be damaged, the load still says what broke.
    twin.s3.put_object(
        Bucket=settings.raw_bucket,
        Key="validated/2024-01-01.csv",
        Body=b"Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay\nDL,10397,12892,late,4\n",
    )
    dimension = tmp_path / "airport_codes.csv"
    dimension.write_text("airport_id,city,state,name\n10397,Atlanta,GA,ATL\n")
    twin.submit_dimension(dimension)

    loaded = flightpipe(settings, "load")

    assert loaded.returncode == 1
    [row] = [line for line in loaded.stdout.splitlines() if "validated/2024-01-01.csv" in line]
    assert "rejected" in row
    assert "line 2, DepDelay: late is not a whole number" in row
    assert "Traceback" not in loaded.stderr
    listed = twin.s3.list_objects_v2(Bucket=settings.raw_bucket, Prefix="quarantine/")
    assert [o["Key"] for o in listed["Contents"]] == [
        "quarantine/2024-01-01.csv",
        "quarantine/2024-01-01.csv.validation.json",
    ]


def test_the_bad_input_catalog_in_one_batch_loads_exactly_the_loadable_files(
    settings: Settings, tmp_path: Path
) -> None:
    from quality.gate import Outcome
    from tests.test_quality_catalog import CATALOG, DEFAULTS, KNOWN

    data = tmp_path / "catalog"
    data.mkdir()
    (data / "airport_codes.csv").write_text(
        "airport_id,city,state,name\n" + "".join(f"{a},City {a},ST,Airport {a}\n" for a in KNOWN)
    )
    expected: dict[str, str] = {}
    for number, case in enumerate(CATALOG):
        if case.quality != DEFAULTS:  # a case with limits of its own: one batch has one set
            continue
        # Cases about the name keep theirs; the others each get a day of their own.
        name = case.name
        if name == "2024-01-01.csv":
            name = f"{dt.date(2024, 2, 1) + dt.timedelta(days=number)}.csv"
        (data / name).write_bytes(case.data)
        expected[f"raw/{name}"] = {
            Outcome.PASSED: "loaded",
            Outcome.WARNINGS: "loaded with warnings",
            Outcome.QUARANTINED: "quarantined",
        }[case.outcome]

    ingested = flightpipe(settings, "ingest", str(data), "--format", "json")

    assert ingested.returncode == 1, ingested.stderr
    assert "Traceback" not in ingested.stderr
    outcomes = {f["file"]: f for f in json.loads(ingested.stdout) if f["file"].startswith("raw/")}
    assert {key: o["outcome"] for key, o in outcomes.items()} == expected
    quarantined = [key for key, outcome in expected.items() if outcome == "quarantined"]
    assert ingested.stderr.count("alert for on-call") == len(quarantined)
    warehouse = PostgresWarehouse(LocalServices(settings).warehouse_url)
    _, rows = warehouse.query(
        "SELECT split_part(source_file, '/', 5), count(*) FROM flight_processed GROUP BY 1"
    )
    loaded = {f"raw/{name}": count for name, count in rows}
    assert loaded == {key: o["rows"] for key, o in outcomes.items() if o["rows"]}
    assert set(loaded) == {key for key, outcome in expected.items() if outcome != "quarantined"}
