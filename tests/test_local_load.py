"""The ETL job on the local twin, against real moto S3, real PostgreSQL and local Spark."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobs.load import validated_copy
from pipeline.core.contract import SOURCE_KEY, SOURCE_VERSION
from pipeline.core.uploads import Upload
from pipeline.local.postgres import LoadInProgressError
from pipeline.local.services import LocalServices
from pipeline.local.twin import LocalTwin
from pipeline.sample import SampleFiles, SampleSpec, write_sample
from pipeline.settings import REPO_ROOT, Settings
from tests.conftest import get_object_calls, settings_env
from tests.expected import audit_rows, expected_days, warehouse_days

pytestmark = pytest.mark.usefixtures("spark")


@pytest.fixture
def twin(settings: Settings) -> LocalTwin:
    running = LocalTwin(settings)
    running.start()
    return running


@pytest.fixture
def sample(data_dir: Path) -> SampleFiles:
    return write_sample(data_dir, SampleSpec(days=3, flights_per_day=400, airports=60))


def test_runs_load_only_new_files_and_nothing_when_nothing_is_new(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    day1, day2, day3 = sample.daily
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(day1)
    first = twin.load()
    assert dict(first.rows_by_key) == {
        "validated/2024-01-01.csv": expected_days([day1])["2024-01-01"].flights
    }

    twin.submit_daily(day2)
    twin.submit_daily(day3)
    second = twin.load()
    expected = expected_days(sample.daily)
    assert dict(second.rows_by_key) == {
        "validated/2024-01-02.csv": expected["2024-01-02"].flights,
        "validated/2024-01-03.csv": expected["2024-01-03"].flights,
    }
    assert warehouse_days(twin.warehouse) == expected

    third = twin.load()
    assert third.rows_by_key == {}
    assert warehouse_days(twin.warehouse) == expected_days(sample.daily)
    assert len(audit_rows(twin.warehouse)) == 3


def test_a_load_reads_the_gates_copies_from_the_cache_and_audits_their_sha256(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(sample.daily[0])
    fetched = get_object_calls(twin.s3)

    result = twin.load()

    assert dict(result.rows_by_key) == {
        "validated/2024-01-01.csv": expected_days(sample.daily[:1])["2024-01-01"].flights
    }
    assert fetched == []  # the gate wrote its copies through: nothing was downloaded
    body = twin.s3.get_object(Bucket=twin.settings.raw_bucket, Key="validated/2024-01-01.csv")
    _, audited = twin.warehouse.query("SELECT sha256 FROM flight_load_audit")
    assert audited == [(hashlib.sha256(body["Body"].read()).hexdigest(),)]


@pytest.mark.parametrize(
    ("external", "persistence"),
    [(False, "u"), (True, "p")],
    ids=["own-server-reads-parts-unlogged", "external-server-streamed-logged"],
)
def test_both_copy_paths_load_the_same_rows(
    settings: Settings,
    sample: SampleFiles,
    external: bool,
    persistence: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if external:  # the same server, named by URL: the twin treats it as someone else's
        url = LocalServices(settings).warehouse_url
        settings = settings.model_copy(
            update={"warehouse": settings.warehouse.model_copy(update={"url": url})}
        )
    twin = LocalTwin(settings)
    twin.start()
    assert twin.warehouse.own_server is not external
    twin.submit_dimension(sample.dimension)
    for path in sample.daily:
        twin.submit_daily(path)

    caplog.set_level(logging.INFO, logger="pipeline.local.postgres")

    result = twin.load()

    expected = expected_days(sample.daily)
    assert warehouse_days(twin.warehouse) == expected
    # The files' line counts add up to the rows each COPY reported, which proves every file's
    # count without reading the table; they are the counts an independent reading gives.
    assert "counted_in=files" in caplog.text
    assert dict(result.rows_by_key) == {
        f"validated/{path.name}": expected[path.stem].flights for path in sample.daily
    }
    _, tables = twin.warehouse.query(
        "SELECT relname::text, relpersistence::text FROM pg_class "
        "WHERE relname IN ('flight_processed', 'flight_load_audit')"
    )
    assert dict(tables) == {"flight_processed": persistence, "flight_load_audit": persistence}


def test_values_with_commas_quotes_tabs_and_backslashes_load_verbatim(
    twin: LocalTwin, tmp_path: Path
) -> None:
    dimension = tmp_path / "airport_codes.csv"
    dimension.write_text(
        'airport_id,city,state,name\n10001,"Spaced  City, Upper",ST,"Field, ""Old"" Terminal"\n'
        "10002,Tab\tCity,\\x,Back\\slash\\\n"
    )
    day = tmp_path / "2024-05-01.csv"
    day.write_text("Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay\nDL,10001,10002,5,\n")
    twin.submit_dimension(dimension)
    twin.submit_daily(day)

    twin.load()

    _, rows = twin.warehouse.query(
        "SELECT origin_city, origin_name, dest_city, dest_state, dest_name, dep_delay, arr_delay "
        "FROM flight_processed"
    )
    assert rows == [
        (
            *("Spaced  City, Upper", 'Field, "Old" Terminal'),
            *("Tab\tCity", "\\x", "Back\\slash\\", 5, None),
        )
    ]


def test_a_corrected_file_replaces_exactly_its_day(
    twin: LocalTwin, sample: SampleFiles, tmp_path: Path
) -> None:
    twin.submit_dimension(sample.dimension)
    for path in sample.daily:
        twin.submit_daily(path)
    twin.load()
    _, before = twin.warehouse.query(
        "SELECT flight_date::text, min(loaded_at) FROM flight_processed GROUP BY 1"
    )

    correction = tmp_path / "fix" / "2024-01-02.csv"
    correction.parent.mkdir()
    lines = sample.daily[1].read_text().splitlines()
    correction.write_text("\n".join(lines[:101]) + "\n")  # header + the first 100 flights
    twin.submit_daily(correction)
    result = twin.load()

    assert dict(result.rows_by_key) == {"validated/2024-01-02.csv": 100}
    expected = expected_days([sample.daily[0], correction, sample.daily[2]])
    assert warehouse_days(twin.warehouse) == expected
    _, after = twin.warehouse.query(
        "SELECT flight_date::text, min(loaded_at) FROM flight_processed GROUP BY 1"
    )
    changed = {day for day, at in after if (day, at) not in before}
    assert changed == {"2024-01-02"}
    versions = [row for row in audit_rows(twin.warehouse) if row[0] == "validated/2024-01-02.csv"]
    assert len(versions) == 2
    assert versions[0][1] != versions[1][1]


def test_a_file_waiting_for_validation_is_never_loaded_by_another_files_run(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    day1, day2, _ = sample.daily
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(day1)
    waiting = twin.upload_daily(day2)  # uploaded, its validation not run yet

    first = twin.load()

    assert list(first.rows_by_key) == ["validated/2024-01-01.csv"]
    twin.validate(waiting)
    assert list(twin.load().rows_by_key) == ["validated/2024-01-02.csv"]
    assert warehouse_days(twin.warehouse) == expected_days([day1, day2])


HEADER = "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay"


def planted(twin: LocalTwin, name: str, rows: list[str]) -> str:
    """A validated copy written past the gate (no upload names it); its version id."""
    body = "\n".join([HEADER, *rows]) + "\n"
    written = twin.s3.put_object(
        Bucket=twin.settings.raw_bucket, Key=f"validated/{name}", Body=body.encode()
    )
    return str(written["VersionId"])


def rejects(twin: LocalTwin) -> list[tuple[Any, ...]]:
    _, rows = twin.warehouse.query(
        "SELECT validated_key, validated_version, upload_key, reason, line, column_name, value,"
        " job_run_id FROM flight_load_rejects ORDER BY validated_key"
    )
    return rows


def quarantined(twin: LocalTwin) -> dict[str, Any]:
    listed = twin.s3.list_objects_v2(Bucket=twin.settings.raw_bucket, Prefix="quarantine/")
    found = {}
    for item in listed.get("Contents", []):
        body = twin.s3.get_object(Bucket=twin.settings.raw_bucket, Key=item["Key"])["Body"].read()
        found[item["Key"]] = json.loads(body) if item["Key"].endswith(".json") else body
    return found


def test_a_validated_copy_spark_cannot_read_is_set_aside_and_the_other_files_load(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(sample.daily[0])
    # Past the gate: line 11 holds a delay no INTEGER can hold (Spark's read fails on it).
    rows = ["DL,10397,12892,5,4"] * 11
    rows[9] = "DL,10397,12892,99999999999,4"
    bad = planted(twin, "2024-01-02.csv", rows)

    result = twin.load()

    good = expected_days([sample.daily[0]])
    assert dict(result.rows_by_key) == {"validated/2024-01-01.csv": good["2024-01-01"].flights}
    reason = "line 11, DepDelay: 99999999999 is outside -2147483648..2147483647"
    assert [r.reason for r in result.rejected] == [reason]
    assert warehouse_days(twin.warehouse) == good
    # The reject record committed with the good file's rows and audit row.
    _, [(run, loaded_at)] = twin.warehouse.query(
        "SELECT job_run_id, loaded_at FROM flight_load_audit"
    )
    assert rejects(twin) == [
        ("validated/2024-01-02.csv", bad, None, reason, 11, "DepDelay", "99999999999", run)
    ]
    _, [(rejected_at,)] = twin.warehouse.query("SELECT loaded_at FROM flight_load_rejects")
    assert rejected_at == loaded_at  # the transaction's timestamp: one commit
    moved = quarantined(twin)
    assert moved["quarantine/2024-01-02.csv"].startswith(HEADER.encode())
    document = moved["quarantine/2024-01-02.csv.validation.json"]
    assert (document["outcome"], document["line"], document["column"]) == (
        "rejected at load",
        11,
        "DepDelay",
    )
    listed = twin.s3.list_objects_v2(Bucket=twin.settings.raw_bucket, Prefix="validated/")
    assert [o["Key"] for o in listed["Contents"]] == ["validated/2024-01-01.csv"]

    # The next good file loads: nothing of the bad one is new to it.
    twin.submit_daily(sample.daily[2])
    assert list(twin.load().rows_by_key) == ["validated/2024-01-03.csv"]
    assert warehouse_days(twin.warehouse) == expected_days([sample.daily[0], sample.daily[2]])


def test_a_row_the_warehouse_refuses_is_traced_to_its_file_by_the_copy_error(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(sample.daily[0])
    # A dimension copy past the gate with a city wider than VARCHAR(256): only the day that
    # flies from that airport carries it, and no rule of the daily file is broken.
    dimension = "airport_id,city,state,name\n10001," + "C" * 300 + ",ST,Far Field\n"
    twin.s3.put_object(
        Bucket=twin.settings.dimension_bucket,
        Key=twin.settings.storage.validated_dimension_key,
        Body=(sample.dimension.read_text() + dimension.split("\n", 1)[1]).encode(),
    )
    planted(twin, "2024-01-02.csv", ["DL,10001,10001,5,4"])

    result = twin.load()

    [rejection] = result.rejected
    assert rejection.file.key == "validated/2024-01-02.csv"
    assert rejection.reason.startswith("the warehouse refused it: origin_city: value too long")
    assert (rejection.line, rejection.column) == (None, "origin_city")
    assert list(result.rows_by_key) == ["validated/2024-01-01.csv"]
    assert [r[0] for r in rejects(twin)] == ["validated/2024-01-02.csv"]


def test_a_rejected_version_still_in_place_is_never_new_again(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    twin.submit_dimension(sample.dimension)
    bad = planted(twin, "2024-01-02.csv", ["DL,10397,12892,late,4"])
    body = twin.s3.get_object(
        Bucket=twin.settings.raw_bucket, Key="validated/2024-01-02.csv", VersionId=bad
    )["Body"].read()
    twin.load()
    # As if the run died between the reject's commit and the move to quarantine: the
    # rejected version is back where the load reads.
    again = twin.s3.put_object(
        Bucket=twin.settings.raw_bucket, Key="validated/2024-01-02.csv", Body=body
    )["VersionId"]
    with twin.warehouse.connect() as conn:
        conn.execute("UPDATE flight_load_rejects SET validated_version = %s", [again])
    twin.submit_daily(sample.daily[0])

    result = twin.load()

    assert list(result.rows_by_key) == ["validated/2024-01-01.csv"]
    assert result.rejected == ()
    assert len(rejects(twin)) == 1


def test_an_object_that_is_no_daily_file_is_reported_and_the_daily_files_load(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(sample.daily[0])
    twin.s3.put_object(
        Bucket=twin.settings.raw_bucket, Key="validated/notes.txt", Body=b"not a daily file\n"
    )

    result = twin.load()

    notes = f"s3://{twin.settings.raw_bucket}/validated/notes.txt"
    assert list(result.refused) == [notes]
    assert "YYYY-MM-DD.csv" in result.refused[notes]
    assert warehouse_days(twin.warehouse) == expected_days(sample.daily[:1])


def test_the_audit_names_the_upload_its_copy_names_not_one_rebuilt_from_the_raw_prefix(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    """A copy promoted from uploads under another raw prefix (one the settings had then) is
    audited with its own upload's key, the one its run looks for."""
    from jobs.validation import validate_upload

    twin.submit_dimension(sample.dimension)
    job = twin.settings.job_settings().with_buckets(twin.settings.buckets())
    earlier = job.model_copy(
        update={"storage": job.storage.model_copy(update={"raw_prefix": "incoming/"})}
    )
    day = sample.daily[0]
    put = twin.s3.put_object(
        Bucket=twin.settings.raw_bucket, Key=f"incoming/{day.name}", Body=day.read_bytes()
    )
    upload = Upload(twin.settings.raw_bucket, f"incoming/{day.name}", put["VersionId"])
    validate_upload(twin.s3, earlier, upload, dt.date.today())

    twin.load()

    _, audited = twin.warehouse.query("SELECT upload_key, upload_version FROM flight_load_audit")
    assert audited == [(upload.key, upload.version)]


