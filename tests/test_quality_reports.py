"""The quality report: GX Data Docs pages per validated file version, seen through a browser."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import urllib.parse
from pathlib import Path

from pipeline.settings import QualitySettings
from quality.gate import Outcome, check_daily_file
from quality.reports import QualityReports

TODAY = dt.date(2026, 11, 26)
KNOWN = [10397, 12892]
HEADER = "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay"
GOOD = f"{HEADER}\nDL,10397,12892,5,-3\n".encode()
BAD = f"{HEADER}\nDL,10397,12892,late,1\nxyz,10397,12892,1,1\n".encode()


def validate(reports: QualityReports, name: str, version: str, data: bytes) -> str:
    verdict = check_daily_file(name, data, KNOWN, QualitySettings(), TODAY)
    return reports.record(f"s3://raw/raw/{name}", version, verdict)


def dump_dom(url: str, tmp_path: Path) -> str:
    """The page as headless Chromium renders it (offline: CDN scripts fail fast, not hang)."""
    chromium = shutil.which("chromium")
    assert chromium is not None, "chromium is missing: `make browser` installs it"
    rendered = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return rendered.stdout


def test_latest_validation_per_file_is_listed_with_its_failed_rules(tmp_path: Path) -> None:
    reports = QualityReports(tmp_path / "reports")
    validate(reports, "2024-01-05.csv", "v1", BAD)
    validate(reports, "2024-01-05.csv", "v2", GOOD)
    validate(reports, "2024-01-06.csv", "v1", BAD)
    unreadable = check_daily_file("2024-01-07.csv", b"", KNOWN, QualitySettings(), TODAY)
    where = reports.record("s3://raw/raw/2024-01-07.csv", "v1", unreadable)

    latest = {s.file.rsplit("/", 1)[-1]: s for s in reports.latest()}

    assert sorted(latest) == ["2024-01-05.csv", "2024-01-06.csv", "2024-01-07.csv"]
    assert (latest["2024-01-05.csv"].version, latest["2024-01-05.csv"].outcome) == ("v2", "passed")
    assert latest["2024-01-06.csv"].outcome == Outcome.QUARANTINED
    assert any("'carrier'" in rule for rule in latest["2024-01-06.csv"].failed)
    # A file GX never saw has no Data Docs page; its summary document is the report.
    assert latest["2024-01-07.csv"].failed == ("not empty",)
    assert where.endswith("summaries/2024-01-07.csv%40v1.json")


def test_the_report_renders_in_a_browser_with_the_file_and_its_failed_expectations(
    tmp_path: Path,
) -> None:
    reports = QualityReports(tmp_path / "reports")
    validate(reports, "2024-01-05.csv", "v1", GOOD)
    page = validate(reports, "2024-01-06.csv", "v7", BAD)
    reports.build()

    failed = dump_dom(page, tmp_path)

    assert "2024-01-06.csv@v7" in failed
    assert "Failed" in failed
    assert "values must match this regular expression: <span" in failed
    assert "^[A-Z0-9]{2}$" in failed
    for unexpected in ("xyz", "late"):
        assert f">{unexpected}<" in failed

    index = dump_dom(reports.index.as_uri(), tmp_path)

    assert "<title>Data Docs created by Great Expectations</title>" in index
    # The index lists every run; its links lead to each file version's page.
    for run in ("2024-01-05.csv@v1", "2024-01-06.csv@v7"):
        assert urllib.parse.quote(run) in index
    assert urllib.parse.unquote(page).split("local_site/", 1)[1].replace("@", "%40") in index
