"""The quality report: a GX Data Docs page per validation and an index of them all, seen offline."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from pipeline.core.settings import QualitySettings
from quality.gate import Outcome, Verdict, check_daily_file
from quality.reports import QualityReports, published, remove_published, write_static_site

TODAY = dt.date(2026, 11, 26)
KNOWN = [10397, 12892]
HEADER = "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay"
GOOD = f"{HEADER}\nDL,10397,12892,5,-3\n".encode()
BAD = f"{HEADER}\nDL,10397,12892,late,1\nxyz,10397,12892,1,1\n".encode()


def check(name: str, data: bytes) -> Verdict:
    return check_daily_file(name, data, KNOWN, QualitySettings(), TODAY)


def validate(reports: QualityReports, name: str, version: str, data: bytes) -> str:
    return reports.record(f"s3://raw/raw/{name}", version, check(name, data))


def test_latest_validation_per_file_is_listed_with_its_failed_rules(tmp_path: Path) -> None:
    reports = QualityReports(tmp_path / "reports")
    validate(reports, "2024-01-05.csv", "v1", BAD)
    validate(reports, "2024-01-05.csv", "v2", GOOD)
    validate(reports, "2024-01-06.csv", "v1", BAD)
    where = validate(reports, "2024-01-07.csv", "v1", b"")

    latest = {s.file.rsplit("/", 1)[-1]: s for s in reports.latest()}

    assert sorted(latest) == ["2024-01-05.csv", "2024-01-06.csv", "2024-01-07.csv"]
    assert (latest["2024-01-05.csv"].version, latest["2024-01-05.csv"].outcome) == ("v2", "passed")
    assert latest["2024-01-06.csv"].outcome == Outcome.QUARANTINED
    assert "Carrier" in latest["2024-01-06.csv"].failed
    # A file GX never saw has no Data Docs page; the record of its validation is the report.
    assert latest["2024-01-07.csv"].failed == ("not empty",)
    assert re.search(
        r"/summaries/\d{4}-\d{2}/2024-01-07\.csv%40v1/\d{8}T\d{6}\.\d{6}Z\.json$", where
    )


def chromium(url: str, tmp_path: Path, *output: str) -> str:
    """Headless Chromium's output for ``url``, with every request to a network refused.

    No name resolves and every proxied request (loopback's too) goes to a closed port, so
    whatever the page loads from outside the site fails at once; file:// is not proxied. The
    page's scripts get 10 s of virtual time before the output is taken.
    """
    binary = shutil.which("chromium")
    assert binary is not None, "chromium is missing: `make browser` installs it"
    rendered = subprocess.run(
        [
            binary,
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
            f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=10000",
            "--window-size=1280,900",
            *output,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return rendered.stdout


def dump_dom(url: str, tmp_path: Path) -> str:
    """The page's DOM once its scripts ran."""
    return chromium(url, tmp_path, "--dump-dom")


def index_rows(url: str, tmp_path: Path) -> list[tuple[str, str]]:
    """The rows the index's scripts rendered: each one's run name and status icon, sorted."""
    rows = []
    dom = dump_dom(url, tmp_path)
    for row in re.findall(r'<tr\b[^>]*\bdata-index="\d+"[^>]*>(.*?)</tr>', dom, re.DOTALL):
        cells = re.findall(r"<td\b[^>]*>(.*?)</td>", row, re.DOTALL)
        icon = re.search(r"\bge-(success|failed)-icon\b", cells[0])
        rows.append((re.sub(r"<[^>]+>", "", cells[2]).strip(), icon[1] if icon else "none"))
    return sorted(rows)


GREEN, RED = (40, 167, 69), (220, 53, 69)
"""Bootstrap's success and danger colours: GX's status icons."""


def assert_table_drawn(url: str, tmp_path: Path, icons: set[tuple[int, int, int]]) -> None:
    """The page's table region, in a screenshot, is not one colour and shows these icons."""
    shot = tmp_path / "index.png"
    chromium(url, tmp_path, f"--screenshot={shot}")
    # Where GX's layout puts the table's rows in a 1280x900 window: right of the sidebar,
    # below the site's title, the tab and the filters.
    table = Image.open(shot).convert("RGB").crop((275, 330, 1230, 900))
    colours = {rgb for _, rgb in table.getcolors(maxcolors=table.width * table.height) or []}
    assert len(colours) > 1, "the table's region is blank"
    for icon in icons:
        assert any(max(abs(a - b) for a, b in zip(c, icon, strict=True)) < 30 for c in colours)


def test_a_validation_page_renders_offline_with_the_file_and_its_failed_expectations(
    tmp_path: Path,
) -> None:
    reports = QualityReports(tmp_path / "reports")
    page = validate(reports, "2024-01-06.csv", "v7", BAD)
    reports.build()

    failed = dump_dom(page, tmp_path)

    assert "2024-01-06.csv@v7" in failed
    assert "Failed" in failed
    assert "values must match this regular expression: <span" in failed
    assert "^[A-Z0-9]{2}$" in failed
    for unexpected in ("xyz", "late"):
        assert f">{unexpected}<" in failed


def test_the_index_renders_offline_one_row_per_validated_file_version_with_its_status(
    tmp_path: Path,
) -> None:
    reports = QualityReports(tmp_path / "reports")
    validate(reports, "2024-01-05.csv", "v1", GOOD)
    page = validate(reports, "2024-01-06.csv", "v7", BAD)
    validate(reports, "2024-01-07.csv", "v1", b"")  # unreadable: listed, with its record
    reports.build()

    assert index_rows(reports.index.as_uri(), tmp_path) == [
        ("2024-01-05.csv@v1", "success"),
        ("2024-01-06.csv@v7", "failed"),
        ("2024-01-07.csv@v1", "failed"),
    ]
    # Its links lead to each version's page (or record), relative to the index.
    index = reports.index.read_text()
    assert 'href="' + page.split("local_site/", 1)[1] in index
    month = f"{dt.datetime.now(dt.UTC):%Y-%m}"
    assert f'"../../../summaries/{month}/2024-01-07.csv%40v1/' in index
    assert_table_drawn(reports.index.as_uri(), tmp_path, icons={GREEN, RED})


# Where a page or stylesheet names a file that the browser loads with it (not a hyperlink).
_LOADED = re.compile(
    r"""<(?:script|link|img|source|iframe|embed|object)\b[^>]*?\s(?:src|href|data)=["']([^"']+)"""
    r"""|url\(\s*["']?([^"')]+)|@import\s+["']([^"']+)""",
    re.IGNORECASE,
)


def external(url: str) -> bool:
    return re.match(r"(?i)([a-z][a-z0-9+.-]*:|//)", url) is not None


def target(path: Path, url: str) -> Path:
    """The site file a relative reference from ``path`` names."""
    return (path.parent / urllib.parse.unquote(re.split(r"[?#]", url)[0])).resolve()


def loaded_references(site: Path) -> Iterator[tuple[Path, str]]:
    """What the browser loads with the site's pages: each file and reference it names.

    The pages' own references, then those of each stylesheet they load, and so on.
    """
    pending, seen = sorted(site.rglob("*.html")), set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for match in _LOADED.finditer(path.read_text(encoding="utf-8")):
            url = next(group for group in match.groups() if group)
            yield path, url
            if not external(url) and target(path, url).suffix == ".css":
                pending.append(target(path, url))


def test_no_page_of_the_site_loads_anything_from_outside_it(tmp_path: Path) -> None:
    reports = QualityReports(tmp_path / "reports")
    validate(reports, "2024-01-05.csv", "v1", GOOD)
    validate(reports, "2024-01-06.csv", "v7", BAD)
    reports.build()

    references = list(loaded_references(reports.site))

    assert [
        (p, url) for p, url in references if external(url) and not url.startswith("data:")
    ] == []
    missing = [
        (p, url) for p, url in references if not external(url) and not target(p, url).is_file()
    ]
    assert missing == []
    # The stylesheets' own references were followed: font-awesome's fonts are there.
    assert any(url == "../webfonts/fa-solid-900.woff2" for _, url in references)


def at_once(count: int, work: Callable[[int, threading.Barrier], None]) -> None:
    """Run ``work(i, barrier)`` on ``count`` threads at once; re-raise the first failure."""
    barrier = threading.Barrier(count, timeout=120)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i, barrier)
        except BaseException as exc:
            barrier.abort()
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


