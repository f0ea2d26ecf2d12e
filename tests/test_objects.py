"""The object cache Spark reads from, its line counts (as Spark's line reader splits), and the
row counts they prove."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.warehouse import SourceFile
from pipeline.local.objects import LineCounter, ObjectCache, ObjectVersion
from pipeline.local.postgres import rows_proven
from pipeline.local.twin import LocalTwin
from pipeline.settings import Settings
from tests.conftest import get_object_calls

SAMPLES = [
    b"",
    b"a",
    b"header\nrow\n",
    b"header\nrow",  # a last line without an end
    b"header\r\nrow\r\nrow\r\n",
    b"header\rrow\rrow",  # lone CR line ends
    b"header\n\n\r\n\rrow\n",  # blank lines count as lines
    b'header\n"quoted\nfield",1\r\n',
    b"\r\n\r\n",
    b"\r\r\n\n\r",
]


@pytest.mark.parametrize("data", SAMPLES)
def test_lines_match_splitlines_however_the_stream_is_chunked(data: bytes) -> None:
    # bytes.splitlines splits at exactly LF, CRLF and a lone CR, as Spark's line reader does.
    expected = len(data.splitlines())
    for size in range(1, len(data) + 2):
        counter = LineCounter()
        for start in range(0, len(data), size):
            counter.update(data[start : start + size])
        assert counter.lines == expected, (data, size)


@pytest.fixture
def s3(settings: Settings) -> Any:
    twin = LocalTwin(settings)
    twin.start()
    return twin.s3


def uploaded(s3: Any, bucket: str, key: str, body: bytes) -> ObjectVersion:
    response = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return ObjectVersion(bucket, key, response["VersionId"], len(body))


def test_a_version_is_downloaded_once_then_read_from_the_cache(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    body = b"Carrier,OriginAirportID\r\nDL,10397\r\nAA,12892"
    version = uploaded(s3, settings.raw_bucket, "validated/2024-01-01.csv", body)
    cache = ObjectCache(tmp_path)
    calls = get_object_calls(s3)

    first = cache.get(s3, version)
    second = cache.get(s3, version)

    assert calls == ["validated/2024-01-01.csv"]
    assert first == second
    assert first.path.read_bytes() == body
    assert (first.sha256, first.lines) == (hashlib.sha256(body).hexdigest(), 3)
    assert first.header == ("Carrier", "OriginAirportID")

    first.path.write_bytes(body[:10])  # a damaged copy is fetched again
    assert cache.get(s3, version).path.read_bytes() == body
    assert len(calls) == 2


def test_a_copy_written_through_is_used_without_a_download_and_old_versions_go(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    key = "validated/batch [1] {b}/2024-01-02.csv"  # glob characters Spark would expand
    old = uploaded(s3, settings.raw_bucket, key, b"a\nold\n")
    new = uploaded(s3, settings.raw_bucket, key, b"a\nnew\nrows\n")
    cache = ObjectCache(tmp_path)
    cache.get(s3, old)
    cache.put(new, b"a\nnew\nrows\n", {})
    calls = get_object_calls(s3)

    cached = cache.get(s3, new)

    assert calls == []
    assert (cached.path.read_bytes(), cached.lines) == (b"a\nnew\nrows\n", 3)
    assert cache.path(old) != cache.path(new)
    assert not set("[]{}*? ") & set(str(cache.path(new)))
    assert ObjectCache.named(str(cache.path(new))).endswith(f"{key} (version {new.version})")
    cache.keep_only([new])
    assert not cache.path(old).exists()
    assert cache.path(new).exists()
    assert sorted(p.name for p in cache.path(new).parent.iterdir()) == [
        cache.path(new).name,
        cache.path(new).name + ".json",
    ]


def counted(key: str) -> SourceFile:
    day = dt.date.fromisoformat(key.removeprefix("validated/").removesuffix(".csv"))
    return SourceFile(
        key=key, version="v1", sha256="0" * 64, flight_date=day, uri=f"s3://raw/{key}"
    )


def test_line_counts_prove_each_files_rows_only_when_they_add_up_to_the_rows_copied() -> None:
    files = [counted("validated/2024-03-01.csv"), counted("validated/2024-03-03.csv")]
    bounds = {"validated/2024-03-01.csv": 120, "validated/2024-03-03.csv": 80}
    assert rows_proven(files, bounds, 200)
    # Fewer rows than lines: some record spanned lines or some line was blank, in either file.
    assert not rows_proven(files, bounds, 199)
    assert not rows_proven(files, bounds, 201)
    uncounted = {"validated/2024-03-01.csv": 120}
    assert not rows_proven(files, uncounted, 120)
