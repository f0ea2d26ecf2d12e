"""Executions of the main state machine on the local twin: find, follow and describe them.

Each upload's run has a known name, the router's hash of bucket, key and version id
(``pipeline.core.uploads.run_name``), so an uploader can follow the run its upload started without
being told.
Runs from before the endpoint's last restart are no longer in moto: they are read from the
twin's run archive (``pipeline.local.durable``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pipeline.core.uploads import execution_arn
from pipeline.local.durable import FAILED_STEP_EVENTS, RunArchive
from pipeline.local.resources import Resources

RUNNING: Final = "RUNNING"
NOT_STARTED: Final = "NOT STARTED"
"""A run that does not exist (yet): its event has not reached the router."""


@dataclass(frozen=True)
class Run:
    """One execution of the main state machine, as ``flightpipe runs`` lists it."""

    name: str
    status: str
    bucket: str = ""
    key: str = ""
    version: str = ""
    started: dt.datetime | None = None
    stopped: dt.datetime | None = None
    failed_step: str = ""
    error: str = ""
    cause: str = ""
    arn: str = ""

    @property
    def file(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else ""

    @property
    def finished(self) -> bool:
        return self.status not in (RUNNING, NOT_STARTED)

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        end = self.stopped or dt.datetime.now(self.started.tzinfo)
        return round((end - self.started).total_seconds(), 1)


class Runs:
    """The main state machine's executions on the local endpoint, and in its run archive."""

    def __init__(self, sfn: Any, resources: Resources, archive: RunArchive | None = None) -> None:
        self.sfn = sfn
        self.resources = resources
        self.archive = archive

    def get(self, name: str) -> Run:
        """The run called ``name``; ``NOT_STARTED`` when there is none yet."""
        arn = execution_arn(self.resources.main_arn, name)
        try:
            described = self.sfn.describe_execution(executionArn=arn)
        except self.sfn.exceptions.ExecutionDoesNotExist:
            archived = self.archive.find(arn) if self.archive else None
            if archived is None:
                return Run(name, NOT_STARTED)
            return self._run(name, archived.described, lambda: archived.events)
        return self._run(name, described, lambda: self._history(arn))

    def _run(
        self, name: str, described: dict[str, Any], history: Callable[[], Iterable[dict[str, Any]]]
    ) -> Run:
        """A run from its DescribeExecution output; ``history`` is read only if it failed."""
        upload = json.loads(described.get("input") or "{}")
        status = described["status"]
        return Run(
            name=name,
            status=status,
            bucket=upload.get("bucket", ""),
            key=upload.get("key", ""),
            version=upload.get("version_id", ""),
            started=described.get("startDate"),
            stopped=described.get("stopDate"),
            failed_step=_failed_step(history()) if status == "FAILED" else "",
            error=described.get("error", ""),
            cause=described.get("cause", ""),
            arn=described["executionArn"],
        )

    def _history(self, arn: str) -> Iterable[dict[str, Any]]:
        pages = self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        for page in pages:
            yield from page["events"]

    def all(self) -> list[Run]:
        """Every run, newest first, archived ones included."""
        names = [
            execution["name"]
            for page in self.sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.resources.main_arn
            )
            for execution in page["executions"]
        ]
        if self.archive:
            names += self.archive.names(self.resources.main_arn)
        runs = [self.get(name) for name in dict.fromkeys(names)]
        return sorted(runs, key=lambda r: r.started or dt.datetime.min, reverse=True)

    def follow(
        self,
        names: Sequence[str],
        timeout_seconds: float,
        poll_seconds: float,
        on_update: Callable[[Iterable[Run]], None] = lambda runs: None,
    ) -> list[Run]:
        """Wait until every named run has finished or ``timeout_seconds`` passed.

        Returns the runs in the order of ``names``; any not finished keeps its last status.
        """
        latest = {name: Run(name, NOT_STARTED) for name in names}
        deadline = time.monotonic() + timeout_seconds
        while True:
            for name, run in latest.items():
                if not run.finished:
                    latest[name] = self.get(name)
            on_update(latest.values())
            if all(run.finished for run in latest.values()) or time.monotonic() > deadline:
                return [latest[name] for name in names]
            time.sleep(poll_seconds)


def _failed_step(events: Iterable[dict[str, Any]]) -> str:
    """The step the failure path recorded (``$.failed_step``), read where the run failed."""
    for event in events:
        if event["type"] in FAILED_STEP_EVENTS:
            state = json.loads(event["stateEnteredEventDetails"].get("input") or "{}")
            return str(state.get("failed_step", ""))
    return ""
