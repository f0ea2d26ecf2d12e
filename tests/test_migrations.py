"""The warehouse's migrations: the deploy-time handler against the Data API stand-in (moto and
the test's PostgreSQL), the twin's ``ensure_schema``, the grants, and the contract's tables as
what applying every migration makes."""

from __future__ import annotations

import ast
import datetime as dt
import importlib.util
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from moto.moto_api import state_manager
from psycopg.conninfo import make_conninfo

from pipeline.core import contract, migrations
from pipeline.core.contract import (
    FLIGHT_LOAD_AUDIT,
    WAREHOUSE_TABLES,
    Column,
    ColumnType,
    Dialect,
    Table,
)
from pipeline.core.migrations import (
    MIGRATIONS,
    AddColumn,
    Migration,
    deploy_properties,
    grant_statements,
    history_ddl,
    iam_role_user,
    tables_after,
)
from pipeline.core.warehouse import (
    LOAD_COLUMNS,
    Rejection,
    SourceFile,
    day_rows_sql,
    remove_day_statements,
    staged_line,
)
from pipeline.local.postgres import PostgresWarehouse
from pipeline.local.redshift_sql import RedshiftOnPostgres
from pipeline.local.services import LocalServices
from pipeline.settings import REPO_ROOT, Settings
from pipeline.workflow import loaded_rows_sql
from tests.redshift import WORKGROUP, batches_sent, install_data_api

HANDLER = REPO_ROOT / "cdk" / "functions" / "migrations" / "index.py"
CRAWLER = "flightpipe-warehouse"


def load_handler() -> ModuleType:
    """The handler as Lambda loads it: a plain file, not a module of a package."""
    spec = importlib.util.spec_from_file_location("migrations_handler", HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


handler = load_handler()


class LambdaContext:
    """What the handler reads of Lambda's context object."""

    def __init__(self, remaining_seconds: float = 300) -> None:
        self.remaining_seconds = remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_seconds * 1000)


def url(settings: Settings) -> str:
    return LocalServices(settings).warehouse_url


def rows(settings: Settings, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url(settings)) as conn:
        return conn.execute(sql, params).fetchall()


def history(settings: Settings) -> list[tuple[Any, ...]]:
    return rows(settings, "SELECT version, description FROM flightpipe_migrations ORDER BY 1")


def users(settings: Settings) -> tuple[str, str, str]:
    """The load's, the state machine's and the smoke test's database users, of this test's
    own."""
    name = settings.warehouse.database
    load, state_machine, smoke = (
        iam_role_user(f"{name}-{role}Role") for role in ("Load", "StateMachine", "Smoke")
    )
    return load, state_machine, smoke


# Columns as PostgreSQL's information_schema describes them: data type, VARCHAR width.
_INFORMATION_TYPES = {
    ColumnType.STRING: "character varying",
    ColumnType.INTEGER: "integer",
    ColumnType.DATE: "date",
    ColumnType.TIMESTAMP_UTC: "timestamp with time zone",
}


def expected_columns(tables: Sequence[Table]) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's columns in order: name, data type, width, nullable."""
    return {
        table.name: [
            (c.name, _INFORMATION_TYPES[c.type], c.width, "YES" if c.nullable else "NO")
            for c in table.columns
        ]
        for table in tables
    }


def actual_columns(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the database's schema (the history less), as ``expected_columns``."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    for table, *column in rows(
        settings,
        "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name <> 'flightpipe_migrations' ORDER BY table_name, ordinal_position",
    ):
        found.setdefault(table, []).append(tuple(column))
    return found


def differences(
    settings: Settings, tables: Sequence[Table] = WAREHOUSE_TABLES
) -> dict[str, tuple[Any, Any]]:
    """Per table, (what the contract says, what the database has) where they differ."""
    expected, actual = expected_columns(tables), actual_columns(settings)
    return {
        name: (expected.get(name), actual.get(name))
        for name in expected.keys() | actual.keys()
        if expected.get(name) != actual.get(name)
    }


