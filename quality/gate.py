"""The data-quality gate: read a daily file's bytes, validate them, decide its outcome.

The rule for odd input:

- transport quirks are normalized and the file loads: a UTF-8 byte-order mark, CRLF line
  endings, Latin-1 text (re-encoded as UTF-8), quoting, columns in any order or case, extra
  columns (dropped), blank lines (skipped);
- content errors quarantine the file: anything a blocking expectation of the suite rejects,
  every value the warehouse could not hold among them (the contract's INTEGER range and text
  widths in bytes, and text the load cannot carry verbatim);
- files that cannot be read as a daily file at all quarantine with a reason (``FileRule``): a
  name that is not a real ``YYYY-MM-DD.csv`` date, a date in the future, a file over the size
  limit (decided from its size alone, so it is never read), compressed or binary content, an
  empty file, a line over the length limit, a header without flights, a wrong delimiter or
  missing columns, rows with the wrong number of fields, the header repeated inside the file.

A passing file is normalized (contract column order, canonical header, UTF-8, LF) so that the
load reads one shape only.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from pipeline.core.contract import (
    AIRPORTS,
    DAILY_FLIGHTS,
    ColumnType,
    FileContract,
    NotADailyFileError,
    flight_date_of,
    header_names,
)
from pipeline.core.settings import QualitySettings
from quality.expectations import WarehouseLimit
from quality.suites import BLOCKING, NUMERIC_SUFFIX, SAYS, daily_suite, dimension_suite

_DELIMITERS = (";", "\t", "|")
# Empty or whitespace-only lines (after CRLF became LF); quoted values never span lines here.
_BLANK_LINE = re.compile(r"^[ \t]*\n", re.MULTILINE)


class Outcome(StrEnum):
    PASSED = "passed"
    WARNINGS = "warnings"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class Finding:
    """One broken rule: which, how it was observed, and whether it blocks the load."""

    rule: str
    observed: str
    blocking: bool


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one file, with the normalized content when it may load."""

    name: str
    outcome: Outcome
    findings: tuple[Finding, ...] = ()
    normalized: bytes | None = None
    sha256: str = ""
    rows: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    validation: Any = field(default=None, compare=False, repr=False)
    """The GX suite validation result, for the report; None when the file was unreadable."""

    @property
    def reason(self) -> str:
        """The findings in one line, blocking first: for tables, alerts and logs."""
        ordered = sorted(self.findings, key=lambda f: not f.blocking)
        return "; ".join(f"{f.rule}: {f.observed}" for f in ordered)


class FileRule(StrEnum):
    """The rules of a readable file, checked before the suite: a file that breaks one is no
    daily file (or dimension) at all, and is refused with the rule and the reason."""

    DATED_FILE_NAME = "dated file name"
    NOT_IN_THE_FUTURE = "date not in the future"
    FILE_SIZE = "file size"
    NOT_EMPTY = "not empty"
    NOT_COMPRESSED = "not compressed"
    TEXT_FILE = "text file"
    LINE_LENGTH = "line length"
    COMMA_SEPARATED = "comma-separated"
    REQUIRED_COLUMNS = "required columns"
    FIELDS_PER_ROW = "fields per row"
    AT_LEAST_ONE_ROW = "at least one row"
    NO_REPEATED_HEADER = "no repeated header"


class UnreadableFileError(ValueError):
    """The bytes are not a daily file at all; the message says why and what to do."""

    def __init__(self, rule: FileRule, observed: str) -> None:
        super().__init__(f"{rule}: {observed}")
        self.finding = Finding(str(rule), observed, blocking=True)


@dataclass(frozen=True)
class ParsedTable:
    """A CSV file as a DataFrame of text, columns renamed to the contract's names.

    Columns the contract does not know are named ``_extra_<position>``.
    """

    frame: Any
    quirks: tuple[str, ...]
    canonical: bytes | None = None
    """The file's UTF-8 bytes when they already are the canonical file (header, order, LF, no
    quoting)."""
    blank_lines: tuple[int, ...] = ()
    """The line numbers of the blank lines skipped, in order."""

    def line_of(self, row: int) -> int:
        """The line of the file (the header is line 1) that data row ``row`` (from 0) was on."""
        line = row + 2
        for blank in self.blank_lines:
            if blank > line:
                break
            line += 1
        return line


