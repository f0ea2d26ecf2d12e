"""The load's warehouse on AWS: Redshift Serverless through the Data API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame

from pipeline.core.contract import (
    Dialect,
)
from pipeline.core.warehouse import (
    Rejection,
    SourceFile,
    WarehouseRefusedError,
    copy_statement,
    load_statements,
    reject_insert,
)

log = logging.getLogger(__name__)


@dataclass
class RedshiftWarehouse:
    """Redshift Serverless through the Data API: stage lines to S3, then one batched transaction.

    ``BatchExecuteStatement`` runs its statements as a single transaction, so the DELETE, the
    COPY and the audit INSERT commit together.
    """

    data_api: Any
    workgroup: str
    database: str
    staging_uri: str
    copy_role_arn: str
    before_commit: Callable[[Sequence[SourceFile]], None] | None = None
    """Called with the files once their lines are staged (Spark has read them) and before the
    transaction: raising stops the load with nothing committed."""
    poll_seconds: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def replace_days(
        self,
        lines: DataFrame,
        files: Sequence[SourceFile],
        job_run_id: str,
        rejections: Sequence[Rejection] = (),
    ) -> Mapping[str, int]:
        staged = f"{self.staging_uri.rstrip('/')}/{job_run_id}/"
        lines.write.mode("overwrite").text(staged)
        if self.before_commit is not None:
            self.before_commit(files)
        copy = copy_statement(Dialect.REDSHIFT, staged_uri=staged, iam_role=self.copy_role_arn)
        statements = load_statements(files, job_run_id, copy, rejections)
        batch = self.data_api.batch_execute_statement(
            WorkgroupName=self.workgroup, Database=self.database, Sqls=statements.in_order()
        )
        self._wait(batch["Id"])
        query = self._execute(statements.rows_loaded)
        result = self.data_api.get_statement_result(Id=query)
        return {
            record[0]["stringValue"]: int(record[1]["longValue"]) for record in result["Records"]
        }

    def record_rejections(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        self._execute(reject_insert(rejections, job_run_id))

    def _execute(self, sql: str) -> str:
        """Run one statement (a transaction of its own) to its end; return its id."""
        statement = self.data_api.execute_statement(
            WorkgroupName=self.workgroup, Database=self.database, Sql=sql
        )
        self._wait(statement["Id"])
        return str(statement["Id"])

    def _wait(self, statement_id: str) -> None:
        while True:
            status = self.data_api.describe_statement(Id=statement_id)
            if status["Status"] == "FINISHED":
                return
            if status["Status"] in ("FAILED", "ABORTED"):
                error = str(status.get("Error"))
                message = f"Redshift statement {statement_id} {status['Status']}: {error}"
                # COPY refuses a row with this one message, whatever the row and the reason.
                if any(marker in error for marker in _REDSHIFT_LOAD_ERRORS):
                    raise WarehouseRefusedError(message)
                raise RuntimeError(message)
            self.sleep(self.poll_seconds)


_REDSHIFT_LOAD_ERRORS = ("sys_load_error_detail", "stl_load_errors")
"""What Redshift's COPY says when it refused a row: where the details are."""