# The deploy-time handler, as the CDK Provider framework calls it.


@pytest.fixture
def aws(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto with the Data API stand-in on this test's database, the admin secret and the JDBC
    crawler; each crawl ends at once. Yields the names the CDK app gives the resource."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    state_manager.set_transition("glue::crawl", {"progression": "immediate"})
    try:
        with mock_aws():
            install_data_api(monkeypatch, settings)
            secret = boto3.client("secretsmanager").create_secret(
                Name="flightpipe-warehouse-admin", SecretString='{"username": "admin"}'
            )
            boto3.client("glue").create_crawler(
                Name=CRAWLER,
                Role="arn:aws:iam::123456789012:role/crawler",
                DatabaseName="flightpipe",
                Targets={
                    "JdbcTargets": [
                        {"ConnectionName": "warehouse", "Path": f"{WORKGROUP}/public/%"}
                    ]
                },
            )
            yield {
                "WorkgroupName": WORKGROUP,
                "Database": settings.warehouse.database,
                "SecretArn": secret["ARN"],
                "CrawlerName": CRAWLER,
            }
    finally:
        state_manager.unset_transition("glue::crawl")


def properties(
    settings: Settings, names: dict[str, str], versions: Sequence[Migration] = MIGRATIONS
) -> dict[str, str]:
    return {
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        **names,
        **deploy_properties(names["Database"], *users(settings), migrations=versions),
    }


def event(request: str, new: dict[str, str], old: dict[str, str] | None = None) -> dict[str, Any]:
    """A Provider framework's event: CloudFormation's request less its response URL."""
    shaped: dict[str, Any] = {
        "RequestType": request,
        "ServiceToken": new["ServiceToken"],
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/flightpipe/1",
        "RequestId": "1",
        "LogicalResourceId": "WarehouseMigrations",
        "ResourceType": "Custom::WarehouseMigrations",
        "ResourceProperties": new,
    }
    if request != "Create":
        shaped["PhysicalResourceId"] = f"{new['WorkgroupName']}/{new['Database']}"
    if old is not None:
        shaped["OldResourceProperties"] = old
    return shaped


def crawls() -> int:
    return len(boto3.client("glue").list_crawls(CrawlerName=CRAWLER)["Crawls"])


def migration_batches() -> list[list[str]]:
    """The statements of each batch the handler sent that applied a migration."""
    return [sqls for _, sqls in batches_sent() if "INSERT INTO flightpipe_migrations" in sqls[-1]]


def note_column(version: int = 2) -> Migration:
    return Migration(
        version,
        "The audit gains a note",
        (AddColumn(FLIGHT_LOAD_AUDIT.name, Column("note", ColumnType.STRING)),),
    )


def test_create_applies_every_migration_records_it_and_signs_in_with_the_secret(
    aws: dict[str, str], settings: Settings
) -> None:
    calls: list[dict[str, Any]] = []

    def called(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("provide-client-params.redshift-data", called)
    new = properties(settings, aws)
    try:
        response = handler.on_event(event("Create", new), LambdaContext())
    finally:
        session.events.unregister("provide-client-params.redshift-data", called)

    assert response == {
        "PhysicalResourceId": f"{WORKGROUP}/{settings.warehouse.database}",
        "Data": {"AppliedVersions": "1"},
    }
    assert history(settings) == [(m.version, m.description) for m in MIGRATIONS]
    assert differences(settings) == {}
    assert [batch[:-1] for batch in migration_batches()] == [
        MIGRATIONS[0].statements(Dialect.REDSHIFT)[:-1]
    ]
    sent = [c for c in calls if "Sql" in c or "Sqls" in c]
    assert sent
    assert all(
        (c["WorkgroupName"], c["Database"], c["SecretArn"])
        == (WORKGROUP, settings.warehouse.database, aws["SecretArn"])
        for c in sent
    )


def test_a_second_update_applies_nothing_and_starts_no_crawl(
    aws: dict[str, str], settings: Settings
) -> None:
    new = properties(settings, aws)
    handler.on_event(event("Create", new), LambdaContext())
    (applied_at,) = rows(settings, "SELECT applied_at FROM flightpipe_migrations")

    # CloudFormation sends an Update when any property changed (the grants, say).
    response = handler.on_event(event("Update", new, old=new), LambdaContext())

    assert response["Data"] == {"AppliedVersions": ""}
    assert response["PhysicalResourceId"] == f"{WORKGROUP}/{settings.warehouse.database}"
    assert rows(settings, "SELECT applied_at FROM flightpipe_migrations") == [applied_at]
    assert len(migration_batches()) == 1
    assert crawls() == 1


def test_a_new_migration_applies_only_itself_and_the_crawler_catalogs_it(
    aws: dict[str, str], settings: Settings
) -> None:
    old = properties(settings, aws)
    handler.on_event(event("Create", old), LambdaContext())
    new = properties(settings, aws, (*MIGRATIONS, note_column()))

    response = handler.on_event(event("Update", new, old=old), LambdaContext())

    assert response["Data"] == {"AppliedVersions": "2"}
    assert [v for v, _ in history(settings)] == [1, 2]
    assert [batch[:-1] for batch in migration_batches()][1:] == [
        ["ALTER TABLE flight_load_audit ADD COLUMN note VARCHAR(256)"]
    ]
    assert rows(
        settings,
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'flight_load_audit' AND column_name = 'note'",
    ) == [(1,)]
    assert crawls() == 2


def test_an_sql_error_fails_naming_the_version_and_the_message_and_records_nothing(
    aws: dict[str, str], settings: Settings
) -> None:
    old = properties(settings, aws)
    handler.on_event(event("Create", old), LambdaContext())
    broken = Migration(
        2,
        "The audit gains a note and a row count it has",
        (
            AddColumn(FLIGHT_LOAD_AUDIT.name, Column("note", ColumnType.STRING)),
            AddColumn(FLIGHT_LOAD_AUDIT.name, Column("row_count", ColumnType.INTEGER)),
        ),
    )
    new = properties(settings, aws, (*MIGRATIONS, broken, note_column(3)))

    with pytest.raises(handler.StatementFailedError) as failed:
        handler.on_event(event("Update", new, old=old), LambdaContext())

    assert str(failed.value) == (
        "migration 2 (The audit gains a note and a row count it has) FAILED: ERROR: column "
        '"row_count" of relation "flight_load_audit" already exists'
    )
    assert [v for v, _ in history(settings)] == [1]
    assert differences(settings) == {}  # the note of its first statement was rolled back
    assert crawls() == 1  # and version 3 never ran


def test_a_statement_still_running_when_time_runs_out_fails_naming_its_migration(
    aws: dict[str, str], settings: Settings
) -> None:
    new = properties(settings, aws)
    slow = json.loads(new["Migrations"])
    slow[0]["statements"].insert(0, "SELECT pg_sleep(4)")
    new["Migrations"] = json.dumps(slow)
    short = LambdaContext(remaining_seconds=handler.MARGIN_SECONDS + 1.5)

    with pytest.raises(handler.StatementFailedError, match="ran out of time") as late:
        handler.on_event(event("Create", new), short)

    assert str(late.value).startswith(f"migration 1 ({MIGRATIONS[0].description}) still STARTED")


def test_the_grants_create_each_user_once_and_grant_what_each_caller_runs(
    aws: dict[str, str], settings: Settings
) -> None:
    load_user, state_machine_user, smoke_user = users(settings)
    new = properties(settings, aws)
    handler.on_event(event("Create", new), LambdaContext())

    handler.on_event(event("Update", new, old=new), LambdaContext())

    created = rows(
        settings,
        "SELECT usename FROM pg_user WHERE usename = ANY(%s) ORDER BY 1",
        [[load_user, state_machine_user, smoke_user]],
    )
    assert created == sorted([(load_user,), (state_machine_user,), (smoke_user,)])
    grant_batches = [sqls for _, sqls in batches_sent() if sqls[-1].startswith("GRANT")]
    assert [sum(s.startswith("CREATE USER") for s in b) for b in grant_batches] == [3, 0]
    privileges = {
        (user, table, privilege)
        for user in (load_user, state_machine_user, smoke_user)
        for table in (t.name for t in WAREHOUSE_TABLES)
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
        if rows(settings, "SELECT has_table_privilege(%s, %s, %s)", [user, table, privilege])[0][0]
    }
    assert privileges == {
        (load_user, "flight_processed", "SELECT"),
        (load_user, "flight_processed", "INSERT"),
        (load_user, "flight_processed", "DELETE"),
        (load_user, "flight_load_audit", "SELECT"),
        (load_user, "flight_load_audit", "INSERT"),
        (load_user, "flight_load_rejects", "SELECT"),
        (load_user, "flight_load_rejects", "INSERT"),
        (state_machine_user, "flight_load_audit", "SELECT"),
        (state_machine_user, "flight_load_rejects", "SELECT"),
        *(
            (smoke_user, table, privilege)
            for table in ("flight_processed", "flight_load_audit", "flight_load_rejects")
            for privilege in ("SELECT", "DELETE")
        ),
    }
    database = settings.warehouse.database
    temporary = "SELECT has_database_privilege(%s, %s, 'TEMPORARY')"
    assert rows(settings, temporary, [load_user, database]) == [(True,)]


def test_a_crawl_in_progress_is_joined(aws: dict[str, str], settings: Settings) -> None:
    state_manager.set_transition("glue::crawl", {"progression": "manual", "times": 100})
    boto3.client("glue").start_crawler(Name=CRAWLER)

    response = handler.on_event(event("Create", properties(settings, aws)), LambdaContext())

    assert response["Data"] == {"AppliedVersions": "1"}
    assert crawls() == 1


def test_a_new_crawler_crawls_even_when_no_migration_is_pending(
    aws: dict[str, str], settings: Settings
) -> None:
    old = properties(settings, aws)
    handler.on_event(event("Create", old), LambdaContext())
    boto3.client("glue").create_crawler(
        Name="renamed", Role="arn:aws:iam::123456789012:role/crawler", DatabaseName="flightpipe",
        Targets={"JdbcTargets": [{"ConnectionName": "warehouse", "Path": "x/public/%"}]},
    )  # fmt: skip

    handler.on_event(event("Update", {**old, "CrawlerName": "renamed"}, old=old), LambdaContext())

    assert len(boto3.client("glue").list_crawls(CrawlerName="renamed")["Crawls"]) == 1


def test_delete_leaves_the_tables_and_their_rows(aws: dict[str, str], settings: Settings) -> None:
    new = properties(settings, aws)
    handler.on_event(event("Create", new), LambdaContext())
    sent = len(batches_sent())

    response = handler.on_event(event("Delete", new), LambdaContext())

    assert response == {"PhysicalResourceId": f"{WORKGROUP}/{settings.warehouse.database}"}
    assert len(batches_sent()) == sent
    assert [v for v, _ in history(settings)] == [1]
    assert differences(settings) == {}


def test_the_handler_keeps_the_cores_history_sql_and_imports_boto3_alone() -> None:
    assert history_ddl(Dialect.REDSHIFT) == handler.HISTORY_DDL
    assert handler.APPLIED_VERSIONS_SQL == migrations.APPLIED_VERSIONS_SQL
    tree = ast.parse(HANDLER.read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported - {"__future__", "contextlib", "json", "time", "collections", "typing"} == {
        "boto3"
    }


# The contract's tables are what applying every migration makes.


@pytest.mark.parametrize("how", ["twin", "deploy"])
def test_applying_every_migration_gives_the_contract_tables(
    how: str, settings: Settings, request: pytest.FixtureRequest
) -> None:
    """Fails when the contract's warehouse tables change without a migration that makes the
    change: a migration never refers to the contract's live tables, so none follows it."""
    if how == "twin":
        PostgresWarehouse(url(settings)).ensure_schema()
    else:
        names = request.getfixturevalue("aws")
        handler.on_event(event("Create", properties(settings, names)), LambdaContext())

    differ = differences(settings)
    assert not differ, (
        "the contract's warehouse tables differ from what the migrations make (contract, "
        f"database): {differ}. Add a migration for the change at the end of "
        "pipeline.core.migrations.MIGRATIONS; never edit a released one"
    )
    assert _same_shape(tables_after(), WAREHOUSE_TABLES)


def _same_shape(made: dict[str, tuple[Column, ...]], tables: Sequence[Table]) -> bool:
    """The columns' names, types, widths and nullability, descriptions aside."""

    def shape(columns: Sequence[Column]) -> list[tuple[Any, ...]]:
        return [(c.name, c.type, c.width, c.nullable) for c in columns]

    return {n: shape(c) for n, c in made.items()} == {t.name: shape(t.columns) for t in tables}


def test_a_contract_change_without_its_migration_is_a_difference(settings: Settings) -> None:
    PostgresWarehouse(url(settings)).ensure_schema()
    note = Column("note", ColumnType.STRING, description="Added to the contract.")
    changed = tuple(
        Table(t.name, (*t.columns, note)) if t is FLIGHT_LOAD_AUDIT else t for t in WAREHOUSE_TABLES
    )

    assert set(differences(settings, changed)) == {FLIGHT_LOAD_AUDIT.name}
    assert not _same_shape(tables_after(), changed)

    with psycopg.connect(url(settings)) as conn:
        conn.execute(note_column().changes[0].sql(Dialect.POSTGRES))
    assert differences(settings, changed) == {}
    assert _same_shape(tables_after((*MIGRATIONS, note_column())), changed)


def test_migrations_are_numbered_in_order_and_hold_no_live_contract_object() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    live = {id(o) for t in WAREHOUSE_TABLES for o in (t, *t.columns)}
    live |= {id(v) for v in vars(contract).values() if isinstance(v, Column | Table)}
    held = [
        o
        for m in MIGRATIONS
        for change in m.changes
        for o in (
            (change.table, *change.table.columns)
            if isinstance(change, migrations.CreateTable)
            else (change.column,)
        )
    ]
    assert not [o for o in held if id(o) in live]


def test_a_migration_is_one_batch_with_its_history_row_last() -> None:
    for migration in MIGRATIONS:
        statements = migration.statements(Dialect.REDSHIFT)
        assert len(statements) <= migrations.BATCH_MAX_STATEMENTS
        assert statements[-1] == (
            "INSERT INTO flightpipe_migrations (version, description) "
            f"VALUES ({migration.version}, '{migration.description}')"
        )
    with pytest.raises(ValueError, match="1 to 39 changes"):
        Migration(9, "too much", tuple(note_column().changes * 40))
    assert "'it''s'" in Migration(9, "it's", note_column().changes).statements(Dialect.POSTGRES)[-1]


def test_deploy_properties_are_json_strings_of_the_redshift_sql() -> None:
    rendered = deploy_properties("dev", "IAMR:load", "IAMR:states", "IAMR:smoke")

    assert set(rendered) == {"Migrations", "Grants"}
    (first,) = json.loads(rendered["Migrations"])
    assert first["version"] == 1
    assert first["statements"] == MIGRATIONS[0].statements(Dialect.REDSHIFT)
    assert any("SORTKEY (flight_date)" in s for s in first["statements"])
    grants = json.loads(rendered["Grants"])
    assert grants[0] == {
        "sql": 'CREATE USER "IAMR:load" PASSWORD DISABLE',
        "unless": "SELECT 1 FROM pg_user WHERE usename = 'IAMR:load'",
    }
    assert {"sql": 'GRANT TEMP ON DATABASE "dev" TO "IAMR:load"'} in grants


def test_names_in_the_grants_are_quoted() -> None:
    statements = grant_statements('we"ird', "IAMR:it's", 'IAMR:a"b', "IAMR:smoke")
    sqls = [s.sql for s in statements]

    assert 'CREATE USER "IAMR:a""b" PASSWORD DISABLE' in sqls
    assert statements[0].unless == "SELECT 1 FROM pg_user WHERE usename = 'IAMR:it''s'"
    assert 'GRANT TEMP ON DATABASE "we""ird" TO "IAMR:it\'s"' in sqls
    assert iam_role_user("FlightpipeStack-LoadRole1A2B") == "IAMR:FlightpipeStack-LoadRole1A2B"


# The grants are what each caller needs: with them it runs, without any one of them it fails.


def _lock_down(settings: Settings) -> None:
    """A database where PUBLIC may use neither the schema nor temporary tables, so that
    only the grants give them."""
    database = settings.warehouse.database
    with psycopg.connect(url(settings), autocommit=True) as conn:
        conn.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")


def _grant(settings: Settings, leave_out: str | None = None) -> None:
    """The grants, through the twin's Redshift SQL, less the statement ``leave_out`` names."""
    sqls = [
        s.sql
        for s in grant_statements(settings.warehouse.database, *users(settings))
        if leave_out is None or leave_out not in s.sql
    ]
    RedshiftOnPostgres(url(settings), s3=None).run(settings.warehouse.database, sqls, {})


def _as(settings: Settings, user: str) -> PostgresWarehouse:
    return PostgresWarehouse(make_conninfo(url(settings), user=user))


def _load(settings: Settings, tmp_path: Path) -> dict[str, int]:
    """One load with a rejection, as the load user: every statement a load runs."""
    day = dt.date(2024, 1, 1)

    def version(date: dt.date) -> SourceFile:
        key = f"validated/{date}.csv"
        return SourceFile(key, "v1", "sha", date, f"s3://bucket/{key}", f"raw/{date}.csv", "u1")

    loaded, rejected = version(day), version(day + dt.timedelta(days=1))
    values: dict[str, Any] = dict.fromkeys(LOAD_COLUMNS)
    values |= {"flight_date": day, "carrier": "DL", "source_file": loaded.uri}
    values |= {"origin_airport_id": 10397, "dest_airport_id": 12892}
    part = tmp_path / "part-0.txt"
    part.write_text(staged_line([values[c] for c in LOAD_COLUMNS]) + "\n")
    load_user, *_ = users(settings)
    # No row bounds: the audit counts its rows in the table, as on Redshift.
    return _as(settings, load_user).replace_days(
        [loaded], "run-1", [part], [Rejection(rejected, "refused")], row_bounds={}
    )


def _ask(settings: Settings) -> list[tuple[Any, ...]]:
    """What the state machine asks after a load, as its user."""
    _, state_machine_user, _ = users(settings)
    sql = loaded_rows_sql().replace(":upload_key", "%s").replace(":upload_version", "%s")
    # Each of the three subqueries names the key, then the version.
    return _as(settings, state_machine_user).query(sql, ["raw/2024-01-01.csv", "u1"] * 3)[1]


def test_with_the_grants_the_load_and_the_state_machine_run(
    settings: Settings, tmp_path: Path
) -> None:
    PostgresWarehouse(url(settings)).ensure_schema()
    _lock_down(settings)
    _grant(settings)

    assert _load(settings, tmp_path) == {"validated/2024-01-01.csv": 1}
    assert _ask(settings) == [(1, "run-1", None)]
    load_user, state_machine_user, _ = users(settings)
    refused = [
        (load_user, "UPDATE flight_processed SET carrier = 'x'"),
        (load_user, "TRUNCATE flight_load_audit"),
        (load_user, "CREATE TABLE flight_copy (i integer)"),
        (state_machine_user, "SELECT count(*) FROM flight_processed"),
        (state_machine_user, "DELETE FROM flight_load_audit"),
    ]
    for user, sql in refused:
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            _as(settings, user).connect() as c,
        ):
            c.execute(sql)


REFUSED = (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable)
"""What a missing privilege raises: without USAGE on the schema its tables are not found."""

LOAD_GRANTS = [
    *(
        (table, privilege)
        for table, privileges in migrations.LOAD_PRIVILEGES
        for privilege in privileges
    ),
    ("database", "TEMP"),
    ("schema", "USAGE"),
]


@pytest.mark.parametrize(("on", "privilege"), LOAD_GRANTS)
def test_the_load_needs_each_privilege_it_is_granted(
    on: str, privilege: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    PostgresWarehouse(url(settings)).ensure_schema()
    _lock_down(settings)
    if on in ("database", "schema"):
        _grant(settings, leave_out=f"GRANT {privilege} ON {on.upper()}")
    else:
        fewer = tuple(
            (table, tuple(p for p in granted if (table, p) != (on, privilege)))
            for table, granted in migrations.LOAD_PRIVILEGES
        )
        monkeypatch.setattr(migrations, "LOAD_PRIVILEGES", fewer)
        _grant(settings)

    with pytest.raises(REFUSED):
        _load(settings, tmp_path)


def _smoke(settings: Settings) -> list[tuple[Any, ...]]:
    """What the smoke test runs on the warehouse, as its user: it counts the day, then
    removes it (the day loaded by ``_load``)."""
    _, _, smoke_user = users(settings)
    day = dt.date(2024, 1, 1)
    smoke = _as(settings, smoke_user)
    counted = smoke.query(day_rows_sql(day))[1]
    with smoke.connect() as conn:
        for sql in remove_day_statements(day):
            conn.execute(sql)
    return counted + smoke.query(day_rows_sql(day))[1]


def test_with_the_grants_the_smoke_test_counts_and_removes_its_day_and_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    PostgresWarehouse(url(settings)).ensure_schema()
    _lock_down(settings)
    _grant(settings)
    _load(settings, tmp_path)

    assert _smoke(settings) == [(1, 1), (0, 0)]
    rejects = rows(settings, "SELECT count(*) FROM flight_load_rejects")
    assert rejects == [(1,)]  # the rejected file's day, 2024-01-02, is not the smoke's
    _, _, smoke_user = users(settings)
    for sql in (
        "INSERT INTO flight_processed (flight_date) VALUES (DATE '2024-01-01')",
        "UPDATE flight_load_audit SET row_count = 0",
        "TRUNCATE flight_load_rejects",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            _as(settings, smoke_user).connect() as c,
        ):
            c.execute(sql)


def _needs(privileges: tuple[tuple[str, tuple[str, ...]], ...]) -> list[tuple[str, str]]:
    return [
        *((table, privilege) for table, granted in privileges for privilege in granted),
        ("schema", "USAGE"),
    ]


@pytest.mark.parametrize(
    ("caller", "on", "privilege"),
    [
        *(("state machine", *need) for need in _needs(migrations.STATE_MACHINE_PRIVILEGES)),
        *(("smoke test", *need) for need in _needs(migrations.SMOKE_PRIVILEGES)),
    ],
)
def test_the_state_machine_and_the_smoke_test_need_each_privilege_they_are_granted(
    caller: str, on: str, privilege: str, settings: Settings, tmp_path: Path
) -> None:
    PostgresWarehouse(url(settings)).ensure_schema()
    _lock_down(settings)
    _grant(settings)
    _load(settings, tmp_path)
    _, state_machine_user, smoke_user = users(settings)
    user, runs = (state_machine_user, _ask) if caller == "state machine" else (smoke_user, _smoke)
    with psycopg.connect(url(settings), autocommit=True) as conn:
        target = "SCHEMA public" if on == "schema" else f"TABLE {on}"
        conn.execute(f'REVOKE {privilege} ON {target} FROM "{user}"')

    with pytest.raises(REFUSED):
        runs(settings)


# The twin applies the same migrations.


def test_the_twin_applies_each_migration_once(settings: Settings) -> None:
    twin = PostgresWarehouse(url(settings))

    assert twin.ensure_schema() == [1]
    assert twin.ensure_schema() == []
    assert history(settings) == [(1, MIGRATIONS[0].description)]


def test_twins_starting_at_once_apply_each_migration_once(settings: Settings) -> None:
    starts = threading.Barrier(4)

    def start() -> list[int]:
        starts.wait()
        return PostgresWarehouse(url(settings)).ensure_schema()

    with ThreadPoolExecutor(4) as pool:
        applied = sorted(pool.map(lambda _: start(), range(4)))

    assert applied == [[], [], [], [1]]
    assert [v for v, _ in history(settings)] == [1]


def test_a_twin_warehouse_from_before_the_migrations_keeps_its_rows(settings: Settings) -> None:
    """Created at start by the contract's DDL of its time: no rejects table yet, and an audit
    without the upload's key and version."""
    with psycopg.connect(url(settings)) as conn:
        conn.execute(contract.create_table_sql(contract.FLIGHT_PROCESSED, Dialect.POSTGRES))
        old_audit = Table(FLIGHT_LOAD_AUDIT.name, FLIGHT_LOAD_AUDIT.columns[:-2])
        conn.execute(contract.create_table_sql(old_audit, Dialect.POSTGRES))
        conn.execute(
            "INSERT INTO flight_load_audit (source_key, source_version, sha256, flight_date, "
            "row_count, job_run_id) VALUES ('validated/2024-01-01.csv', 'v1', 'sha', "
            "DATE '2024-01-01', 7, 'old-run')"
        )

    assert PostgresWarehouse(url(settings)).ensure_schema() == [1]

    assert differences(settings) == {}
    assert rows(settings, "SELECT row_count, upload_key FROM flight_load_audit") == [(7, None)]
    assert [v for v, _ in history(settings)] == [1]


def test_on_its_own_server_the_twins_tables_are_unlogged_and_the_history_is_not(
    settings: Settings,
) -> None:
    services = LocalServices(settings)
    PostgresWarehouse(
        url(settings), own_server=True, reader_url=services.reader_url
    ).ensure_schema()

    persistence = dict(
        rows(
            settings,
            "SELECT relname, relpersistence FROM pg_class WHERE relname = ANY(%s)",
            [[*(t.name for t in WAREHOUSE_TABLES), "flightpipe_migrations"]],
        )
    )
    assert persistence == {
        **{t.name: "u" for t in WAREHOUSE_TABLES},
        "flightpipe_migrations": "p",
    }


def test_where_no_smoke_test_runs_no_smoke_user_is_made_or_granted() -> None:
    with_smoke = grant_statements("dev", "IAMR:load", "IAMR:states", "IAMR:smoke")
    without = grant_statements("prod", "IAMR:load", "IAMR:states", None)

    smoke = [s for s in with_smoke if "IAMR:smoke" in s.sql]
    assert len(smoke) == 2 + len(migrations.SMOKE_PRIVILEGES)  # the user, USAGE, the tables
    assert [s.sql.replace('"prod"', '"dev"') for s in without] == [
        s.sql for s in with_smoke if s not in smoke
    ]
