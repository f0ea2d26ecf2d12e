"""The warehouse's migrations at deploy time: the ``on_event`` handler of a CDK Provider.

CloudFormation creates or updates the custom resource with the properties that
``pipeline.core.migrations.deploy_properties`` renders, beside the names the CDK app gives:
``WorkgroupName``, ``Database``, ``SecretArn`` (the admin credentials in Secrets Manager, which
the Data API signs in with), ``Migrations`` and ``Grants`` (JSON strings) and ``CrawlerName``.
On Create and Update the handler, through the Redshift Data API:

1. creates the history table if missing and reads the versions applied;
2. applies each migration not applied yet, in version order, each one BatchExecuteStatement
   (one transaction) whose last statement records it in the history;
3. runs the grants: a statement with an ``unless`` query is skipped when that query returns a
   row (a user that exists), the others run in one batch;
4. starts the JDBC crawler over the warehouse when a migration was applied or the crawler is
   new to this resource, so the catalog follows the DDL (a crawl in progress is left to run).

Each statement is awaited (DescribeStatement until FINISHED, FAILED or ABORTED) within the
Lambda's remaining time. A failed one raises an error naming what failed (the migration's
version) and the database's message; the Provider then fails the deployment, and the failed
migration's transaction, history row included, is rolled back.

Delete does nothing: the tables hold the loaded flights and the audit (the load's record of
what it has loaded), which a stack deletion or a replacement of this resource must not drop;
the namespace's own removal policy decides what happens to the data.

This folder is shipped as a plain asset: the handler uses boto3 alone, never ``pipeline``.
Its history table's SQL is ``pipeline.core.migrations``'s, which a test compares.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import boto3

HISTORY_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS flightpipe_migrations (\n"
    "    version INTEGER NOT NULL,\n"
    "    description VARCHAR(256) NOT NULL,\n"
    "    applied_at TIMESTAMPTZ DEFAULT SYSDATE NOT NULL,\n"
    "    PRIMARY KEY (version)\n"
    ")"
)
APPLIED_VERSIONS_SQL: Final = "SELECT version FROM flightpipe_migrations ORDER BY version"

MARGIN_SECONDS: Final = 10.0
"""Time kept back from the Lambda's remaining time, to report a statement still running."""
FIRST_POLL_SECONDS: Final = 0.1
POLL_SECONDS: Final = 2.0
_ENDED: Final = frozenset({"FINISHED", "FAILED", "ABORTED"})


class StatementFailedError(RuntimeError):
    """A statement the deployment needs did not finish; the message says which and why."""


class Warehouse:
    """The Redshift Serverless database, through the Data API with the admin secret; with no
    secret (a workgroup deployed elsewhere), as the function's own role's database user."""

    def __init__(self, properties: Mapping[str, Any], deadline: float) -> None:
        self.data_api = boto3.client("redshift-data")
        self.target = {
            "WorkgroupName": properties["WorkgroupName"],
            "Database": properties["Database"],
        }
        if properties.get("SecretArn"):
            self.target["SecretArn"] = properties["SecretArn"]
        self.deadline = deadline
        """``time.monotonic()`` past which no statement is awaited any more."""

    def run(self, sqls: Sequence[str], what: str) -> None:
        """Run ``sqls`` as one transaction to its end."""
        batch = self.data_api.batch_execute_statement(Sqls=list(sqls), **self.target)
        self._wait(batch["Id"], what)

    def rows(self, sql: str, what: str) -> list[list[dict[str, Any]]]:
        """The records of one query (each field as the Data API types it)."""
        statement = self.data_api.execute_statement(Sql=sql, **self.target)
        self._wait(statement["Id"], what)
        pages = self.data_api.get_paginator("get_statement_result").paginate(Id=statement["Id"])
        return [record for page in pages for record in page["Records"]]

    def _wait(self, statement_id: str, what: str) -> None:
        pause = FIRST_POLL_SECONDS
        while True:
            described = self.data_api.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == "FINISHED":
                return
            if status in _ENDED:
                raise StatementFailedError(
                    f"{what} {status}: {described.get('Error', 'no error given')}"
                )
            if time.monotonic() + pause > self.deadline:
                raise StatementFailedError(
                    f"{what} still {status} when the handler ran out of time (statement "
                    f"{statement_id}); it may still end, and a later deployment applies "
                    "whatever it did not"
                )
            time.sleep(pause)
            pause = min(pause * 2, POLL_SECONDS)


def on_event(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Provider framework's ``onEvent``: Create, Update or Delete of the resource."""
    properties = event["ResourceProperties"]
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    warehouse = Warehouse(properties, deadline)
    applied = migrate(warehouse, json.loads(properties["Migrations"]))
    grant(warehouse, json.loads(properties["Grants"]))
    old = event.get("OldResourceProperties") or {}
    # No crawler with a workgroup deployed elsewhere (its JDBC connection is not this stack's).
    crawler = properties.get("CrawlerName")
    if crawler and (applied or old.get("CrawlerName") != crawler):
        start_crawler(crawler)
    return {
        # Stable while the database is the same one; a new one is a new resource (the old
        # one's Delete then does nothing).
        "PhysicalResourceId": f"{properties['WorkgroupName']}/{properties['Database']}",
        "Data": {"AppliedVersions": ",".join(str(v) for v in applied)},
    }


def migrate(warehouse: Warehouse, migrations: Sequence[Mapping[str, Any]]) -> list[int]:
    """Apply the migrations not in the history yet, in version order; the versions applied.

    A version in the history that ``migrations`` lacks (the database is ahead of this
    definition, as in a rollback) is left alone: migrations only go forward.
    """
    warehouse.run([HISTORY_DDL], "creating the migration history")
    records = warehouse.rows(APPLIED_VERSIONS_SQL, "reading the migration history")
    done = {int(record[0]["longValue"]) for record in records}
    applied = []
    for migration in sorted(migrations, key=lambda m: int(m["version"])):
        version = int(migration["version"])
        if version not in done:
            warehouse.run(
                migration["statements"], f"migration {version} ({migration['description']})"
            )
            applied.append(version)
    return applied


def grant(warehouse: Warehouse, statements: Sequence[Mapping[str, str]]) -> None:
    """Run the grant statements, each skipped when its ``unless`` query finds a row."""
    sqls = [
        statement["sql"]
        for statement in statements
        if "unless" not in statement
        or not warehouse.rows(statement["unless"], f"checking before {statement['sql']!r}")
    ]
    if sqls:
        warehouse.run(sqls, "the grants")


def start_crawler(name: str) -> None:
    """Start the crawler; one already crawling is left to finish."""
    glue = boto3.client("glue")
    with contextlib.suppress(glue.exceptions.CrawlerRunningException):
        glue.start_crawler(Name=name)
