"""The load's warehouse on AWS: Redshift Serverless through the Data API."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.flights import STAGED_LINE
from pipeline.core.contract import Dialect
from pipeline.core.data_api import DataApi, StatementError
from pipeline.core.warehouse import (
    STAGED_FLIGHTS,
    Manifest,
    Rejection,
    SourceFile,
    Staging,
    WarehouseRefusedError,
    load_statements,
    reject_statements,
)

log = logging.getLogger(__name__)


@dataclass
class RedshiftWarehouse:
    """Redshift Serverless through the Data API: stage lines and manifests to S3, then one
    batched transaction.

    ``BatchExecuteStatement`` runs its statements as a single transaction, so the manifests'
    COPYs, the DELETE, the COPY of the lines and the audit and reject INSERTs commit together.
    The batch has the same few statements, each of the same size, for one file as for
    thousands (``pipeline.core.warehouse.LoadStatements``), so a backfill never meets the
    Data API's limits of 40 statements a batch and 100 KB a statement.
    """

    data_api: Any
    spark: SparkSession
    """Writes the manifests beside the lines, where Spark writes those."""
    workgroup: str
    database: str
    staging_uri: str
    copy_role_arn: str
    before_commit: Callable[[Sequence[SourceFile]], None] | None = None
    """Called with the files once their lines are staged (Spark has read them) and before the
    transaction: raising stops the load with nothing committed."""
    poll_seconds: float = 5.0
    """How its statements are waited for (``DataApi``)."""
    first_poll_seconds: float = 0.1
    sleep: Callable[[float], None] = time.sleep

    def replace_days(
        self,
        lines: DataFrame,
        files: Sequence[SourceFile],
        job_run_id: str,
        rejections: Sequence[Rejection] = (),
    ) -> Mapping[str, int]:
        staging = self._staging(job_run_id)
        statements = load_statements(files, job_run_id, staging, rejections)
        lines.write.mode("overwrite").text(staging.location(STAGED_FLIGHTS))
        if self.before_commit is not None:
            self.before_commit(files)
        for manifest in statements.manifests:
            self._stage(manifest, staging)
        self._transaction(statements.in_order())
        api = self._api
        return {  # a backfill's result is a row per file, in pages
            record[0]["stringValue"]: int(record[1]["longValue"])
            for record in api.records(api.execute(statements.rows_loaded))
        }

    def record_rejections(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        staging = self._staging(job_run_id)
        statements = reject_statements(rejections, job_run_id, staging)
        self._stage(statements.manifest, staging)
        self._transaction(statements.in_order())

    def _staging(self, job_run_id: str) -> Staging:
        uri = f"{self.staging_uri.rstrip('/')}/{job_run_id}/"
        return Staging(Dialect.REDSHIFT, uri, self.copy_role_arn)

    def _stage(self, manifest: Manifest, staging: Staging) -> None:
        """Write a manifest's staged lines as one object under its location."""
        # One JSON literal, parsed in the JVM: no Python worker for a few thousand lines.
        lines = F.from_json(F.lit(json.dumps(manifest.staged())), "array<string>")
        frame = self.spark.range(1).select(F.explode(lines).alias(STAGED_LINE))
        frame.coalesce(1).write.mode("overwrite").text(staging.location(manifest.name))

    @property
    def _api(self) -> DataApi:
        return DataApi(
            self.data_api,
            self.workgroup,
            self.database,
            self.poll_seconds,
            self.first_poll_seconds,
            self.sleep,
        )

    def _transaction(self, sqls: Sequence[str]) -> None:
        try:
            self._api.batch(sqls)
        except StatementError as failed:
            # COPY refuses a row with this one message, whatever the row and the reason.
            if any(marker in failed.error for marker in _REDSHIFT_LOAD_ERRORS):
                raise WarehouseRefusedError(str(failed)) from failed
            raise


_REDSHIFT_LOAD_ERRORS = ("sys_load_error_detail", "stl_load_errors")
"""What Redshift's COPY says when it refused a row: where the details are."""