def decode(data: bytes) -> tuple[str, list[str]]:
    """The text of the bytes and the transport quirks normalized on the way."""
    quirks = []
    if not data.strip():
        raise UnreadableFileError(FileRule.NOT_EMPTY, "the file has no content")
    if data[:2] == b"\x1f\x8b":
        raise UnreadableFileError(
            FileRule.NOT_COMPRESSED, "gzip data in a .csv file: upload the plain CSV"
        )
    # Anywhere in the file, not just near its start: pandas' reader ends a value at a NUL, so
    # the gate would check less than the load reads, and no warehouse text can hold one.
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise UnreadableFileError(
            FileRule.TEXT_FILE, f"binary content (a NUL byte on line {line}): upload the CSV text"
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        quirks.append("UTF-8 byte-order mark removed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        quirks.append("Latin-1 text re-encoded as UTF-8")
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
        quirks.append("CRLF line endings normalized to LF")
    return text, quirks


def read_table(data: bytes, contract: FileContract, max_line_bytes: int) -> ParsedTable:
    """Read CSV bytes against a file contract; UnreadableFileError names the rule broken."""
    import pandas as pd

    text, quirks = decode(data)
    _check_line_lengths(data, max_line_bytes)
    body = text.encode("utf-8")
    ends = _line_ends(body)
    blanks = _blank_line_numbers(text) if _may_hold_blank_lines(body, ends) else ()
    if blanks:
        text = _BLANK_LINE.sub("", text)
        body = text.encode("utf-8")
        ends = _line_ends(body)
        quirks.append("blank lines skipped")
    header = header_names(text.split("\n", 1)[0])
    if len(header) == 1 and any(d in header[0] for d in _DELIMITERS):
        raise UnreadableFileError(
            FileRule.COMMA_SEPARATED, f"header {header[0]!r} uses another delimiter"
        )
    columns = []
    for position, title in enumerate(header):
        column = contract.column_for_header(title)
        columns.append(column.name if column else f"_extra_{position}")
    missing = [c.source for c in contract.columns if c.name not in columns]
    if missing:
        raise UnreadableFileError(
            FileRule.REQUIRED_COLUMNS,
            f"missing {missing} in header {header}; expected {list(contract.headers)}",
        )
    if len(set(columns)) != len(columns):
        raise UnreadableFileError(
            FileRule.REQUIRED_COLUMNS, f"a column appears twice in header {header}"
        )
    try:
        # Categorical: the parser makes one Python string per distinct value of a column, not
        # one per row, and the checks after it work on those distinct values.
        frame = pd.read_csv(
            io.BytesIO(body),
            header=None,
            skiprows=1,
            names=columns,
            dtype="category",
            keep_default_na=False,
            engine="c",
        )
    except pd.errors.ParserError as exc:  # a row with more fields than the header
        raise UnreadableFileError(
            FileRule.FIELDS_PER_ROW, str(exc).strip().split(". ")[-1]
        ) from exc
    if frame.empty:
        raise UnreadableFileError(
            FileRule.AT_LEAST_ONE_ROW, "the file has a header and no data rows"
        )
    short = _first_short_row(body, ends, frame, len(header))
    if short is not None:
        raise UnreadableFileError(
            FileRule.FIELDS_PER_ROW, f"row {short} has fewer fields than its header"
        )
    repeated = _first_repeated_header(frame, columns, header)
    if repeated is not None:
        raise UnreadableFileError(
            FileRule.NO_REPEATED_HEADER, f"the header appears again as row {repeated}"
        )
    if any(c.startswith("_extra_") for c in columns):
        quirks.append("extra columns dropped")
    wanted = tuple(c.name for c in contract.columns)
    if tuple(c for c in columns if not c.startswith("_extra_")) != wanted:
        quirks.append("columns reordered")
    canonical = (
        not quirks
        and body.startswith(",".join(contract.headers).encode() + b"\n")
        and body.endswith(b"\n")
        and b'"' not in body
    )
    return ParsedTable(frame, tuple(quirks), body if canonical else None, blanks)


def _line_ends(body: bytes) -> Any:
    """The positions of the line feeds in ``body``, as a numpy array."""
    import numpy as np

    return np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))


