"""Expected warehouse contents computed independently of Spark: plain csv over the input files."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.local.postgres import PostgresWarehouse


@dataclass(frozen=True)
class DayTotals:
    flights: int
    cancelled: int
    dep_delay_sum: int
    arr_delay_sum: int


def totals_of_file(path: Path) -> DayTotals:
    """Totals of one daily file, reading columns by (case-insensitive) header name."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))

    def value(row: dict[str, str], name: str) -> str:
        return next(v for k, v in row.items() if k.strip().lower() == name.lower())

    dep = [value(r, "DepDelay") for r in rows]
    arr = [value(r, "ArrDelay") for r in rows]
    return DayTotals(
        flights=len(rows),
        cancelled=sum(1 for d in dep if d == ""),
        dep_delay_sum=sum(int(d) for d in dep if d != ""),
        arr_delay_sum=sum(int(a) for a in arr if a != ""),
    )


def expected_days(files: Iterable[Path]) -> dict[str, DayTotals]:
    """Per flight date (the file's stem), what the warehouse must hold; later files win."""
    return {path.stem: totals_of_file(path) for path in files}


def warehouse_days(warehouse: PostgresWarehouse) -> dict[str, DayTotals]:
    _, rows = warehouse.query(
        """
        SELECT flight_date::text, count(*), count(*) FILTER (WHERE dep_delay IS NULL),
               coalesce(sum(dep_delay), 0), coalesce(sum(arr_delay), 0)
        FROM flight_processed GROUP BY flight_date ORDER BY flight_date
        """
    )
    return {day: DayTotals(*map(int, rest)) for day, *rest in rows}


def audit_rows(warehouse: PostgresWarehouse) -> list[tuple[Any, ...]]:
    _, rows = warehouse.query(
        "SELECT source_key, source_version, row_count FROM flight_load_audit"
        " ORDER BY loaded_at, source_key"
    )
    return rows
