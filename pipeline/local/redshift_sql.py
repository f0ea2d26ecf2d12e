"""Redshift's SQL on PostgreSQL: how the twin's Data API runs the statements a Glue job sends.

The statements run on PostgreSQL as written, except what PostgreSQL cannot run. Each of
those is translated here, and only here, with the Redshift page that defines its Redshift side:

- ``COPY <table> FROM 's3://bucket/prefix' IAM_ROLE '...' <format>`` loads every object whose
  key begins with the prefix
  (https://docs.aws.amazon.com/redshift/latest/dg/t_loading-tables-from-s3.html,
  https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-source-s3.html).
  PostgreSQL cannot read S3, so the objects are read here (a ``file://`` location stands for a
  prefix in tests, where local Spark cannot write ``s3://``), each line is split into fields by
  Redshift's rules for the statement's format options, and the rows go to PostgreSQL through
  ``COPY ... FROM STDIN``. The options translated: ``DELIMITER`` (a single character; ``'\\t'``
  is a tab, https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-format.html);
  ``ESCAPE`` (a backslash loads the character after it as part of the value, and ``\\\\N`` is
  NULL as ``\\N`` is while no ``NULL AS`` is given); ``NULL AS``; ``DATEFORMAT 'YYYY-MM-DD'``
  or ``'auto'``, which PostgreSQL's own date input reads alike
  (https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-conversion.html).
  ``IAM_ROLE`` authorizes the read on AWS; the twin has no IAM and ignores it. Any other
  option fails the statement, naming it. A row the table refuses fails the COPY with the
  message Redshift gives, which points at the system tables instead of naming the row
  (https://docs.aws.amazon.com/redshift/latest/dg/system-tables-for-troubleshooting-data-loads.html).
- ``SYSDATE`` is the start of the current transaction, as a TIMESTAMP in the session's time
  zone, UTC by default (https://docs.aws.amazon.com/redshift/latest/dg/r_SYSDATE.html): that
  is PostgreSQL's ``LOCALTIMESTAMP``, and sessions here run in UTC.
- ``SORTKEY (...)`` in a CREATE TABLE orders the table's storage on Redshift
  (https://docs.aws.amazon.com/redshift/latest/dg/r_CREATE_TABLE_NEW.html); PostgreSQL keeps
  no order, so it is dropped, which changes no result.
- ``PASSWORD DISABLE`` in a CREATE USER deletes the user's password, so it signs in only
  with temporary IAM credentials
  (https://docs.aws.amazon.com/redshift/latest/dg/r_CREATE_USER.html): that is PostgreSQL's
  ``PASSWORD NULL``, with which password authentication always fails.

The Data API's named parameters (``:name``, bound from the call's ``Parameters``,
https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-calling.html) are bound here too.
Words inside quoted literals and identifiers are never translated. Comments are not looked
for: the pipeline sends none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import psycopg

_QUOTED: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_SYSDATE: Final = re.compile(r"\bSYSDATE\b", re.IGNORECASE)
_SORTKEY: Final = re.compile(r"\bSORTKEY\s*\([^)]*\)", re.IGNORECASE)
_PASSWORD_DISABLE: Final = re.compile(r"\bPASSWORD\s+DISABLE\b", re.IGNORECASE)
_PARAMETER: Final = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_COPY: Final = re.compile(
    r"\s*COPY\s+(?P<target>[^']+?)\s+FROM\s+'(?P<source>(?:[^']|'')*)'(?P<options>.*?);?\s*",
    re.IGNORECASE | re.DOTALL,
)
_OPTION: Final = re.compile(
    r"\s*(?P<name>[A-Za-z_]+)(?:\s+AS)?(?:\s+'(?P<value>(?:[^']|'')*)')?", re.IGNORECASE
)
_OPTIONS_WITH_VALUES: Final = frozenset({"IAM_ROLE", "DELIMITER", "NULL", "DATEFORMAT"})
_FLAGS: Final = frozenset({"ESCAPE"})
_ISO_DATEFORMATS: Final = frozenset({"YYYY-MM-DD", "auto"})
_DEFAULT_DELIMITER: Final = "|"  # COPY's default for text data
_DEFAULT_NULL: Final = "\\N"
_HADOOP_CHECKSUM: Final = ".crc"
"""Hadoop's local file system writes a checksum file beside each file it writes; S3 has no
such objects, so a ``file://`` location skips them."""