def _may_hold_blank_lines(body: bytes, ends: Any) -> bool:
    """Whether any line of ``body`` starts with a line feed, a space or a tab: only such a
    line can be blank, so the costly search for blank lines runs only when one does."""
    import numpy as np

    firsts = np.frombuffer(body, dtype=np.uint8)[np.append(0, ends[:-1] + 1)]
    return bool(np.isin(firsts, list(b"\n \t")).any())


def _check_line_lengths(data: bytes, max_line_bytes: int) -> None:
    """Refuse the first line (its line feed aside) longer than ``max_line_bytes``.

    One vectorized pass over the bytes: the positions of the line feeds give every length.
    """
    import numpy as np

    if len(data) <= max_line_bytes:
        return
    ends = np.append(np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")), len(data))
    lengths = np.diff(ends, prepend=-1) - 1
    over = np.flatnonzero(lengths > max_line_bytes)
    if len(over):
        raise UnreadableFileError(
            FileRule.LINE_LENGTH,
            f"line {over[0] + 1:,} is {lengths[over[0]]:,} bytes, over the limit of "
            f"{max_line_bytes:,} bytes a line (QualitySettings.max_line_bytes)",
        )


def refuse_oversized(name: str, size: int, quality: QualitySettings) -> Verdict | None:
    """The verdict on a file of ``size`` bytes over the size limit, decided before anything
    reads it (the gate holds a file in memory several times over); None within the limit."""
    if size <= quality.max_file_bytes:
        return None
    observed = (
        f"the file is {size:,} bytes, over the limit of {quality.max_file_bytes:,} bytes "
        "(QualitySettings.max_file_bytes)"
    )
    return Verdict(
        name, Outcome.QUARANTINED, (Finding(str(FileRule.FILE_SIZE), observed, blocking=True),)
    )


def _blank_line_numbers(text: str) -> tuple[int, ...]:
    """The numbers of the blank lines (the first line is 1), so findings can name the lines
    of the file as uploaded."""
    numbers, line, position = [], 1, 0
    for match in _BLANK_LINE.finditer(text):
        line += text.count("\n", position, match.start())
        numbers.append(line)
        line, position = line + 1, match.end()
    return tuple(numbers)


def _distinct(column: Any) -> tuple[Any, Any]:
    """A categorical column as (codes, distinct values): string work then runs once per
    distinct value.

    A daily file has a million rows but only a few thousand distinct values per column, so
    strip, compare and parse run on those and are spread back to the rows by code.
    """
    import pandas as pd

    return column.cat.codes.to_numpy(), pd.Series(column.cat.categories, dtype=object)


def _first_repeated_header(frame: Any, columns: Sequence[str], header: Sequence[str]) -> int | None:
    """The row number (the header is row 1) where the header appears again, if it does."""
    import numpy as np

    def matches(name: str, title: str, rows: Any) -> Any:
        codes, distinct = _distinct(rows[name])
        return (distinct.str.strip().str.lower() == title.strip().lower()).to_numpy()[codes]

    # The first column narrows the search to a handful of rows; the others confirm them.
    candidates = frame[matches(columns[0], header[0], frame)]
    for name, title in zip(columns[1:], header[1:], strict=True):
        candidates = candidates[matches(name, title, candidates)]
    if candidates.empty:
        return None
    return int(np.searchsorted(frame.index, candidates.index[0])) + 2


def _first_short_row(body: bytes, ends: Any, frame: Any, width: int) -> int | None:
    """The first row (the header is row 1) with fewer fields than the header, if any.

    pandas pads such a row with empty values, which would read as a cancelled flight. Only
    rows whose last value is empty can be short, so only their lines are counted: commas for
    a line without quotes, the csv module for the rest. Blank lines are gone by now, so row
    ``i`` is line ``i + 1`` (from 0), which ends at the line feed ``ends[i + 1]``.
    """
    import numpy as np

    candidates = np.flatnonzero((frame.iloc[:, -1] == "").to_numpy())
    for index in candidates:
        start, end = int(ends[index]) + 1, (int(ends[index + 1]) if index + 1 < len(ends) else None)
        line = body[start:end]
        quoted = b'"' in line
        fields = len(next(csv.reader([line.decode()]))) if quoted else line.count(b",") + 1
        if fields < width:
            return int(index) + 2
    return None


def check_name(name: str, today: dt.date) -> dt.date:
    """The date a daily file name carries; UnreadableFileError if none, or in the future.

    ``name`` is the object key below the upload prefix: daily files sit directly under it.
    """
    if "/" in name:
        raise UnreadableFileError(
            FileRule.DATED_FILE_NAME, f"{name!r}: daily files go directly under the upload prefix"
        )
    try:
        day = flight_date_of(name)
    except NotADailyFileError as exc:
        raise UnreadableFileError(FileRule.DATED_FILE_NAME, str(exc)) from exc
    if day > today:
        raise UnreadableFileError(FileRule.NOT_IN_THE_FUTURE, f"{day} is after today ({today})")
    return day


def _frame(parsed: ParsedTable, contract: FileContract) -> tuple[Any, bool]:
    """The contract's columns as stripped text (empty as missing), plus numeric twins; and
    whether stripping changed any value.

    Text columns are categorical: GX copies the batch for each expectation, and copying codes
    is far cheaper than copying a million Python strings. The ``<column>_number`` twins (float,
    NaN when not a number) serve the range and set checks.
    """
    import pandas as pd

    columns: dict[str, Any] = {}
    stripped_any = False
    for column in contract.columns:
        codes, distinct = _distinct(parsed.frame[column.name])
        stripped = distinct.str.strip()
        stripped_any = stripped_any or bool((stripped != distinct).any())
        stripped = stripped.replace("", None)
        text_codes, categories = pd.factorize(stripped)  # missing values get code -1
        columns[column.name] = pd.Categorical.from_codes(text_codes[codes], categories)
        if column.type is ColumnType.INTEGER:
            numbers = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=float)
            columns[column.name + NUMERIC_SUFFIX] = numbers[codes]
    # Built at once, so its numbers are one block: GX copies the frame often, and pandas would
    # merge column-by-column blocks on each copy.
    frame = pd.DataFrame(columns, index=parsed.frame.index)
    return frame, stripped_any


