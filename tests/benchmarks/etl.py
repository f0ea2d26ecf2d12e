"""Benchmark of the local ETL job (``make bench``: ``python -m tests.benchmarks.etl``).

What is measured, one run each on this machine, against the bench's own local twin (state in
``.flightpipe/bench``, ports 17077/17477, one database and one bucket prefix per scenario):

1. start-up: time until the SparkSession is ready (reported alone, in no other row);
2. first day: one daily file (~1000 flights) into an empty warehouse (``twin.load()``);
3. backfill: 365 days of ~1000 flights uploaded (timed on its own row), then ONE job run;
4. one new day (day 366) after those 365 (target: <= 1.2 x the first day);
5. a run with nothing new (target: < 5 s);
6. a ~5M-row backfill in one run: seconds, rows/s and the peak summed RSS of this process, all
   its descendants (the Spark JVM, moto) and the PostgreSQL server processes, sampled every
   100 ms (targets: >= 250,000 rows/s end to end, peak < 4 GB);
7. the validation step (gate, promotion, report page) on one 1M-row daily file (seconds, peak
   memory) beside the load of that same file (target: the gate takes at most half of that
   file's load time).

Beside each load, a reference computed in the same run: a straightforward single-process load
of the same CSV files into the same PostgreSQL (DuckDB joins the airport dimension and writes a
CSV file, which streams into ``COPY ... FROM STDIN`` of ``flight_processed_reference`` in one
transaction that first deletes the days being loaded). ratio = flightpipe s / reference s;
ref rows/s is the reference's own rate, a gauge of this machine's speed.

``--only twin`` runs the event path's scenarios instead (``tests/benchmarks/twin.py``).

Row counts are checked after every load (a mismatch raises; on the twin, once every table is
printed); targets are only reported.
The table goes to stdout, progress to stderr. Generated data is kept in
``.flightpipe/bench/data`` and reused while its spec is unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil
import psycopg
from rich.console import Console
from rich.table import Table

from jobs.validation import Action
from pipeline.core.contract import (
    AIRPORTS,
    DAILY_FLIGHTS,
    FLIGHT_PROCESSED,
    ColumnType,
    Dialect,
    create_table_sql,
)
from pipeline.core.warehouse import LOAD_COLUMNS
from pipeline.local.durable import aws_state_folder
from pipeline.local.services import POSTGRES_SPEED_SETTINGS, LocalServices
from pipeline.local.twin import LocalTwin
from pipeline.sample import SampleFiles, SampleSpec, write_sample
from pipeline.settings import REPO_ROOT, Settings, load_settings

STATE_DIR = REPO_ROOT / ".flightpipe" / "bench"
DATA_DIR = STATE_DIR / "data"
REFERENCE_TABLE = "flight_processed_reference"
MB = 1024 * 1024

YEAR = SampleSpec(days=366, flights_per_day=1000)  # 365 for the backfill, day 366 as "new"
BIG = SampleSpec(days=50, flights_per_day=100_000)

NEW_DAY_FACTOR = 1.2
NOTHING_NEW_SECONDS = 5.0
BIG_ROWS_PER_SECOND = 250_000
BIG_PEAK_MB = 4 * 1024
GATE_SHARE_OF_LOAD = 0.5

out = Console(width=200)  # wide enough for the table when stdout is a file
progress = Console(stderr=True)


# -- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """Generated files and the rows of each daily file."""

    dimension: Path
    daily: tuple[Path, ...]
    rows: dict[str, int]

    def rows_of(self, files: Sequence[Path]) -> int:
        return sum(self.rows[f.name] for f in files)


def sample(spec: SampleSpec) -> Sample:
    """The files of ``spec`` under DATA_DIR, generated unless a previous run left them."""
    folder = DATA_DIR / f"{spec.days}d-{spec.flights_per_day}fpd-seed{spec.seed}"
    marker = folder / "sample.json"
    wanted = json.loads(json.dumps(dataclasses.asdict(spec), default=str))
    if marker.exists():
        saved = json.loads(marker.read_text())
        daily = tuple(folder / name for name in saved["rows"])
        dimension = folder / saved["dimension"]
        if saved["spec"] == wanted and all(p.exists() for p in (dimension, *daily)):
            progress.log(f"reusing {len(daily)} generated days in {folder}")
            return Sample(dimension, daily, saved["rows"])
    progress.log(f"generating {spec} into {folder}")
    shutil.rmtree(folder, ignore_errors=True)
    files: SampleFiles = write_sample(folder, spec)
    rows = {path.name: _data_lines(path) for path in files.daily}
    if sum(rows.values()) != files.rows:
        raise AssertionError(f"{folder}: {sum(rows.values())} data lines, expected {files.rows}")
    marker.write_text(
        json.dumps({"spec": wanted, "dimension": files.dimension.name, "rows": rows}, indent=1)
    )
    return Sample(files.dimension, files.daily, rows)


def _data_lines(path: Path) -> int:
    """Rows of a generated daily file: its lines minus the header (values hold no newlines)."""
    with path.open("rb") as handle:
        return sum(1 for _ in handle) - 1


# -- measuring --------------------------------------------------------------------------------


class PeakMemory:
    """Peak of the summed RSS of this process tree and the PostgreSQL server, sampled in a thread.

    RSS counts shared pages (PostgreSQL's shared buffers) once per process that touched them,
    so the sum is an upper bound. Finding the processes means reading every process's status,
    so the set is refreshed only every ``refresh_every`` samples (a load's processes live for
    all of it): sampling stays a small share of a core instead of taking CPU from the load.
    """

    def __init__(
        self, services: LocalServices, interval: float = 0.1, refresh_every: int = 10
    ) -> None:
        self.interval = interval
        self.refresh_every = refresh_every
        self.roots = [psutil.Process()]
        pid_file = services.pg_data / "postmaster.pid"
        self.roots.append(psutil.Process(int(pid_file.read_text().splitlines()[0])))
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MB

    def _sample(self) -> None:
        processes: list[psutil.Process] = []
        for count in itertools.count():
            if count % self.refresh_every == 0:
                processes = self._processes()
            self.peak_bytes = max(self.peak_bytes, _total_rss(processes))
            if self._stop.wait(self.interval):
                return

    def _processes(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                for process in [root, *root.children(recursive=True)]:
                    found[process.pid] = process
        return list(found.values())


def _total_rss(processes: Sequence[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


@dataclass(frozen=True)
class Timed:
    seconds: float
    rows: int
    peak_mb: float | None = None


def table_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


def expect_rows(url: str, table: str, expected: int) -> None:
    found = table_rows(url, table)
    if found != expected:
        raise AssertionError(f"{table}: {found} rows after the load, expected {expected}")


def time_flightpipe_load(twin: LocalTwin, new_rows: int, total_rows: int) -> Timed:
    """One ``twin.load()``: seconds and peak memory, then the row counts are checked."""
    with PeakMemory(twin.services) as memory:
        start = time.perf_counter()
        result = twin.load()
        seconds = time.perf_counter() - start
    if result.rows != new_rows:
        raise AssertionError(f"flightpipe loaded {result.rows} rows, expected {new_rows}")
    expect_rows(twin.warehouse.url, FLIGHT_PROCESSED.name, total_rows)
    progress.log(f"flightpipe: {new_rows:,} rows in {seconds:.2f} s")
    return Timed(seconds, new_rows, memory.peak_mb)


_DUCKDB_TYPES = {ColumnType.STRING: "VARCHAR", ColumnType.INTEGER: "INTEGER"}


def _duckdb_columns(columns: Sequence[tuple[str | None, ColumnType]]) -> str:
    return "{" + ", ".join(f"'{name}': '{_DUCKDB_TYPES[kind]}'" for name, kind in columns) + "}"


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def reference_sql(dimension: Path, daily: Sequence[Path], uri_prefix: str, target: Path) -> str:
    """DuckDB: the daily files joined with the dimension on both ends, written to ``target``."""
    flights = _duckdb_columns([(c.source, c.type) for c in DAILY_FLIGHTS.columns])
    airports = _duckdb_columns([(c.source, c.type) for c in AIRPORTS.columns])
    details = {
        f"{role}_{detail}": f"{role[0]}.{detail}"
        for role in ("origin", "dest")
        for detail in ("city", "state", "name")
    }
    derived = {
        "flight_date": r"CAST(regexp_extract(f.filename, '(\d{4}-\d{2}-\d{2})\.csv$', 1) AS DATE)",
        "carrier": "f.Carrier",
        "origin_airport_id": "f.OriginAirportID",
        "dest_airport_id": "f.DestAirportID",
        "dep_delay": "f.DepDelay",
        "arr_delay": "f.ArrDelay",
        "source_file": f"'{uri_prefix}' || regexp_extract(f.filename, '[^/]+$')",
        **details,
    }
    select = ",\n            ".join(f"{derived[name]} AS {name}" for name in LOAD_COLUMNS)
    return f"""
        COPY (
            SELECT {select}
            FROM read_csv({_sql_list(daily)}, header = true, filename = true,
                          columns = {flights}) f
            LEFT JOIN read_csv('{dimension}', header = true, columns = {airports}) o
                ON o.airport_id = f.OriginAirportID
            LEFT JOIN read_csv('{dimension}', header = true, columns = {airports}) d
                ON d.airport_id = f.DestAirportID
        ) TO '{target}' (FORMAT csv, HEADER false)
    """


def time_reference_load(
    twin: LocalTwin, dimension: Path, daily: Sequence[Path], total_rows: int
) -> Timed:
    """The straightforward load of the same files: DuckDB to a CSV file, then one COPY."""
    url = twin.warehouse.url
    uri_prefix = f"s3://{twin.settings.raw_bucket}/{twin.settings.storage.raw_prefix}"
    days = sorted({path.stem for path in daily})
    target = STATE_DIR / "tmp" / "reference.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    copy = f"COPY {REFERENCE_TABLE} ({', '.join(LOAD_COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
    start = time.perf_counter()
    with duckdb.connect() as db:
        db.execute(reference_sql(dimension, daily, uri_prefix, target))
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(
            f"DELETE FROM {REFERENCE_TABLE} WHERE flight_date = ANY(%s::date[])",  # type: ignore[arg-type]
            [days],
        )
        with conn.cursor().copy(copy) as stream, target.open("rb") as handle:  # type: ignore[arg-type]
            while chunk := handle.read(1 << 20):
                stream.write(chunk)
    seconds = time.perf_counter() - start
    target.unlink()
    expect_rows(url, REFERENCE_TABLE, total_rows)
    progress.log(f"reference: {total_rows:,} rows in table, load took {seconds:.2f} s")
    return Timed(seconds, total_rows)


# -- scenarios --------------------------------------------------------------------------------


def bench_settings(name: str | None = None, warm_up: bool = False) -> Settings:
    """The bench's settings; with a name, that scenario's database and bucket prefix.

    The local AWS endpoint warms Spark up only for the twin's scenarios: elsewhere its JVM
    would start in the middle of a measurement of the load's own.
    """
    overrides: dict[str, object] = {}
    if name:
        overrides = {
            "warehouse": {"database": f"bench_{name}"},
            "storage": {"bucket_prefix": f"bench-{name.replace('_', '-')}"},
        }
    local = {"state_dir": STATE_DIR, "warm_up": warm_up}
    return load_settings("local", local=local, **overrides)


def scenario_twin(name: str, warm_up: bool = False) -> LocalTwin:
    """A started twin on a freshly created database of its own, with the reference table."""
    settings = bench_settings(name, warm_up)
    services = LocalServices(settings)
    services.up()
    admin = f"postgresql://postgres@127.0.0.1:{services.local.postgres_port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{settings.warehouse.database}"')  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{settings.warehouse.database}"')  # type: ignore[arg-type]
    twin = LocalTwin(settings)
    twin.start()
    reference = dataclasses.replace(FLIGHT_PROCESSED, name=REFERENCE_TABLE)
    with twin.warehouse.connect(autocommit=True) as conn:
        conn.execute(create_table_sql(reference, Dialect.POSTGRES))  # type: ignore[arg-type]
        # Like the warehouse's own tables on the twin's server: the comparison stays fair.
        conn.execute(f"ALTER TABLE {REFERENCE_TABLE} SET UNLOGGED")  # type: ignore[arg-type]
    return twin


def upload(twin: LocalTwin, dimension: Path, daily: Sequence[Path]) -> float:
    """Upload and validate the files, as ``flightpipe ingest`` does before its load."""
    start = time.perf_counter()
    twin.submit_dimension(dimension)
    for path in daily:
        twin.validate(twin.upload_daily(path), build_report=False)
    twin.reports.build()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Row:
    scenario: str
    rows: int | None = None
    flightpipe_s: float | None = None
    reference_s: float | None = None
    peak_mb: float | None = None
    target: str = ""
    met: bool | None = None
    problem: str = ""
    """Why the row's result is wrong (rows missing): the bench fails once the tables are out."""


def load_row(scenario: str, flightpipe: Timed, reference: Timed | None = None) -> Row:
    return Row(
        scenario,
        flightpipe.rows,
        flightpipe.seconds,
        reference.seconds if reference else None,
        flightpipe.peak_mb,
    )


def run_scenarios() -> list[Row]:
    year = sample(YEAR)
    big = sample(BIG)
    backfill, new_day = year.daily[:-1], year.daily[-1]
    rows: list[Row] = []

    progress.log("scenario: first day (start-up first)")
    twin = scenario_twin("first_day")
    start = time.perf_counter()
    _ = twin.spark
    rows.append(Row("start-up: SparkSession ready", flightpipe_s=time.perf_counter() - start))
    first = year.daily[:1]
    twin.submit_dimension(year.dimension)
    twin.submit_daily(first[0])
    first_day = time_flightpipe_load(twin, year.rows_of(first), year.rows_of(first))
    rows.append(
        load_row(
            "first day alone",
            first_day,
            time_reference_load(twin, year.dimension, first, year.rows_of(first)),
        )
    )

    progress.log("scenario: backfill of 365 days, then one new day, then nothing new")
    twin = scenario_twin("backfill")
    rows.append(
        Row(
            f"backfill {len(backfill)} days: upload + validate",
            flightpipe_s=upload(twin, year.dimension, backfill),
        )
    )
    total = year.rows_of(backfill)
    rows.append(
        load_row(
            f"backfill {len(backfill)} days: load",
            time_flightpipe_load(twin, total, total),
            time_reference_load(twin, year.dimension, backfill, total),
        )
    )
    twin.submit_daily(new_day)
    total += year.rows[new_day.name]
    limit = NEW_DAY_FACTOR * first_day.seconds
    one_day = time_flightpipe_load(twin, year.rows[new_day.name], total)
    rows.append(
        dataclasses.replace(
            load_row(
                f"one new day after {len(backfill)}",
                one_day,
                time_reference_load(twin, year.dimension, [new_day], total),
            ),
            target=f"<= {NEW_DAY_FACTOR} x first day ({limit:.2f} s)",
            met=one_day.seconds <= limit,
        )
    )
    nothing = time_flightpipe_load(twin, 0, total)
    rows.append(
        dataclasses.replace(
            load_row("nothing new", nothing),
            target=f"< {NOTHING_NEW_SECONDS:.0f} s",
            met=nothing.seconds < NOTHING_NEW_SECONDS,
        )
    )

    progress.log(f"scenario: {sum(big.rows.values()):,}-row backfill")
    twin = scenario_twin("big")
    upload(twin, big.dimension, big.daily)
    total = big.rows_of(big.daily)
    loaded = time_flightpipe_load(twin, total, total)
    peak = loaded.peak_mb or 0.0
    rows.append(
        dataclasses.replace(
            load_row(
                f"{total / 1e6:.1f}M-row backfill ({len(big.daily)} days)",
                loaded,
                time_reference_load(twin, big.dimension, big.daily, total),
            ),
            target=f">= {BIG_ROWS_PER_SECOND:,} rows/s, peak < {BIG_PEAK_MB:,} MB",
            met=total / loaded.seconds >= BIG_ROWS_PER_SECOND and peak < BIG_PEAK_MB,
        )
    )
    rows.extend(gate_rows(big))
    twin.spark.stop()
    return rows


def gate_rows(big: Sample) -> list[Row]:
    """The quality gate on one 1M-row daily file, beside loading that same file."""
    progress.log("scenario: quality gate on a 1M-row daily file, then its load")
    folder = DATA_DIR / "gate"
    folder.mkdir(parents=True, exist_ok=True)
    daily = folder / "2024-03-01.csv"
    sources = big.daily[:10]
    with daily.open("wb") as out_file:
        for number, path in enumerate(sources):
            content = path.read_bytes()
            out_file.write(content if number == 0 else content.split(b"\n", 1)[1])
    rows = big.rows_of(sources)

    twin = scenario_twin("gate")
    _ = twin.spark  # started beforehand, as in the full run: its start is no part of the load
    twin.submit_dimension(big.dimension)
    upload = twin.upload_daily(daily)
    with PeakMemory(twin.services) as memory:
        start = time.perf_counter()
        validated = twin.validate(upload)
        gate_seconds = time.perf_counter() - start
    if validated.action is not Action.PROMOTED or validated.verdict.rows != rows:
        raise AssertionError(
            f"the gate said {validated.verdict.outcome} for {validated.verdict.rows} rows: "
            f"{validated.verdict.reason}"
        )
    load = time_flightpipe_load(twin, rows, rows)
    return [
        dataclasses.replace(
            Row("gate: validate 1M-row daily file", rows, gate_seconds, peak_mb=memory.peak_mb),
            target=f"<= half its load ({GATE_SHARE_OF_LOAD * load.seconds:.2f} s)",
            met=gate_seconds <= GATE_SHARE_OF_LOAD * load.seconds,
        ),
        load_row("load of that 1M-row daily file", load),
    ]


# -- report -----------------------------------------------------------------------------------


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _quotient(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None where either is missing or zero (no rows, no time)."""
    return numerator / denominator if numerator and denominator else None


def results_table(rows: Sequence[Row]) -> Table:
    table = Table(title="flightpipe local ETL benchmark")
    # The reference's own rows/s tells how fast this machine is: an absolute target reads
    # differently where the same single-process load runs at half the speed.
    columns = ("scenario", "rows", "flightpipe s", "rows/s", "reference s", "ref rows/s", "ratio")
    for name in columns:
        table.add_column(name, justify="left" if name == "scenario" else "right")
    table.add_column("peak MB", justify="right")
    table.add_column("target")
    table.add_column("met")
    for row in rows:
        table.add_row(
            row.scenario,
            _number(row.rows, ","),
            _number(row.flightpipe_s, ".2f"),
            _number(_quotient(row.rows, row.flightpipe_s), ",.0f"),
            _number(row.reference_s, ".2f"),
            _number(_quotient(row.rows, row.reference_s), ",.0f"),
            _number(_quotient(row.flightpipe_s, row.reference_s), ".2f"),
            _number(row.peak_mb, ",.0f"),
            row.target or "-",
            "-" if row.met is None else "yes" if row.met else "no",
        )
    return table


def describe_environment(settings: Settings, load_at_start: float) -> list[str]:
    memory_gb = psutil.virtual_memory().total / 1024**3
    speed = ", ".join(f"{k}={v}" for k, v in POSTGRES_SPEED_SETTINGS.items())
    return [
        f"machine: nproc={os.cpu_count()}, total memory={memory_gb:.1f} GB, 1-min load average "
        f"{load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at end (other work competes)",
        f"spark: master={settings.spark.master}, driver_memory={settings.spark.driver_memory}, "
        f"JVM options {settings.spark.java_options}",
        f"PostgreSQL speed settings (local twin only, not for production): {speed}; "
        "tables UNLOGGED (flightpipe's and the reference's); flightpipe's staged parts are "
        "read by the server itself (COPY FROM a file), the reference streams its file",
        "peak MB: summed RSS of this process, its descendants (Spark JVM, moto) and the "
        "PostgreSQL server processes; shared buffers count once per process",
    ]


def stop_services(services: LocalServices) -> None:
    try:
        services.down()
    except subprocess.CalledProcessError as exc:  # e.g. a stale postmaster.pid
        progress.log(f"stopping PostgreSQL failed: {exc.stderr!r}")


def gate_only() -> list[Row]:
    """Only the quality gate's rows (``--only gate``): a quick check after changing the gate."""
    return gate_rows(sample(BIG))


def everything() -> list[Row]:
    from tests.benchmarks.twin import twin_rows

    # The twin first: once this process has started its own Spark JVM, the JVM outlives the
    # stopped session and its memory would count in the twin's peaks.
    twin = twin_rows()
    return [*run_scenarios(), *twin]


def main() -> None:
    from tests.benchmarks.twin import twin_rows

    parser = argparse.ArgumentParser(description="Benchmark of the local ETL job.")
    parser.add_argument("--only", choices=["etl", "gate", "twin"], help="run only these scenarios")
    only = parser.parse_args().only
    scenarios = {"etl": run_scenarios, "gate": gate_only, "twin": twin_rows}.get(only, everything)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    logging.basicConfig(  # the job's load phases, as progress on stderr
        level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=progress.file
    )
    logging.getLogger("pipeline").setLevel(logging.INFO)
    services = LocalServices(bench_settings())
    stop_services(services)  # whatever an interrupted earlier run left behind
    # Every scenario starts from empty buckets, as from an empty database: the twin would
    # otherwise restore the last bench run's objects, and its loads would find them new.
    shutil.rmtree(aws_state_folder(STATE_DIR), ignore_errors=True)
    try:
        rows = scenarios()
    finally:
        stop_services(services)
    out.print(results_table(rows))
    for line in describe_environment(bench_settings(), load_at_start):
        out.print(line)
    out.print(f"total wall time: {time.perf_counter() - started:.1f} s")
    problems = [row.problem for row in rows if row.problem]
    if problems:
        raise SystemExit("rows missing: " + "; ".join(problems))


if __name__ == "__main__":
    main()
