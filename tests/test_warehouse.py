"""The load transaction's SQL, shared by Redshift and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.core.contract import Dialect
from pipeline.core.warehouse import (
    Rejection,
    SourceFile,
    audit_insert,
    copy_statement,
    load_statements,
    reject_insert,
)


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


FIRST, THIRD = dt.date(2024, 3, 1), dt.date(2024, 3, 3)


def test_the_audit_takes_proven_counts_as_given_and_otherwise_counts_the_days_rows() -> None:
    files = [
        source("s3://raw/validated/2024-03-01.csv", FIRST),
        source("s3://raw/validated/2024-03-03.csv", THIRD),
    ]
    counts = {"validated/2024-03-01.csv": 120, "validated/2024-03-03.csv": 80}
    given = audit_insert(files, "run-1", counts)
    assert "120 AS row_count" in given
    assert "80 AS row_count" in given
    assert "FROM flight_processed" not in given

    counted = audit_insert(files, "run-1")
    assert "AS row_count" not in counted.split("LEFT JOIN")[0]
    assert "COUNT(*) AS row_count FROM flight_processed" in counted
    assert "flight_date IN (DATE '2024-03-01', DATE '2024-03-03') GROUP BY" in counted


def test_audit_and_reject_records_leave_loaded_at_to_the_transactions_timestamp() -> None:
    """Neither INSERT names loaded_at: the column's default stamps it, the transaction's
    timestamp in both dialects (the contract's DDL), as it stamps the COPY's rows."""
    file = source("s3://raw/validated/2024-03-01.csv", FIRST)
    inserts = {
        "audit": audit_insert([file], "run-1"),
        "reject": reject_insert([Rejection(file, "line 2, DepDelay: x")], "run-1"),
    }
    for name, sql in inserts.items():
        assert "loaded_at" not in sql.lower(), name
        assert "GETDATE" not in sql.upper(), name
        assert "SYSDATE" not in sql.upper(), name