@cache
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # The gate runs unattended; GX's progress bars would only litter its logs.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("gate")
    source.add_dataframe_asset("upload").add_batch_definition_whole_dataframe("whole")
    return context


@dataclass(frozen=True)
class _Stored:
    """A suite the gate's context holds, and its validation definition."""

    suite: Any
    """The suite as built, before GX gave its expectations ids: what a new one is compared with."""
    definition: Any


_stored: dict[str, _Stored] = {}
_storing = threading.Lock()


def _definition(build: Callable[[], Any]) -> Any:
    """The validation definition, in the gate's context, of the suite ``build`` makes.

    GX's add_or_update compares every expectation of the suite with every stored one and then
    stores it again, with its definition: CPU that every validation would spend for nothing
    while the suite is unchanged. So a suite is stored only when it differs from the one
    stored last under its name (a new dimension, other settings); the validations in between
    reuse its definition.
    """
    import great_expectations as gx

    suite = build()
    with _storing:
        stored = _stored.get(suite.name)
        if stored is None or stored.suite != suite:
            context = _context()
            batch = context.data_sources.get("gate").get_asset("upload")
            definition = context.validation_definitions.add_or_update(
                gx.ValidationDefinition(
                    name=f"{suite.name}-check",
                    data=batch.get_batch_definition("whole"),
                    suite=context.suites.add_or_update(build()),  # which gives it ids
                )
            )
            stored = _stored[suite.name] = _Stored(suite, definition)
        return stored.definition


def _validate(
    suite: Callable[[], Any], frame: Any, parsed: ParsedTable, contract: FileContract
) -> tuple[list[Finding], Any]:
    """Run the suite ``suite`` builds on the frame: the broken rules, and GX's result for the
    report."""
    definition = _definition(suite)
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
    findings = []
    for check in result.results:
        if check.success:
            continue
        config = check.expectation_config
        detail = check.result or {}
        expectation = config.to_domain_obj()
        # In plain words, the column named as the file names it: the on-call alert quotes it.
        column = config.kwargs.get("column")
        rule = "the file" if column is None else _header_of(contract, column)
        if isinstance(expectation, WarehouseLimit):
            value = detail["partial_unexpected_list"][0]
            observed = f"{expectation.refusal(value)} ({_where(detail, parsed)})"
        else:
            observed = _observed(
                str(config.meta[SAYS]), config.kwargs.get("mostly"), detail, parsed
            )
        findings.append(Finding(rule, observed, blocking=config.severity == BLOCKING))
    return findings, result