def test_a_copy_without_its_upload_key_names_the_upload_at_the_raw_prefix() -> None:
    """A copy the gate promoted before it wrote ``source-key``: the gate promotes only uploads
    directly under the raw prefix, so that is where its upload is."""
    day = "s3://raw-bucket/validated/2024-01-05.csv"
    older = validated_copy(day, "v2", "0" * 64, {SOURCE_VERSION: "u1"}, "raw/")
    newer = validated_copy(
        day, "v2", "0" * 64, {SOURCE_VERSION: "u1", SOURCE_KEY: "in%20here/2024-01-05.csv"}, "raw/"
    )
    planted = validated_copy(day, "v2", "0" * 64, {}, "raw/")
    assert (older.upload_key, older.upload_version) == ("raw/2024-01-05.csv", "u1")
    assert (newer.upload_key, newer.upload_version) == ("in here/2024-01-05.csv", "u1")
    assert (planted.upload_key, planted.upload_version) == (None, None)


def test_a_copy_whose_lines_overstate_its_rows_is_audited_by_counting_the_table(
    twin: LocalTwin, sample: SampleFiles, caplog: pytest.LogCaptureFixture
) -> None:
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(sample.daily[0])
    # The gate's copies have no blank lines; one written otherwise, with CRLF and lone-CR line
    # ends, has more lines than rows.
    header, *rows = sample.daily[1].read_text().splitlines()
    body = "\r\n".join([header, rows[0], "", "\r".join(rows[1:3]), *rows[3:], "", ""])
    twin.s3.put_object(
        Bucket=twin.settings.raw_bucket, Key="validated/2024-01-02.csv", Body=body.encode()
    )
    caplog.set_level(logging.INFO, logger="pipeline.local.postgres")

    result = twin.load()

    assert dict(result.rows_by_key) == {
        "validated/2024-01-01.csv": expected_days([sample.daily[0]])["2024-01-01"].flights,
        "validated/2024-01-02.csv": len(rows),
    }
    assert "counted_in=table" in caplog.text
    assert warehouse_days(twin.warehouse) == expected_days(sample.daily[:2])


