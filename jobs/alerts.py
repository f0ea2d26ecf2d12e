"""Alerts the load publishes itself, for rejected versions no run of their own reports."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobs.quarantine import quarantined_key
from pipeline.core.uploads import run_name, split_s3_uri
from pipeline.core.warehouse import (
    Rejection,
    SourceFile,
)

log = logging.getLogger(__name__)


@dataclass
class SnsRejectionAlerts:
    """Alerts for rejected versions that have no run of their own to report them.

    A version promoted from an upload has a run (the router names it ``run_name``); that run
    reads the reject record after its load step and fails with the reason, so its alert is the
    one. A copy no upload names (written by hand, or without ``source-version``), or one whose
    run does not exist, would go unreported: this publishes its alert instead.
    """

    sns: Any
    sfn: Any
    topic_arn: str
    state_machine_arn: str
    env: str
    quarantine_prefix: str
    log_location: str
    """Where the load's whole log is, for the alert to say."""

    def publish(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        for rejection in rejections:
            if self._has_run(rejection.file):
                continue
            file = rejection.file
            bucket, _ = split_s3_uri(file.uri)
            message = (
                f"flightpipe load REJECTED {file.uri} (version {file.version}): "
                f"{rejection.reason}\n"
                "No run of its own reports it (no upload names this copy); the other files "
                f"loaded, this one moved to s3://{bucket}/"
                f"{quarantined_key(file, self.quarantine_prefix)} with the reason beside it. "
                f"Load run {job_run_id}; full log: {self.log_location}."
            )
            self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=f"flightpipe {self.env}: file rejected at load",
                Message=message,
                MessageAttributes={"outcome": {"DataType": "String", "StringValue": "failed"}},
            )

    def _has_run(self, file: SourceFile) -> bool:
        if not file.upload_key or not file.upload_version:
            return False
        bucket, _ = split_s3_uri(file.uri)
        name = run_name(bucket, file.upload_key, file.upload_version)
        executions = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
        try:
            self.sfn.describe_execution(executionArn=f"{executions}:{name}")
        except self.sfn.exceptions.ExecutionDoesNotExist:
            return False
        return True
