"""Counting a downloaded object's lines the way Spark's CSV line reader splits them."""

from __future__ import annotations

import pytest

from pipeline.local.objects import LineCounter

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