def test_a_run_refuses_while_another_holds_the_load_lock(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    twin.submit_dimension(sample.dimension)
    twin.submit_daily(sample.daily[0])
    with twin.warehouse.exclusive_run(), pytest.raises(LoadInProgressError, match="retry"):
        twin.load()
    assert twin.load().rows_by_key  # the lock is released afterwards


# --- separate processes: SIGKILL mid-load, and two runs at once ----------------------------


def start_load(settings: Settings) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--verbose", "load"],
        cwd=REPO_ROOT,
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the JVM dies with it
    )


def lines_until(process: subprocess.Popen[str], marker: str, timeout: float) -> Iterator[str]:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        yield line
        if marker in line or time.monotonic() > deadline:
            return


@pytest.fixture
def big_sample(data_dir: Path) -> SampleFiles:
    # Big enough that the COPY takes a noticeable time, so a kill can land inside it.
    return write_sample(data_dir, SampleSpec(days=3, flights_per_day=60_000, airports=120))


@pytest.mark.parametrize("phase", ["phase=delete", "phase=copy", "phase=audit", "phase=committed"])
def test_a_run_killed_at_any_point_then_rerun_leaves_exactly_the_latest_files(
    twin: LocalTwin, big_sample: SampleFiles, phase: str
) -> None:
    twin.submit_dimension(big_sample.dimension)
    twin.submit_daily(big_sample.daily[0])
    twin.load()  # day 1 is already loaded; the killed run replaces it and adds days 2-3
    twin.submit_daily(big_sample.daily[0])
    twin.submit_daily(big_sample.daily[1])
    twin.submit_daily(big_sample.daily[2])
    before = warehouse_days(twin.warehouse)

    process = start_load(twin.settings)
    seen = "".join(lines_until(process, phase, timeout=120))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert phase in seen, seen[-3000:]

    # Killed: either nothing of the run is visible, or all of it (it had committed).
    after_kill = warehouse_days(twin.warehouse)
    assert after_kill in (before, expected_days(big_sample.daily))

    twin.load()
    assert warehouse_days(twin.warehouse) == expected_days(big_sample.daily)
    keys = [row[0] for row in audit_rows(twin.warehouse)]
    assert sorted(keys) == ["validated/2024-01-01.csv"] * 2 + [
        "validated/2024-01-02.csv",
        "validated/2024-01-03.csv",
    ]


