"""What a load refused, and in which file: the diagnosis behind a load's rejection of a file.

When Spark cannot read a row or the warehouse refuses one, the error seldom says which file,
line and value it was: Spark's FAILFAST error shows the row as parsed (the bad value already
``null``), Redshift's COPY points at ``sys_load_error_detail``, PostgreSQL's names a line of a
staged part. ``first_refusal`` reads the file itself, in plain Python, against the contract's
columns, and names the first value the warehouse cannot hold: that is what on-call can fix.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Final

from pipeline.core.contract import Column, ColumnType, FileContract
from pipeline.core.warehouse import WarehouseRefusedError

_INTEGER: Final = re.compile(r"[+-]?\d+")
_SHOWN_CHARACTERS: Final = 40

# Spark's FAILFAST read of a value that does not fit its column, however it is wrapped.
_SPARK_DATA_ERRORS: Final = ("MALFORMED_RECORD_IN_PARSING", "BadRecordException")


@dataclass(frozen=True)
class Refusal:
    """The first value of a file the warehouse cannot hold."""

    line: int
    """The line of the file it is on (the header is line 1)."""
    column: str
    """The file's header name of the column."""
    value: str
    """As written, shortened when long, control characters shown escaped."""
    problem: str

    @property
    def reason(self) -> str:
        return f"line {self.line}, {self.column}: {self.problem}"


def shown(value: str) -> str:
    """A value as a message shows it: one line, NUL and other control characters escaped,
    at most a few dozen characters."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    if len(escaped) <= _SHOWN_CHARACTERS:
        return escaped
    return f"{escaped[:_SHOWN_CHARACTERS]}... ({len(value)} characters)"


def _problem(column: Column, value: str) -> str | None:
    """Why the warehouse would refuse ``value`` in ``column``, or None when it fits."""
    if value == "":
        return None if column.nullable else "a value is required"
    if column.type is ColumnType.INTEGER:
        if not _INTEGER.fullmatch(value):
            return f"{shown(value)} is not a whole number"
        bounds = column.type.bounds
        if bounds is not None and not bounds[0] <= int(value) <= bounds[1]:
            return f"{shown(value)} is outside {bounds[0]}..{bounds[1]}"
    elif column.type is ColumnType.STRING:
        if "\x00" in value:
            return f"{shown(value)} holds a NUL character, which no text column can hold"
        # The width counts bytes of UTF-8, as Redshift's VARCHAR does (``Column.width``).
        size, width = len(value.encode()), column.width
        if width is not None and size > width:
            return f"{shown(value)} is {size} bytes of UTF-8, more than the {width} allowed"
    return None


def first_refusal(contract: FileContract, data: bytes) -> Refusal | None:
    """The first value of a CSV file (its header names the columns) that the warehouse would
    refuse, by the contract's columns; None when every value fits."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=""))
    header = next(reader, [])
    columns = [(position, contract.column_for_header(name)) for position, name in enumerate(header)]
    wanted = [(position, column) for position, column in columns if column is not None]
    for row in reader:
        if not row:
            continue  # a blank line loads nothing
        if len(row) != len(header):
            return Refusal(
                reader.line_num,
                "(the whole line)",
                shown(",".join(row)),
                f"it has {len(row)} fields where the header has {len(header)}",
            )
        for position, column in wanted:
            problem = _problem(column, row[position])
            if problem is not None:
                return Refusal(reader.line_num, header[position], shown(row[position]), problem)
    return None


def is_data_error(exc: BaseException) -> bool:
    """Whether a failed load failed on the data (a row Spark could not read, one the warehouse
    refused) rather than on the machinery (a lost connection, a busy lock)."""
    return isinstance(exc, WarehouseRefusedError) or any(
        marker in str(exc) for marker in _SPARK_DATA_ERRORS
    )
