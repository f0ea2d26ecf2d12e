"""Statements through the Redshift Data API, run to their end, as every caller of ours on the
AWS side runs them: the load job, the smoke test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

ENDED_BADLY: Final = ("FAILED", "ABORTED")


class StatementError(RuntimeError):
    """A statement that ended FAILED or ABORTED; ``error`` is the Data API's ``Error``."""

    def __init__(self, statement_id: str, status: str, error: str) -> None:
        super().__init__(f"Redshift statement {statement_id} {status}: {error}")
        self.status = status
        self.error = error


@dataclass(frozen=True)
class DataApi:
    """One database of a workgroup, through a ``redshift-data`` client, as the caller's own
    database user (its IAM identity's)."""

    client: Any
    workgroup: str
    database: str
    poll_seconds: float = 5.0
    """The longest wait between two DescribeStatement calls of one statement."""
    first_poll_seconds: float = 0.1
    """The first wait, doubled after each poll up to ``poll_seconds``: most statements end
    within a second, a load's batch within a minute."""
    sleep: Callable[[float], None] = time.sleep

    def execute(self, sql: str) -> str:
        """Run one statement (a transaction of its own) to its end; its id."""
        statement = self.client.execute_statement(
            WorkgroupName=self.workgroup, Database=self.database, Sql=sql
        )
        return self.wait(str(statement["Id"]))

    def batch(self, sqls: Sequence[str]) -> str:
        """Run statements as one transaction (the Data API's batch) to their end; its id."""
        batch = self.client.batch_execute_statement(
            WorkgroupName=self.workgroup, Database=self.database, Sqls=list(sqls)
        )
        return self.wait(str(batch["Id"]))

    def records(self, statement_id: str) -> Iterator[list[dict[str, Any]]]:
        """A finished statement's rows, each a list of typed fields (``{"longValue": 3}``);
        a result comes in pages (NextToken)."""
        pages = self.client.get_paginator("get_statement_result").paginate(Id=statement_id)
        for page in pages:
            yield from page["Records"]

    def wait(self, statement_id: str) -> str:
        """Poll DescribeStatement until the statement ends; its id when FINISHED, else
        ``StatementError``."""
        pause = self.first_poll_seconds
        while True:
            described = self.client.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == "FINISHED":
                return statement_id
            if status in ENDED_BADLY:
                raise StatementError(statement_id, status, str(described.get("Error")))
            self.sleep(pause)
            pause = min(pause * 2, self.poll_seconds)
