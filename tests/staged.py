"""Staged lines read back the way COPY reads them, independently of the Spark renderer."""

from __future__ import annotations

import re

from pipeline.warehouse import LOAD_COLUMNS, STAGED_DELIMITER, STAGED_ESCAPE, STAGED_NULL

_TOKEN = re.compile(
    f"{re.escape(STAGED_ESCAPE)}(.)|{STAGED_DELIMITER}|[^{re.escape(STAGED_ESCAPE)}{STAGED_DELIMITER}]+",
    re.DOTALL,
)


def staged_fields(line: str) -> dict[str, str | None]:
    """A staged line's values by warehouse column: split at unescaped delimiters, escapes
    removed, ``\\N`` as None."""
    values: list[str | None] = []
    raw = value = ""
    for token in _TOKEN.finditer(line + STAGED_DELIMITER):
        if token.group() == STAGED_DELIMITER:
            values.append(None if raw == STAGED_NULL else value)
            raw = value = ""
        else:
            raw += token.group()
            value += token.group(1) if token.group(1) is not None else token.group()
    assert len(values) == len(LOAD_COLUMNS), line
    return dict(zip(LOAD_COLUMNS, values, strict=True))
