"""`flightpipe query` is read-only for real: one statement, as a role that can only read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pipeline.local.postgres import PostgresWarehouse, QueryRefusedError
from pipeline.local.services import LocalServices
from pipeline.settings import REPO_ROOT, Settings
from tests.conftest import settings_env


@pytest.fixture
def warehouse(settings: Settings) -> PostgresWarehouse:
    """The warehouse as the twin sets it up on its own server, read-only role included."""
    services = LocalServices(settings)
    own = PostgresWarehouse(services.warehouse_url, own_server=True, reader_url=services.reader_url)
    own.ensure_schema()
    return own


def table_exists(warehouse: PostgresWarehouse, name: str) -> bool:
    _, rows = warehouse.query("SELECT to_regclass(%s) IS NOT NULL", [name])
    return bool(rows[0][0])


def test_a_select_runs_and_percent_signs_are_plain_text(warehouse: PostgresWarehouse) -> None:
    columns, rows = warehouse.ask(
        "SELECT count(*) AS flights, '100%' AS share FROM flight_processed", 5
    )

    assert (columns, rows) == (["flights", "share"], [(0, "100%")])


def test_a_commit_cannot_end_the_read_only_transaction(warehouse: PostgresWarehouse) -> None:
    with pytest.raises(QueryRefusedError, match="one statement per query"):
        warehouse.ask("commit; create table escaped(i int)", 5)

    assert not table_exists(warehouse, "escaped")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT * FROM pg_ls_dir('.')",
        "CREATE TEMP TABLE scratch (i int)",
        "CREATE TABLE public.kept (i int)",
        "DELETE FROM flight_processed",
    ],
)
def test_the_query_role_cannot_read_files_or_change_anything(
    warehouse: PostgresWarehouse, sql: str
) -> None:
    with pytest.raises(QueryRefusedError, match="queries are read-only"):
        warehouse.ask(sql, 5)


def test_a_query_cannot_write_a_file_of_the_machine(
    warehouse: PostgresWarehouse, tmp_path: Path
) -> None:
    target = tmp_path / "written-by-a-query"

    with pytest.raises(QueryRefusedError):
        warehouse.ask(f"COPY (SELECT 1) TO '{target}'", 5)

    assert not target.exists()


def test_a_query_longer_than_the_timeout_is_cancelled(warehouse: PostgresWarehouse) -> None:
    with pytest.raises(QueryRefusedError, match=r"longer than 0.2 s"):
        warehouse.ask("SELECT pg_sleep(5)", 0.2)


def test_the_query_role_is_no_superuser(warehouse: PostgresWarehouse) -> None:
    assert warehouse.reader_url is not None
    with psycopg.connect(warehouse.reader_url) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False,)


def test_the_command_refuses_a_second_statement_in_plain_words(settings: Settings) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "pipeline", "query", "commit; create table x(i int)"],
        cwd=REPO_ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert ran.returncode == 1
    assert "one statement per query" in ran.stderr
    assert "Traceback" not in ran.stderr
