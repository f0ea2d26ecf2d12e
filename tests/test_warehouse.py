"""The load transaction's SQL, shared by Redshift and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.contract import Dialect
from pipeline.warehouse import SourceFile, copy_statement, load_statements


def source(uri: str, day: dt.date) -> SourceFile:
    return SourceFile(
        key=uri.split("/", 3)[3], version="v1", sha256="0" * 64, flight_date=day, uri=uri
    )


def test_a_load_refuses_two_files_for_one_day() -> None:
    day = dt.date(2024, 3, 1)
    files = [
        source("s3://raw/validated/2024-03-01.csv", day),
        source("s3://raw/validated/late/2024-03-01.csv", day),
    ]
    with pytest.raises(ValueError, match=r"late/2024-03-01\.csv both carry 2024-03-01"):
        load_statements(files, "run-1", copy_statement(Dialect.POSTGRES))


def test_a_load_deletes_exactly_its_days_and_audits_each_file() -> None:
    files = [
        source("s3://raw/validated/2024-03-01.csv", dt.date(2024, 3, 1)),
        source("s3://raw/validated/2024-03-03.csv", dt.date(2024, 3, 3)),
    ]
    statements = load_statements(files, "run-1", copy_statement(Dialect.POSTGRES))
    assert statements.delete_days == (
        "DELETE FROM flight_processed WHERE flight_date IN (DATE '2024-03-01', DATE '2024-03-03')"
    )
    assert statements.insert_audit.count("UNION ALL") == 1
    assert "'validated/2024-03-03.csv' AS source_key" in statements.insert_audit
