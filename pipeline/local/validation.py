"""The validation job on the twin: its binding of ``jobs.validation.main``, and the worker
processes the endpoint runs it in.

The job code is the one Glue runs; what differs is what it works through. The gate's S3
client writes each promoted copy through to the object cache (``writing_through``), so the
next load reads it from disk; the cache's files appear by atomic rename, so any number of
worker processes write through into it at once. The quality report lives under the state
folder, one site per reports bucket, as the object cache mirrors the other buckets; its index
reads every validation's record, so it is built once per burst of validations
(``build_reports``), not after each.

The endpoint runs validations in worker processes (``ValidationProcesses``): the gate is
Python and pandas, and threads of one process share one core under the GIL. Each worker is
spawned, never forked: the endpoint runs moto's server threads and a JVM, which a fork would
copy mid-flight. A worker imports the gate once and keeps its binding (``ValidationWorker``);
what crosses back to the endpoint is plain data (``RunOutcome``), the error already in the
words the run reports (``plain_error``, which names the exception's class). An exception
itself would not cross intact: botocore's modelled errors (``s3.exceptions.NoSuchKey``, a
class made at run time) unpickle as a plain ``ClientError``, so the message would change;
one whose ``__init__`` takes other arguments than its ``args`` fails to unpickle; and GX's
would import GX into the endpoint.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import plain_error
from pipeline.core.logs import configure_logging
from pipeline.core.settings import JobSettings
from pipeline.local.objects import aws_client, object_cache, writing_through
from pipeline.local.services import LocalServices
from pipeline.settings import Settings
from quality.reports import QualityReports

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from jobs.validation import ValidationBinding

log = logging.getLogger(__name__)


@dataclass
class TwinValidation:
    """Binds validation runs to the twin: an S3 client of its endpoint that writes promoted
    copies through, a CloudWatch client of its endpoint for the run's metrics, and the report
    site of the run's reports bucket."""

    settings: Settings
    """The twin's own settings (its state folder); a run's come from its arguments."""
    s3: Any
    """A client of the twin's S3; ``bind`` writes its promoted copies through."""
    cloudwatch: Any
    """A client of the twin's CloudWatch, where the runs put their metrics."""
    _sites: dict[str, QualityReports] = field(default_factory=dict)
    _unbuilt: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        writing_through(self.s3, object_cache(self.settings))

    def site(self, reports_bucket: str) -> QualityReports:
        """The twin's quality report of ``reports_bucket``, under its state folder (one object
        per site: it keeps its GX context)."""
        with self._lock:
            if reports_bucket not in self._sites:
                root = self.settings.local.state_dir / "reports" / reports_bucket
                self._sites[reports_bucket] = QualityReports(root)
            return self._sites[reports_bucket]

    @contextmanager
    def bind(self, settings: JobSettings) -> Iterator[ValidationBinding]:
        # The gate's GX takes seconds to import; the report site is read without it.
        from jobs.validation import ValidationBinding

        bucket = settings.reports_bucket
        try:
            yield ValidationBinding(self.s3, self.site(bucket), self.cloudwatch)
        finally:
            with self._lock:
                self._unbuilt.add(bucket)

    def recorded(self) -> frozenset[str]:
        """The reports buckets validations recorded in since the last call or build: the sites
        whose index is not built yet."""
        with self._lock:
            unbuilt, self._unbuilt = self._unbuilt, set()
        return frozenset(unbuilt)

    def build_reports(self, buckets: Iterable[str] | None = None) -> None:
        """Build the index of each site of ``buckets``, or else of every site validations
        recorded in since the last build."""
        for bucket in sorted(self.recorded() if buckets is None else buckets):
            self.site(bucket).build()


@dataclass(frozen=True)
class RunOutcome:
    """What a worker process hands back for one request."""

    error: str | None = None
    """None when it succeeded, else the run's error message (``plain_error`` of what the job
    raised, as a run in the endpoint reports it)."""
    recorded: frozenset[str] = frozenset()
    """The reports buckets the run recorded in: their index is built once the burst ends."""