class UntranslatedError(ValueError):
    """A Redshift statement uses something the twin does not translate for PostgreSQL."""


class LoadRefusedError(RuntimeError):
    """Redshift's COPY refused a row: its message names the table, not the row."""

    def __init__(self, table: str) -> None:
        super().__init__(
            f"Load into table '{table}' failed. Check 'sys_load_error_detail' system table "
            "for details."
        )


@dataclass(frozen=True)
class _Copy:
    """A Redshift COPY from S3, parsed."""

    target: str
    """The table and its column list, as written."""
    source: str
    delimiter: str
    escape: bool
    nulls: frozenset[str]
    """The raw fields that load as NULL."""

    @property
    def table(self) -> str:
        return self.target.split("(", 1)[0].strip()


@dataclass(frozen=True)
class RedshiftOnPostgres:
    """Runs Redshift statements on a PostgreSQL server, one transaction per call."""

    server_url: str
    s3: Any
    """A boto3 S3 client, which a COPY reads ``s3://`` objects with."""

    def run(
        self, database: str, sqls: Sequence[str], parameters: Mapping[str, str]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sqls`` in one transaction in ``database``; the last one's columns and rows.

        A statement that fails rolls the transaction back and raises: ``LoadRefusedError``
        for a row a COPY refused, ``UntranslatedError`` for what the twin cannot run, or
        PostgreSQL's own error.
        """
        columns: list[str] = []
        rows: list[tuple[Any, ...]] = []
        # Redshift's sessions are in UTC unless set otherwise; SYSDATE depends on it.
        with (
            psycopg.connect(self.server_url, dbname=database, options="-c TimeZone=UTC") as conn,
            conn.transaction(),
        ):
            for sql in sqls:
                columns, rows = self._execute(conn, sql, parameters)
        return columns, rows

    def _execute(
        self, conn: psycopg.Connection[Any], sql: str, parameters: Mapping[str, str]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        copy = _COPY.fullmatch(sql)
        if copy is not None:
            self._copy(conn, _parse_copy(copy))
            return [], []
        if parameters:
            bound = translated(sql, _bind(parameters), escape_percent=True)
            cursor = conn.execute(bound, dict(parameters))
        else:
            cursor = conn.execute(translated(sql))
        if cursor.description is None:
            return [], []
        return [c.name for c in cursor.description], cursor.fetchall()

    def _copy(self, conn: psycopg.Connection[Any], copy: _Copy) -> None:
        # Read whole before the COPY starts, so a line that cannot be read fails as itself.
        rows = [row for data in self._staged(copy.source) for row in _records(data, copy)]
        cursor = conn.cursor()
        try:
            with cursor.copy(f"COPY {copy.target} FROM STDIN") as stream:
                for row in rows:
                    stream.write_row(row)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise LoadRefusedError(copy.table) from exc

    def _staged(self, uri: str) -> Iterator[bytes]:
        """The content of every object under ``uri``, a key prefix, in key order."""
        parts = urlsplit(uri)
        found = False
        if parts.scheme == "s3":
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=parts.netloc, Prefix=parts.path.lstrip("/")
            )
            for page in pages:
                for listed in page.get("Contents", []):
                    found = True
                    body = self.s3.get_object(Bucket=parts.netloc, Key=listed["Key"])["Body"]
                    yield body.read()
        elif parts.scheme == "file":
            prefix = unquote(parts.path)
            folder = Path(prefix if prefix.endswith(os.sep) else os.path.dirname(prefix))
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                if str(path).startswith(prefix) and not path.name.endswith(_HADOOP_CHECKSUM):
                    found = True
                    yield path.read_bytes()
        else:
            raise UntranslatedError(f"COPY from {uri!r}: the twin reads only s3:// or file://")
        if not found:
            # Loading nothing would let a staging mistake pass as an empty load.
            raise UntranslatedError(f"COPY from {uri!r}: no staged object has that prefix")


def translated(
    sql: str, parameter: Callable[[str], str] | None = None, *, escape_percent: bool = False
) -> str:
    """``sql`` with SYSDATE, SORTKEY and PASSWORD DISABLE translated outside quoted text, and
    each ``:name`` replaced by ``parameter(name)`` when given; ``escape_percent`` doubles every
    ``%`` of the statement itself (for one run with parameters, whose placeholders are
    psycopg's)."""

    def escaped(text: str) -> str:
        return text.replace("%", "%%") if escape_percent else text

    def code(text: str) -> str:
        text = _SORTKEY.sub("", _SYSDATE.sub("LOCALTIMESTAMP", text))
        text = escaped(_PASSWORD_DISABLE.sub("PASSWORD NULL", text))
        bind = parameter
        return text if bind is None else _PARAMETER.sub(lambda m: bind(m.group(1)), text)

    pieces: list[str] = []
    position = 0
    for quoted in _QUOTED.finditer(sql):
        pieces += [code(sql[position : quoted.start()]), escaped(quoted.group(0))]
        position = quoted.end()
    pieces.append(code(sql[position:]))
    return "".join(pieces)


def _bind(parameters: Mapping[str, str]) -> Callable[[str], str]:
    def placeholder(name: str) -> str:
        if name not in parameters:
            raise UntranslatedError(f"the statement names :{name}, which no parameter gives")
        return f"%({name})s"

    return placeholder


def _literal_text(value: str) -> str:
    return value.replace("''", "'")


def _parse_copy(match: re.Match[str]) -> _Copy:
    options: dict[str, str | None] = {}
    text, position = match.group("options"), 0
    while position < len(text.rstrip()):
        option = _OPTION.match(text, position)
        if option is None:
            raise UntranslatedError(f"COPY option not understood: {text[position:].strip()!r}")
        name, value = option.group("name").upper(), option.group("value")
        known = _OPTIONS_WITH_VALUES if value is not None else _FLAGS
        if name not in known:
            raise UntranslatedError(f"COPY option {name} is not translated for PostgreSQL")
        options[name] = None if value is None else _literal_text(value)
        position = option.end()
    if options.get("DATEFORMAT", "auto") not in _ISO_DATEFORMATS:
        raise UntranslatedError(f"COPY DATEFORMAT {options['DATEFORMAT']!r} is not translated")
    delimiter = options.get("DELIMITER") or _DEFAULT_DELIMITER
    delimiter = "\t" if delimiter == "\\t" else delimiter
    if len(delimiter) != 1:
        raise UntranslatedError(f"COPY DELIMITER {delimiter!r} is not one character")
    escape = "ESCAPE" in options
    null = options.get("NULL")
    if null is not None:
        nulls = frozenset({null})
    else:
        nulls = frozenset({_DEFAULT_NULL, "\\" + _DEFAULT_NULL} if escape else {_DEFAULT_NULL})
    return _Copy(
        match.group("target"), _literal_text(match.group("source")), delimiter, escape, nulls
    )


_ESCAPED: Final = re.compile(r"\\(.)", re.DOTALL)


def _records(data: bytes, copy: _Copy) -> Iterator[list[str | None]]:
    """The rows of one staged object, read as Redshift's COPY reads UTF-8 text: a row per
    line, a field per delimiter; with ESCAPE, a backslash makes the next character (a
    delimiter, a line feed, a backslash) part of the value.

    Not ``pipeline.core.warehouse.staged_values``, which reads one line as PostgreSQL's COPY
    does: this one takes the COPY's options, and reads an escaped ``\\\\N`` as Redshift
    does, as NULL.
    """
    text = data.decode("utf-8")
    delimiter = re.escape(copy.delimiter)
    value = rf"(?:[^\\{delimiter}\n]|\\.)*" if copy.escape else rf"[^{delimiter}\n]*"
    field = re.compile(rf"({value})({delimiter}|\n|\Z)", re.DOTALL)
    fields: list[str | None] = []
    position = 0
    while position < len(text):
        found = field.match(text, position)
        if found is None:  # a backslash at the very end escapes nothing
            raise LoadRefusedError(copy.table)
        raw, end = found.groups()
        if raw in copy.nulls:
            fields.append(None)
        else:
            fields.append(_ESCAPED.sub(r"\1", raw) if copy.escape else raw)
        position = found.end()
        if end != copy.delimiter:
            yield fields
            fields = []
    if fields:  # the object ended just after a delimiter: its last field is empty
        yield [*fields, ""]