def _header_of(contract: FileContract, column: str) -> str:
    """The file's header name of a suite's column (the numeric twin's too)."""
    name = column.removesuffix(NUMERIC_SUFFIX)
    return str(next(c.source for c in contract.columns if c.name == name))


def _where(detail: dict[str, Any], parsed: ParsedTable) -> str:
    """The line of the first value that broke an expectation, and how many more did."""
    where = f"line {parsed.line_of(int(detail['partial_unexpected_index_list'][0]))}"
    others = int(detail["unexpected_count"]) - 1
    if others:
        where += f", and {others:,} more row{'s' if others > 1 else ''}"
    return where


def _observed(says: str, mostly: float | None, detail: dict[str, Any], parsed: ParsedTable) -> str:
    """What broke an expectation, in plain words: ``'xyz' is not two capital letters or digits
    (line 3)``; with a share allowed to break it (``mostly``), the share that did."""
    if "unexpected_count" not in detail:  # a table-level expectation
        return f"{says} (observed {detail.get('observed_value')})"
    value = _plain(detail["partial_unexpected_list"][0])
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    shown = "a value" if missing else repr(value)
    words = f"{shown} {says} ({_where(detail, parsed)})"
    if mostly is not None:
        share = float(detail.get("unexpected_percent") or 0)
        words += f": {share:.1f} % of the rows, more than the {100 * (1 - mostly):g} % allowed"
    return words


def _plain(value: Any) -> Any:
    """A value as a person wrote it: `5000`, not np.int64(5000) or the numeric twin's 5000.0."""
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _verdict(
    name: str,
    data: bytes,
    contract: FileContract,
    suite: Callable[[], Any],
    *,
    quality: QualitySettings,
    day_check: Callable[[], object] = lambda: None,
) -> Verdict:
    oversized = refuse_oversized(name, len(data), quality)
    if oversized is not None:
        return oversized
    digest = hashlib.sha256(data).hexdigest()
    try:
        day_check()
        parsed = read_table(data, contract, quality.max_line_bytes)
    except UnreadableFileError as exc:
        return Verdict(name, Outcome.QUARANTINED, (exc.finding,), sha256=digest)
    frame, stripped = _frame(parsed, contract)
    findings, validation = _validate(suite, frame, parsed, contract)
    if any(f.blocking for f in findings):
        outcome = Outcome.QUARANTINED
    elif findings:
        outcome = Outcome.WARNINGS
    else:
        outcome = Outcome.PASSED
    return Verdict(
        name,
        outcome,
        tuple(findings),
        None if outcome is Outcome.QUARANTINED else _normalized(parsed, frame, stripped, contract),
        digest,
        rows=len(parsed.frame),
        details={"quirks": list(parsed.quirks)},
        validation=validation,
    )


def check_daily_file(
    name: str,
    data: bytes,
    known_airports: Iterable[int],
    quality: QualitySettings,
    today: dt.date,
) -> Verdict:
    """Validate one daily file; never raises for bad content, whatever the bytes are."""
    return _verdict(
        name,
        data,
        DAILY_FLIGHTS,
        lambda: daily_suite(quality, known_airports),
        quality=quality,
        day_check=lambda: check_name(name, today),
    )


def check_dimension(name: str, data: bytes, quality: QualitySettings) -> Verdict:
    """Validate a new airport dimension; a quarantined one must not replace the current one."""
    return _verdict(name, data, AIRPORTS, dimension_suite, quality=quality)


def _normalized(parsed: ParsedTable, frame: Any, stripped: bool, contract: FileContract) -> bytes:
    """The canonical file; a file that already is one (the usual case) is its own copy."""
    if parsed.canonical is not None and not stripped:
        return parsed.canonical
    return normalize(frame, contract)


def normalize(frame: Any, contract: FileContract) -> bytes:
    """The canonical file: contract header and column order, UTF-8, LF line endings."""
    text = frame[[c.name for c in contract.columns]].to_csv(
        index=False, header=list(contract.headers), lineterminator="\n"
    )
    return str(text).encode("utf-8")
