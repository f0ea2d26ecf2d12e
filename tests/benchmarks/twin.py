"""Upload to queryable rows on the event-driven local twin (``make bench``, ``--only twin``).

Each row times what a user waits for: from the upload (the S3 PUT) until the file's run has
SUCCEEDED, which is when its rows are committed in the warehouse (checked after each row).

- cold: the first daily file after ``local up`` started a fresh twin (its Spark starting in
  the background), the dimension uploaded and run just before;
- warm: one more daily file on the running twin (target: under 10 s);
- burst: 30 daily files uploaded at once, until the last run has finished.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.uploads import Upload, run_name
from pipeline.local.runs import Run
from pipeline.local.services import LocalServices
from pipeline.local.twin import LocalTwin
from pipeline.sample import SampleSpec
from tests.benchmarks.etl import (
    PeakMemory,
    Row,
    Sample,
    bench_settings,
    expect_rows,
    progress,
    sample,
    scenario_twin,
    stop_services,
)

WARM_TARGET_SECONDS = 10.0
BURST = 30
DAYS = SampleSpec(days=BURST + 2, flights_per_day=3000, seed=5)
RUN_TIMEOUT_SECONDS = 900


def _follow(twin: LocalTwin, uploads: Sequence[Upload]) -> list[Run]:
    names = [run_name(u.bucket, u.key, u.version) for u in uploads]
    runs = twin.runs.follow(names, RUN_TIMEOUT_SECONDS, 0.1)
    failed = [r for r in runs if r.status != "SUCCEEDED"]
    if failed:
        raise AssertionError(f"runs did not succeed: {failed}")
    return runs


def _upload_until_queryable(twin: LocalTwin, files: Sequence[Path]) -> float:
    start = time.perf_counter()
    _follow(twin, [twin.upload_daily(path) for path in files])
    return time.perf_counter() - start


def twin_rows() -> list[Row]:
    days: Sample = sample(DAYS)
    cold_day, warm_day, *burst = days.daily
    # A fresh twin: the endpoint process (and its Spark, in the background) starts here.
    stop_services(LocalServices(bench_settings("twin", warm_up=True)))
    twin = scenario_twin("twin", warm_up=True)
    progress.log("scenario: local twin, upload to queryable (cold, warm, burst)")
    _ = twin.resources
    _follow(twin, [twin.upload_dimension(days.dimension)])
    url = twin.services.warehouse_url
    rows: list[Row] = []
    loaded = 0
    with PeakMemory(twin.services) as memory:
        for label, files in (
            ("twin: 1 file, upload to queryable, cold", [cold_day]),
            ("twin: 1 file, upload to queryable, warm", [warm_day]),
            (f"twin: {BURST} files at once, upload to all queryable", burst),
        ):
            seconds = _upload_until_queryable(twin, files)
            loaded += days.rows_of(files)
            expect_rows(url, "flight_processed", loaded)
            warm = "warm" in label
            rows.append(
                Row(
                    label,
                    days.rows_of(files),
                    seconds,
                    peak_mb=memory.peak_mb,
                    target=f"< {WARM_TARGET_SECONDS:.0f} s" if warm else "",
                    met=seconds < WARM_TARGET_SECONDS if warm else None,
                )
            )
    stop_services(twin.services)
    return rows