def test_two_runs_at_once_load_everything_exactly_once(
    twin: LocalTwin, sample: SampleFiles
) -> None:
    twin.submit_dimension(sample.dimension)
    for path in sample.daily:
        twin.submit_daily(path)

    processes = [start_load(twin.settings) for _ in range(2)]
    outcomes = []
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        outcomes.append((process.returncode, stderr))

    assert sorted(code for code, _ in outcomes) in ([0, 0], [0, 1])
    for code, stderr in outcomes:
        if code == 1:
            assert "another load run is in progress" in stderr
    assert warehouse_days(twin.warehouse) == expected_days(sample.daily)
    assert len(audit_rows(twin.warehouse)) == 3


def test_a_copy_that_dies_midway_cancels_the_spark_write_and_changes_nothing(
    twin: LocalTwin, big_sample: SampleFiles
) -> None:
    twin.submit_dimension(big_sample.dimension)
    for path in big_sample.daily:
        twin.submit_daily(path)

    def kill_the_copy() -> None:
        # The warehouse connection is lost while rows stream in.
        with twin.warehouse.connect(autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                killed = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'COPY flight_processed%%' AND pid <> pg_backend_pid()"
                ).fetchall()
                if killed:
                    return
                time.sleep(0.01)

    killer = threading.Thread(target=kill_the_copy)
    killer.start()
    with pytest.raises(psycopg.OperationalError):
        twin.load()
    killer.join()

    # The background Spark write was cancelled, not left running on the shared session.
    assert twin.spark.sparkContext.statusTracker().getActiveJobsIds() == []
    assert warehouse_days(twin.warehouse) == {}
    assert audit_rows(twin.warehouse) == []
    # The next run loads everything and leaves no staged parts behind, from either run.
    twin.load()
    assert warehouse_days(twin.warehouse) == expected_days(big_sample.daily)
    assert list((twin.services.staging_dir).iterdir()) == []