RUNS = 5
EXPECTED = sorted((f"2024-01-0{i + 1}.csv@v{i}", "success") for i in range(RUNS))


def test_validations_recorded_at_once_all_appear_in_the_index(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    verdicts = [check(f"2024-01-0{i + 1}.csv", GOOD) for i in range(RUNS)]

    def record(i: int, barrier: threading.Barrier) -> None:
        reports = QualityReports(root)  # as validations in processes of their own would
        barrier.wait()
        reports.record(f"s3://raw/raw/2024-01-0{i + 1}.csv", f"v{i}", verdicts[i])

    at_once(RUNS, record)
    # The one writer, as the twin's validation worker is at the end of a burst.
    QualityReports(root).build()

    assert index_rows(QualityReports(root).index.as_uri(), tmp_path) == EXPECTED


@pytest.fixture
def reports_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="reports")
        # moto 5.2.5 closes a replaced object's content while a PUT of the same key from
        # another thread may still read it, in unversioned buckets only: the index is put by
        # each validation at once here.
        s3.put_bucket_versioning(Bucket="reports", VersioningConfiguration={"Status": "Enabled"})
        yield s3, "reports"


def serve(s3: Any, bucket: str, prefix: str, folder: Path) -> Path:
    """Everything the bucket holds under ``prefix``, as a folder: the site as served."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for item in (i for page in pages for i in page.get("Contents", [])):
        target = folder / item["Key"].removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(target))
    return folder / "uncommitted" / "data_docs" / "local_site" / "index.html"


def test_validations_published_at_once_all_appear_in_the_site_served_from_the_bucket(
    reports_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = reports_bucket
    verdicts = [check(f"2024-01-0{i + 1}.csv", GOOD) for i in range(RUNS)]

    def validation(i: int, barrier: threading.Barrier) -> None:
        with (
            tempfile.TemporaryDirectory(dir=tmp_path) as workspace,
            published(s3, bucket, "quality/", Path(workspace)) as reports,
        ):
            barrier.wait()
            reports.record(f"s3://raw/raw/2024-01-0{i + 1}.csv", f"v{i}", verdicts[i])

    deployed = tmp_path / "deployed"
    write_static_site(deployed)  # as the environment's deployment puts it in the bucket
    for path in (p for p in deployed.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, "quality/" + path.relative_to(deployed).as_posix())
    at_once(RUNS, validation)

    index = serve(s3, bucket, "quality/", tmp_path / "served")
    assert index_rows(index.as_uri(), tmp_path) == EXPECTED
    assert_table_drawn(index.as_uri(), tmp_path, icons={GREEN})


def test_a_published_validation_uploads_its_page_its_record_and_the_index_only(
    reports_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = reports_bucket
    site = "quality/uncommitted/data_docs/local_site/"
    written: list[str] = []
    s3.meta.events.register(
        "provide-client-params.s3.PutObject", lambda params, **_: written.append(params["Key"])
    )
    fetched: list[str] = []
    s3.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: fetched.append(params["Key"])
    )
    # A record of an earlier month: never read again, but its month is linked.
    earlier = "quality/summaries/2025-01/2025-01-01.csv@v1/20250101T000000.000000Z.json"
    s3.put_object(Bucket=bucket, Key=earlier, Body=b"{}")

    def validation(name: str) -> list[str]:
        written.clear()
        with (
            tempfile.TemporaryDirectory(dir=tmp_path) as workspace,
            published(s3, bucket, "quality/", Path(workspace)) as reports,
        ):
            validate(reports, name, "v1", GOOD)
        return sorted(key.removeprefix(site) for key in written if key.startswith(site))

    month = f"{dt.datetime.now(dt.UTC):%Y-%m}"
    first = validation("2024-01-05.csv")
    second = validation("2024-01-06.csv")

    for pages, name in ((first, "2024-01-05.csv"), (second, "2024-01-06.csv")):
        assert pages[:2] == ["index.html", f"months/{month}.html"]
        assert [p.split("/")[2] for p in pages[2:]] == [f"{name}@v1"]
        assert not [p for p in pages if p.startswith("static/")]
    # The second run read the first one's record, nothing older and no page.
    assert earlier not in fetched
    assert all("/summaries/" in key for key in fetched)
    index = s3.get_object(Bucket=bucket, Key=site + "index.html")["Body"].read().decode()
    assert 'href="months/2025-01.html"' in index


def test_the_static_site_deployed_with_the_environment_is_what_the_pages_load(
    tmp_path: Path,
) -> None:
    write_static_site(tmp_path / "deployed")
    reports = QualityReports(tmp_path / "run")
    validate(reports, "2024-01-05.csv", "v1", GOOD)
    reports.build()

    def files(root: Path) -> set[str]:
        static = QualityReports(root).site / "static"
        return {p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file()}

    assert files(tmp_path / "deployed") == files(tmp_path / "run")


def test_removing_a_file_version_removes_its_records_pages_and_results_and_reindexes(
    tmp_path: Path,
) -> None:
    reports = QualityReports(tmp_path / "reports")
    validate(reports, "1987-09-30.csv", "v1", GOOD)
    validate(reports, "1987-09-30.csv", "v1", BAD)  # validated again: two records, two pages
    validate(reports, "1987-09-30.csv", "v2", b"")  # another version: an unreadable file
    validate(reports, "2024-01-05.csv", "v1", GOOD)
    reports.build()
    kept = sorted(p for p in reports.root.rglob("*") if "2024-01-05" in p.as_posix())

    removed = reports.remove("s3://raw/raw/1987-09-30.csv", ["v1"])

    assert len(removed) == 2 * 3  # each validation: its record, its page, its result
    left = [p.relative_to(reports.root).as_posix() for p in reports.root.rglob("*1987-09-30*")]
    assert left == [f"summaries/{dt.datetime.now(dt.UTC):%Y-%m}/1987-09-30.csv@v2"]
    index = reports.index.read_text()
    assert "1987-09-30.csv@v1" not in index
    assert "1987-09-30.csv@v2" in index
    assert "2024-01-05.csv@v1" in index
    assert sorted(p for p in reports.root.rglob("*") if "2024-01-05" in p.as_posix()) == kept
    assert reports.remove("s3://raw/raw/1987-09-30.csv", ["v1"]) == []


def publish(s3: Any, bucket: str, tmp_path: Path, *names: str) -> None:
    """Validate version v1 of each file, each as a job publishing to the bucket does."""
    for name in names:
        with (
            tempfile.TemporaryDirectory(dir=tmp_path) as workspace,
            published(s3, bucket, "quality/", Path(workspace)) as reports,
        ):
            validate(reports, name, "v1", GOOD)


def test_removing_a_published_file_version_deletes_its_keys_and_reindexes_the_bucket(
    reports_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = reports_bucket
    publish(s3, bucket, tmp_path, "1987-09-30.csv", "2024-01-05.csv")

    def keys() -> list[str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="quality/").get("Contents", [])
        return sorted(item["Key"] for item in listed)

    before = keys()
    with tempfile.TemporaryDirectory(dir=tmp_path) as workspace:
        removed = remove_published(
            s3,
            bucket,
            "quality/",
            Path(workspace),
            uri="s3://raw/raw/1987-09-30.csv",
            versions=["v1"],
        )

    assert sorted(removed) == sorted(k for k in before if "1987-09-30" in k)
    assert len(removed) == 3
    assert keys() == sorted(k for k in before if "1987-09-30" not in k)
    site = "quality/uncommitted/data_docs/local_site/"
    index = s3.get_object(Bucket=bucket, Key=site + "index.html")["Body"].read().decode()
    assert "1987-09-30" not in index
    assert "2024-01-05.csv@v1" in index


def test_a_record_removed_while_an_index_is_built_is_left_out_and_fails_nothing(
    reports_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = reports_bucket
    publish(s3, bucket, tmp_path, "1987-09-30.csv", "2024-01-05.csv")
    # A smoke test removes its record between the next validation's listing and its fetch.
    removing: list[str] = []

    def remove_first(params: dict[str, Any], **_: Any) -> None:
        if "1987-09-30" in params["Key"] and not removing:
            removing.append(params["Key"])
            with tempfile.TemporaryDirectory(dir=tmp_path) as workspace:
                remove_published(
                    boto3.client("s3"),
                    bucket,
                    "quality/",
                    Path(workspace),
                    uri="s3://raw/raw/1987-09-30.csv",
                    versions=["v1"],
                )

    s3.meta.events.register("provide-client-params.s3.HeadObject", remove_first)
    with (
        tempfile.TemporaryDirectory(dir=tmp_path) as workspace,
        published(s3, bucket, "quality/", Path(workspace)) as reports,
    ):
        validate(reports, "2024-01-06.csv", "v1", GOOD)

    assert removing  # the removal did run inside the index's build
    site = "quality/uncommitted/data_docs/local_site/"
    index = s3.get_object(Bucket=bucket, Key=site + "index.html")["Body"].read().decode()
    assert "1987-09-30" not in index
    assert "2024-01-05.csv@v1" in index
    assert "2024-01-06.csv@v1" in index