@dataclass
class ValidationWorker:
    """What one worker process keeps from run to run: the gate, imported once, and its own
    binding with its own S3 client of the endpoint, made at the first request."""

    settings: Settings
    """The endpoint's own settings (where the twin is); a run's come from its arguments."""

    @cached_property
    def binding(self) -> TwinValidation:
        endpoint = LocalServices(self.settings).endpoint
        return TwinValidation(
            self.settings,
            aws_client("s3", self.settings, endpoint),
            aws_client("cloudwatch", self.settings, endpoint),
        )

    def validate(self, argv: Sequence[str]) -> RunOutcome:
        """Run the validation job's entrypoint on a run's argument vector."""
        from jobs.validation import main

        try:
            main(argv, self.binding)
        except Exception as exc:
            # As Glue, the run's message is the error in plain words; the whole of it goes
            # to the log, which the endpoint's shares (this process writes to its stderr).
            log.warning("validation run %s failed", _run_id(argv), exc_info=True)
            return RunOutcome(plain_error(exc), self.binding.recorded())
        return RunOutcome(None, self.binding.recorded())

    def build_reports(self, buckets: frozenset[str]) -> RunOutcome:
        self.binding.build_reports(buckets)
        return RunOutcome()


def _run_id(argv: Sequence[str]) -> str:
    return next((value for name, value in itertools.pairwise(argv) if name == "--JOB_RUN_ID"), "?")


def serve_validations(connection: Connection, settings_json: str) -> None:
    """A worker process's life: answer the endpoint's requests, one at a time, until it
    closes its end of ``connection``."""
    settings = Settings.model_validate_json(settings_json)
    os.nice(settings.local.validation_niceness)
    configure_logging(json_lines=False, verbose=True)
    import jobs.validation  # noqa: F401  (the gate's GX takes seconds: before the first run)

    worker = ValidationWorker(settings)
    while True:
        try:
            method, argument = connection.recv()
        except EOFError:
            return
        try:
            outcome = getattr(worker, method)(argument)
        except Exception as exc:
            log.warning("validation worker request %s failed", method, exc_info=True)
            outcome = RunOutcome(plain_error(exc))
        connection.send(outcome)


class WorkerProcess:
    """One worker process, seen from the endpoint: started on first use, and again after it
    died; one request at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings_json = settings.model_dump_json()
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._starting = threading.Lock()  # the warm-up and a run may start it at once

    def start(self) -> tuple[BaseProcess, Connection]:
        """Start the process unless it runs (it imports the gate before it answers); the
        process and the endpoint's end of its connection."""
        with self._starting:
            if self._process is not None and self._connection is not None:
                if self._process.is_alive():
                    return self._process, self._connection
                self._connection.close()  # it died between two runs
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            process = context.Process(
                target=serve_validations,
                args=(theirs, self._settings_json),
                name="validation-worker",
                daemon=True,  # ended with the endpoint, whichever way it exits
            )
            process.start()
            theirs.close()  # the worker's end: it sees EOF once the endpoint's end closes
            self._process, self._connection = process, ours
            return process, ours

    def call(self, method: str, argument: object) -> RunOutcome:
        """Have the worker run ``method`` of its ``ValidationWorker``; if it dies first, the
        outcome says so (a run must end, never hang)."""
        process, connection = self.start()
        try:
            connection.send((method, argument))
            # A reply, or the end of the process: whichever comes first.
            if connection in wait([connection, process.sentinel]):
                outcome: RunOutcome = connection.recv()
                return outcome
        except (EOFError, OSError):  # it died while this was sending or reading
            pass
        process.join()
        code = process.exitcode or 0
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
        # The next request starts a new process.
        return RunOutcome(f"the validation worker process {process.pid} {how} before the run ended")

    def stop(self) -> None:
        """End the process now: a run it had fails, as its endpoint is stopping."""
        if self._process is not None:
            self._process.terminate()
            self._process.join()


class ValidationProcesses:
    """The endpoint's validation worker processes, ``validation_workers`` of them: a request
    waits for a free one."""

    def __init__(self, settings: Settings) -> None:
        self.workers = [WorkerProcess(settings) for _ in range(settings.local.validation_workers)]
        self._free: queue.SimpleQueue[WorkerProcess] = queue.SimpleQueue()
        for worker in self.workers:
            self._free.put(worker)

    @contextmanager
    def worker(self) -> Iterator[WorkerProcess]:
        """A free worker for the block, once there is one."""
        worker = self._free.get()
        try:
            yield worker
        finally:
            self._free.put(worker)

    def start(self) -> None:
        """Start every worker (each imports the gate), before the first run needs one."""
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
