"""The warehouse's versioned migrations, and the privileges of the Data API callers.

The warehouse is made by migrations, applied in version order, each once: on AWS at deploy
time by the CDK app's custom resource (``cdk/functions/migrations/index.py``, which receives
``deploy_properties``), on the twin by ``PostgresWarehouse.ensure_schema``. Each migration is
defined once, in the contract's terms (``Table``, ``Column``), and rendered per dialect by the
contract's renderers. Its statements and the row that records it in the history table
(``HISTORY_TABLE``: version, description, applied_at) run as one transaction, so a migration is
applied whole and recorded, or not at all: on Redshift one BatchExecuteStatement (the Data API
runs a batch as one transaction).

A migration is never edited once released: a deployed warehouse has applied it and will not
again. So it holds its own copy of what it creates, never the contract's live objects: version 1
is the tables as the contract defined them when migrations began, written out here. Changing
the contract's warehouse tables therefore changes no migration, and ``tests/test_migrations.py``
fails (applying every migration no longer gives the contract's tables) until a new migration
makes the change, e.g. ``AddColumn`` for an added column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from pipeline.core.contract import (
    FLIGHT_LOAD_AUDIT,
    FLIGHT_LOAD_REJECTS,
    FLIGHT_PROCESSED,
    Column,
    ColumnType,
    Dialect,
    Table,
    add_column_sql,
    create_table_sql,
)

BATCH_MAX_STATEMENTS: Final = 40
"""The most statements one BatchExecuteStatement may carry (the Data API's ``Sqls``)."""
DESCRIPTION_MAX_BYTES: Final = 256
"""The history's ``description`` is a VARCHAR(256), counted in bytes on Redshift."""


def quote_identifier(name: str) -> str:
    """A delimited identifier: in double quotes, each double quote in it doubled (Redshift:
    https://docs.aws.amazon.com/redshift/latest/dg/r_names.html; PostgreSQL alike).

    Redshift folds the ASCII letters of a delimited identifier to lowercase, except in a user
    name, whose case is always kept
    (https://docs.aws.amazon.com/redshift/latest/dg/r_enable_case_sensitive_identifier.html):
    so ``"IAMR:LoadRole"`` names exactly the user the role signs in as."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A string literal: in single quotes, each single quote in it doubled."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class CreateTable:
    """Create a table (``IF NOT EXISTS``; on Redshift sorted by ``flight_date`` when it has
    one, as the contract renders it)."""

    table: Table

    def sql(self, dialect: Dialect) -> str:
        return create_table_sql(self.table, dialect)

    def applied_to(self, tables: dict[str, tuple[Column, ...]]) -> None:
        if self.table.name in tables:
            raise ValueError(f"{self.table.name} is created twice")
        tables[self.table.name] = self.table.columns


@dataclass(frozen=True)
class AddColumn:
    """Add a nullable column at the end of a table (its earlier rows hold NULL there)."""

    table: str
    column: Column

    def sql(self, dialect: Dialect) -> str:
        return add_column_sql(Table(self.table, ()), self.column, dialect)

    def applied_to(self, tables: dict[str, tuple[Column, ...]]) -> None:
        columns = tables.get(self.table)
        if columns is None:
            raise ValueError(f"{self.table}.{self.column.name}: no migration creates {self.table}")
        if self.column.name in {c.name for c in columns}:
            raise ValueError(f"{self.table}.{self.column.name} is added twice")
        tables[self.table] = (*columns, self.column)


Change = CreateTable | AddColumn


@dataclass(frozen=True)
class Migration:
    """One version of the warehouse: its changes, applied in order in one transaction with
    the history row that records it."""

    version: int
    description: str
    changes: tuple[Change, ...]

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"migration {self.version}: versions start at 1")
        if not 1 <= len(self.changes) < BATCH_MAX_STATEMENTS:
            # One batch holds the changes and the history row.
            raise ValueError(
                f"migration {self.version}: 1 to {BATCH_MAX_STATEMENTS - 1} changes, "
                f"not {len(self.changes)}"
            )
        if len(self.description.encode()) > DESCRIPTION_MAX_BYTES:
            raise ValueError(f"migration {self.version}: description over 256 bytes")

    def statements(self, dialect: Dialect) -> list[str]:
        """Its changes, then its history row: the statements of its one transaction."""
        record = (
            f"INSERT INTO {HISTORY_TABLE} (version, description) "
            f"VALUES ({self.version}, {quote_literal(self.description)})"
        )
        return [*(change.sql(dialect) for change in self.changes), record]


# Version 1's copy of the contract's tables as they were when migrations began. Do not edit:
# a change to the warehouse is a new migration at the end of MIGRATIONS.
def _text(name: str, nullable: bool = True) -> Column:
    return Column(name, ColumnType.STRING, nullable=nullable, width=256)


def _integer(name: str, nullable: bool = True) -> Column:
    return Column(name, ColumnType.INTEGER, nullable=nullable)


_FLIGHT_DATE: Final = Column("flight_date", ColumnType.DATE, nullable=False)
_LOADED_AT: Final = Column("loaded_at", ColumnType.TIMESTAMP_UTC, nullable=False)

_VERSION_1: Final = Migration(
    1,
    "The warehouse tables: flight_processed (sorted by flight_date), flight_load_audit, "
    "flight_load_rejects",
    (
        CreateTable(
            Table(
                "flight_processed",
                (
                    _FLIGHT_DATE,
                    _text("carrier", nullable=False),
                    _integer("origin_airport_id", nullable=False),
                    _text("origin_city"),
                    _text("origin_state"),
                    _text("origin_name"),
                    _integer("dest_airport_id", nullable=False),
                    _text("dest_city"),
                    _text("dest_state"),
                    _text("dest_name"),
                    _integer("dep_delay"),
                    _integer("arr_delay"),
                    _text("source_file", nullable=False),
                    _LOADED_AT,
                ),
            )
        ),
        CreateTable(
            Table(
                "flight_load_audit",
                (
                    _text("source_key", nullable=False),
                    _text("source_version", nullable=False),
                    _text("sha256", nullable=False),
                    _FLIGHT_DATE,
                    _integer("row_count", nullable=False),
                    _text("job_run_id", nullable=False),
                    _LOADED_AT,
                    _text("upload_key"),
                    _text("upload_version"),
                ),
            )
        ),
        CreateTable(
            Table(
                "flight_load_rejects",
                (
                    _text("upload_key"),
                    _text("upload_version"),
                    _text("validated_key", nullable=False),
                    _text("validated_version", nullable=False),
                    _text("sha256", nullable=False),
                    _FLIGHT_DATE,
                    _text("reason", nullable=False),
                    _integer("line"),
                    _text("column_name"),
                    _text("value"),
                    _text("job_run_id", nullable=False),
                    _LOADED_AT,
                ),
            )
        ),
    ),
)

MIGRATIONS: Final[tuple[Migration, ...]] = (_VERSION_1,)
"""Every migration, in version order: 1, 2, 3, ... A new one goes at the end."""

HISTORY_TABLE: Final = "flightpipe_migrations"

# One timestamp per transaction, as the contract's loaded_at (pipeline.core.contract, _NOW).
_TRANSACTION_START: Final = {Dialect.POSTGRES: "now()", Dialect.REDSHIFT: "SYSDATE"}


def history_ddl(dialect: Dialect) -> str:
    """The history table, created if missing. Its primary key is enforced on PostgreSQL and
    informational on Redshift, where one deployment at a time applies migrations."""
    return (
        f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\n"
        "    version INTEGER NOT NULL,\n"
        f"    description VARCHAR({DESCRIPTION_MAX_BYTES}) NOT NULL,\n"
        f"    applied_at TIMESTAMPTZ DEFAULT {_TRANSACTION_START[dialect]} NOT NULL,\n"
        "    PRIMARY KEY (version)\n"
        ")"
    )


APPLIED_VERSIONS_SQL: Final = f"SELECT version FROM {HISTORY_TABLE} ORDER BY version"


def pending(
    applied: Iterable[int], migrations: Sequence[Migration] = MIGRATIONS
) -> list[Migration]:
    """The migrations not applied yet, in version order. A version applied that ``migrations``
    does not know (a warehouse ahead of this code, e.g. during a rollback) is left alone."""
    done = set(applied)
    return sorted((m for m in migrations if m.version not in done), key=lambda m: m.version)


def tables_after(migrations: Sequence[Migration] = MIGRATIONS) -> dict[str, tuple[Column, ...]]:
    """The tables, with their columns in order, that applying ``migrations`` makes."""
    tables: dict[str, tuple[Column, ...]] = {}
    for migration in sorted(migrations, key=lambda m: m.version):
        for change in migration.changes:
            change.applied_to(tables)
    return tables


# What each Data API caller runs, and so the privileges it needs.
#
# The load (jobs/load.py through pipeline/core/warehouse.py, on Redshift jobs/redshift.py):
# CREATE TEMPORARY TABLE for its two manifests (load_files, load_rejects), which it owns, so
# their COPY and ANALYZE need nothing more; DELETE FROM flight_processed WHERE flight_date ...
# (DELETE, and SELECT for the WHERE); COPY into flight_processed (INSERT); the audit INSERT
# counting the day's rows in flight_processed (SELECT) where no audit row is yet (SELECT on the
# audit); the reject INSERT where no reject record is yet (SELECT on the rejects); and after the
# commit the audit rows of its run (SELECT). Nothing is updated, truncated, altered or dropped.
LOAD_PRIVILEGES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (FLIGHT_PROCESSED.name, ("SELECT", "INSERT", "DELETE")),
    (FLIGHT_LOAD_AUDIT.name, ("SELECT", "INSERT")),
    (FLIGHT_LOAD_REJECTS.name, ("SELECT", "INSERT")),
)
# The state machine (pipeline.workflow.loaded_rows_sql): one SELECT of the audit and the
# reject records by upload key and version.
STATE_MACHINE_PRIVILEGES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (FLIGHT_LOAD_AUDIT.name, ("SELECT",)),
    (FLIGHT_LOAD_REJECTS.name, ("SELECT",)),
)
# The smoke test (pipeline.smoke, through pipeline.core.warehouse): it counts its day's rows
# in flight_processed and the audit (SELECT), and removes the day from all three tables (DELETE,
# and SELECT for the WHERE). It never writes a row: its day is loaded by the pipeline itself.
SMOKE_PRIVILEGES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (FLIGHT_PROCESSED.name, ("SELECT", "DELETE")),
    (FLIGHT_LOAD_AUDIT.name, ("SELECT", "DELETE")),
    (FLIGHT_LOAD_REJECTS.name, ("SELECT", "DELETE")),
)
SCHEMA: Final = "public"
"""The schema of the warehouse tables (the DDL names none: the search path's first)."""


def iam_role_user(role_name: str) -> str:
    """The database user an IAM role is on Redshift Serverless when it calls the Data API
    with no secret: ``IAMR:<role name>``.

    The Data API derives the user from the caller's IAM identity ("arn:iam::123456789012:
    user:foo has the database user name IAM:foo",
    https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_ExecuteStatement.html);
    for a role it is ``IAMR:`` and the role's name, which AWS's own setup creates with
    ``CREATE USER "IAMR:<role>" WITH PASSWORD DISABLE`` and grants to, and which sign-in
    creates without privileges if it does not exist yet
    (https://docs.aws.amazon.com/bedrock/latest/userguide/knowledge-base-prereq-structured-db-access.html).
    """
    return f"IAMR:{role_name}"


@dataclass(frozen=True)
class GrantStatement:
    """A statement of the grants; ``unless``: a query that returns a row when what ``sql``
    makes exists already, and then ``sql`` is not run (Redshift has no ``CREATE USER IF NOT
    EXISTS``). GRANT itself is idempotent."""

    sql: str
    unless: str | None = None

    def as_property(self) -> dict[str, str]:
        return {"sql": self.sql} | ({"unless": self.unless} if self.unless else {})


def grant_statements(
    database: str, load_user: str, state_machine_user: str, smoke_user: str | None
) -> list[GrantStatement]:
    """What the Data API callers need, idempotently: each user created first if missing
    (password disabled: it signs in only through IAM,
    https://docs.aws.amazon.com/redshift/latest/dg/r_CREATE_USER.html), then USAGE on the
    schema, the load's TEMP on the database (its manifests are temporary tables) and each
    user's privileges on the tables. The users are database user names: on AWS
    ``iam_role_user`` of the load job's, the state machine's and the smoke test's roles;
    ``smoke_user`` None where no smoke test runs (production)."""
    users = (
        (load_user, LOAD_PRIVILEGES),
        (state_machine_user, STATE_MACHINE_PRIVILEGES),
        *(((smoke_user, SMOKE_PRIVILEGES),) if smoke_user is not None else ()),
    )
    if len({user for user, _ in users}) != len(users):
        raise ValueError("the load, the state machine and the smoke test need users of their own")
    statements: list[GrantStatement] = []
    for user, _ in users:
        statements.append(
            GrantStatement(
                f"CREATE USER {quote_identifier(user)} PASSWORD DISABLE",
                unless=f"SELECT 1 FROM pg_user WHERE usename = {quote_literal(user)}",
            )
        )
    for user, privileges in users:
        grantee = quote_identifier(user)
        statements.append(
            GrantStatement(f"GRANT USAGE ON SCHEMA {quote_identifier(SCHEMA)} TO {grantee}")
        )
        if user == load_user:
            statements.append(
                GrantStatement(f"GRANT TEMP ON DATABASE {quote_identifier(database)} TO {grantee}")
            )
        statements += [
            GrantStatement(
                f"GRANT {', '.join(granted)} ON TABLE {quote_identifier(table)} TO {grantee}"
            )
            for table, granted in privileges
        ]
    if len(statements) > BATCH_MAX_STATEMENTS:
        raise ValueError(f"{len(statements)} grant statements: one batch takes 40")
    return statements


def deploy_properties(
    database: str,
    load_user: str,
    state_machine_user: str,
    smoke_user: str | None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> dict[str, str]:
    """The custom resource's ``Migrations`` and ``Grants`` properties, each a JSON string (a
    custom resource's properties reach its handler as strings).

    ``Migrations``: each of ``migrations`` (all of them, but in tests) as ``{"version": 1,
    "description": "...", "statements": [...]}``, its statements in Redshift's SQL with its
    history row last. ``Grants``: ``[{"sql": "...", "unless": "..."}, {"sql": "..."}]``
    (``GrantStatement``). The other properties are names the CDK app gives:
    ``WorkgroupName``, ``Database``, ``SecretArn`` (the admin credentials), ``CrawlerName``.

    The names may be CDK tokens (``role.role_name``): a token inside a string is resolved at
    deploy time, and the names it stands for hold no character that JSON or the SQL quoting
    would change (IAM role names are letters, digits and ``+=,.@_-``).
    """
    rendered = [
        {
            "version": m.version,
            "description": m.description,
            "statements": m.statements(Dialect.REDSHIFT),
        }
        for m in migrations
    ]
    grants = grant_statements(database, load_user, state_machine_user, smoke_user)
    return {
        "Migrations": json.dumps(rendered),
        "Grants": json.dumps([g.as_property() for g in grants]),
    }
