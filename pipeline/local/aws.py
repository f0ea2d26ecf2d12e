"""The local twin's AWS side: moto's services in one long-lived process, doing the real work.

moto serves S3, Glue, SNS, EventBridge and Step Functions (executing the deployed ASL). In
moto, Glue job runs and crawls only change state; here they run the project's code:

- a job run executes the entrypoint of the script its job names (``validation.py`` or
  ``flight_etl.py``) on the argument vector Glue would hand it, bound to the twin: the loads
  on a thread of this process, in one SparkSession shared by every run, the validations in
  worker processes (``pipeline.local.validation``); the run is WAITING until a worker is free
  for it, RUNNING meanwhile, then SUCCEEDED or FAILED with the error;
- a crawl registers the schema of the validated daily files in the Glue catalog;
- a Redshift Data API statement runs on the twin's PostgreSQL (``pipeline.local.redshift_data``);
- every message published to an SNS topic is also appended to
  ``<state>/alerts/<topic>.jsonl``, which ``flightpipe alerts`` reads;
- the buckets and finished runs are kept under ``<state>/aws/`` and restored when the endpoint
  starts again (``pipeline.local.durable``).

A job run's settings are its arguments alone, as on Glue: the jobs' default arguments that
``pipeline.local.resources`` created them with and the run's arguments from the state machine.
The endpoint's own settings (``serve``'s) say where the twin is: its ports and folders.

Run it with ``python -m pipeline.local.aws``; ``flightpipe local up`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pipeline.core.contract import DAILY_FLIGHTS, ColumnType, header_names
from pipeline.core.errors import plain_error
from pipeline.core.logs import configure_logging
from pipeline.local import emulator
from pipeline.local.durable import DurableState
from pipeline.local.objects import aws_client
from pipeline.local.redshift_data import RedshiftDataApi
from pipeline.local.services import LocalServices, own_ports
from pipeline.local.validation import ValidationProcesses
from pipeline.settings import Settings, load_settings
from pipeline.workflow import JOB_RUN_IN_FLIGHT, LOAD_SCRIPT, VALIDATION_SCRIPT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipeline.local.etl import TwinLoad

log = logging.getLogger(__name__)

# What a Glue crawler infers for the contract's columns of a CSV file.
_CRAWLED_TYPES: Final = {ColumnType.INTEGER: "bigint"}


def glue_argv(job: Any, run: Any) -> list[str]:
    """The argument vector Glue hands the script of a job run (moto's job and run): the
    script's name, Glue's own ``--JOB_ID``, ``--JOB_RUN_ID`` and ``--JOB_NAME``, then the
    run's arguments. moto's run holds them as Glue resolves them: the job's DefaultArguments,
    overridden by the run's Arguments, then by the job's NonOverridableArguments
    (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-crawler-pyspark-extensions-python-intro.html).

    A Glue job has an id of its own; the twin's jobs have none, so theirs is named after the
    job.
    """
    own = {"--JOB_ID": f"j_{job.name}", "--JOB_RUN_ID": run.job_run_id, "--JOB_NAME": job.name}
    arguments = {**own, **(run.arguments or {})}
    return [_script(job), *itertools.chain.from_iterable(arguments.items())]


def _script(job: Any) -> str:
    return str(job.command.get("ScriptLocation", "")).rsplit("/", 1)[-1]


class RunEnds:
    """The ends of the twin's job runs, for the ``.sync`` tasks waiting on them.

    On AWS a ``glue:startJobRun.sync`` task learns of its run's end however Step Functions
    does; moto's polls GetJobRun through the endpoint every half second. With a burst's
    hundreds of runs queued, those polls alone kept the endpoint's one core busy. Here a task
    still reads its run's end through GetJobRun, but asks again only once the run has ended
    (``ended``, called as the twin's workers end it), or after ``_SYNC_CHECK_SECONDS`` for a
    run that something else ends.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def watch(self, run_id: str) -> threading.Event:
        """An event set once ``run_id`` ends: asked for before reading the run's state, so an
        end between the read and the wait is not missed."""
        with self._lock:
            return self._waiting.setdefault(run_id, threading.Event())

    def ended(self, run_id: str) -> None:
        with self._lock:
            event = self._waiting.pop(run_id, None)
        if event is not None:
            event.set()


@dataclass
class GlueWorkers:
    """Runs the work of Glue job runs and crawls.

    A job run executes its job's own entrypoint (``main`` of ``jobs.validation`` or
    ``jobs.flight_etl``) on the argument vector Glue would hand it, bound to the twin
    (``TwinValidation``, ``TwinLoad``) as Glue's bindings bind it to AWS. Validations run in
    ``validation_workers`` worker processes at once, each handed its runs by a thread of this
    process; loads one at a time beside them, on a thread of this process (a load's Spark job
    already uses every core; the workers yield the cores to it, ``validation_niceness``);
    crawls on their own thread, so a long load never holds up the next file's validation.
    """

    settings: Settings
    """This endpoint's own settings: its ports and folders, never a job run's."""
    ends: RunEnds = field(default_factory=RunEnds)
    validations: ValidationProcesses = field(init=False)
    _validations: ThreadPoolExecutor = field(init=False)
    _loads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="load")
    )
    _crawls: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="crawl")
    )
    _pending_validations: int = 0
    _unbuilt_reports: set[str] = field(default_factory=set)
    """The reports buckets the burst's validations recorded in: their index is not built."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _building: threading.Lock = field(default_factory=threading.Lock)
    """Held while a worker builds the report's index: the index has one writer at a time."""
    _spark_lock: threading.Lock = field(default_factory=threading.Lock)
    _spark: SparkSession | None = None

    def __post_init__(self) -> None:
        self.validations = ValidationProcesses(self.settings)
        # As many threads as workers: a thread that takes a run always finds a worker free.
        self._validations = ThreadPoolExecutor(
            len(self.validations.workers), thread_name_prefix="validation"
        )

    @property
    def spark(self) -> SparkSession:
        """The SparkSession every load shares, started on first use or by ``warm_up``."""
        with self._spark_lock:
            if self._spark is None:
                from pipeline.local.spark import local_spark

                self._spark = local_spark(self.settings.spark)
            return self._spark

    def _client(self, service: str) -> Any:
        """A client of this endpoint, as a job run on AWS has one of the service."""
        return aws_client(service, self.settings, LocalServices(self.settings).endpoint)

    # The load's binding imports its job: Spark's Python side takes seconds to import, so it
    # is imported on first use (or by ``warm_up``), once the port is open. It is made on the
    # load thread, the only one that uses it.
    @cached_property
    def load(self) -> TwinLoad:
        from pipeline.local.etl import TwinLoad

        return TwinLoad(
            self.settings,
            lambda: self.spark,
            self._client("s3"),
            self._client("sns"),
            self._client("stepfunctions"),
            self._client("cloudwatch"),
            LocalServices(self.settings).aws_log,
        )

    def warm_up(self) -> None:
        """Start Spark and the validation workers in the background, before the first run
        needs them."""

        def warm() -> None:
            self.validations.start()
            import pipeline.local.etl  # noqa: F401  (Spark's Python side takes seconds)

            _ = self.spark

        threading.Thread(target=warm, name="warm-up", daemon=True).start()

    def stop(self) -> None:
        """End the validation workers and Spark, with the endpoint."""
        self.validations.stop()
        with contextlib.suppress(Exception):
            if self._spark is not None:
                self._spark.stop()

    def install(self) -> None:
        """Hook moto's job runs and crawls to this object's workers."""
        from moto.glue import models
        from moto.glue.exceptions import ConcurrentRunsExceededException

        start_job_run = models.FakeJob.start_job_run
        starting = threading.Lock()
        start_crawler = models.FakeCrawler.start_crawler
        workers = self

        def start_run(job: Any, *args: Any, **kwargs: Any) -> str:
            # moto counts only STARTING and RUNNING runs against the job's maximum; a run the
            # twin holds WAITING for a worker was accepted within it and is in flight too. The
            # count and the start are one step: the server answers starts on many threads.
            with starting:
                in_flight = sum(run.status in JOB_RUN_IN_FLIGHT for run in job.job_runs)
                if in_flight >= job.execution_property.get("MaxConcurrentRuns", 1):
                    raise ConcurrentRunsExceededException(
                        f"Job with name {job.name} already running"
                    )
                run_id: str = start_job_run(job, *args, **kwargs)
            workers.submit(job, job.job_runs[-1])
            return run_id

        def start_crawl(crawler: Any) -> None:
            start_crawler(crawler)
            crawl = crawler.crawls[-1]
            workers._crawls.submit(workers._crawl, crawler, crawl)

        emulator.replace(models.FakeJob, "start_job_run", start_run)
        emulator.replace(models.FakeCrawler, "start_crawler", start_crawl)

    def submit(self, job: Any, run: Any) -> None:
        script = _script(job)
        argv = glue_argv(job, run)
        if script == VALIDATION_SCRIPT:
            with self._lock:
                self._pending_validations += 1
            # What Glue reports of a run waiting for resources
            # (https://docs.aws.amazon.com/glue/latest/dg/job-run-statuses.html): here, for a
            # free worker.
            run.status = "WAITING"
            self._validations.submit(self._run, run, self._validate, argv)
        elif script == LOAD_SCRIPT:
            self._loads.submit(self._run, run, self._load, argv)
        else:
            run.error_message = f"no local runner for the job script {script!r}"
            run.completed_on = dt.datetime.now(dt.UTC)
            run.status = "FAILED"
            self.ends.ended(run.job_run_id)

    def _run(self, run: Any, work: Callable[[list[str]], str | None], argv: list[str]) -> None:
        """Run ``work``, which returns None or the run's error in plain words, or raises."""
        run.status = "RUNNING"
        run.modified_on = started = dt.datetime.now(dt.UTC)
        try:
            error = work(argv)
        except Exception as exc:
            # As Glue, the run's message (which the alert quotes) is the error in plain words;
            # the whole of it goes to this process's log.
            log.warning("job run %s of %s failed", run.job_run_id, run.job_name, exc_info=True)
            error = plain_error(exc)
        if error is not None:
            run.error_message = error
        run.completed_on = run.modified_on = dt.datetime.now(dt.UTC)
        run.execution_seconds = round((run.completed_on - started).total_seconds())
        run.status = "FAILED" if error is not None else "SUCCEEDED"
        self.ends.ended(run.job_run_id)

    def _validate(self, argv: list[str]) -> str | None:
        """Validate in a worker process; the last validation of a burst builds the index."""
        recorded: frozenset[str] = frozenset()
        try:
            with self.validations.worker() as worker:
                outcome = worker.call("validate", argv)
            recorded = outcome.recorded
        finally:
            with self._lock:
                self._unbuilt_reports |= recorded
                self._pending_validations -= 1
                unbuilt: frozenset[str] = frozenset()
                if self._pending_validations == 0:
                    unbuilt, self._unbuilt_reports = frozenset(self._unbuilt_reports), set()
        if not unbuilt:
            return outcome.error
        # It reads every record, so once per burst, by one writer.
        with self._building, self.validations.worker() as worker:
            built = worker.call("build_reports", unbuilt)
        return outcome.error or built.error

    def _load(self, argv: list[str]) -> str | None:
        from jobs.flight_etl import main

        main(argv, self.load)
        return None

    def _crawl(self, crawler: Any, crawl: Any) -> None:
        """Register the validated files' schema: their header, typed as a crawler would."""
        try:
            _register_schema(crawler)
        except Exception as exc:
            log.warning("crawl of %s failed: %s", crawler.name, exc)
            crawl.status = "FAILED"
        else:
            crawl.status = "COMPLETED"
        crawl.end_time = dt.datetime.now(dt.UTC)


def _register_schema(crawler: Any) -> None:
    from moto.glue.exceptions import EntityNotFoundException
    from moto.s3.models import FakeKey, s3_backends

    backend = crawler.backend
    s3 = s3_backends[backend.account_id][backend.partition]
    for target in crawler.targets.get("S3Targets", []):
        bucket_name, _, prefix = target["Path"].removeprefix("s3://").partition("/")
        bucket = s3.get_bucket(bucket_name)
        # A key's latest version may be a delete marker (a copy a load set aside): no file.
        files = [
            key
            for name, key in bucket.keys.items()
            if name.startswith(prefix) and name.endswith(".csv") and isinstance(key, FakeKey)
        ]
        if not files:
            continue
        newest = max(files, key=lambda key: key.last_modified)
        header = header_names(newest.value.split(b"\n", 1)[0].decode("utf-8-sig"))
        columns = []
        for name in header:
            column = DAILY_FLIGHTS.column_for_header(name)
            kind = _CRAWLED_TYPES.get(column.type, "string") if column else "string"
            columns.append({"Name": name.lower(), "Type": kind})
        table = {
            "Name": (crawler.table_prefix or "") + prefix.strip("/").rsplit("/", 1)[-1],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "csv", "skip.header.line.count": "1"},
            "StorageDescriptor": {
                "Columns": columns,
                "Location": target["Path"],
                "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
                "SerdeInfo": {
                    "SerializationLibrary": ("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"),
                    "Parameters": {"field.delim": ","},
                },
            },
        }
        try:
            backend.update_table(crawler.database_name, table["Name"], table)
        except EntityNotFoundException:
            backend.create_table(crawler.database_name, table["Name"], table)


@dataclass
class AlertCapture:
    """Keeps every message published to an SNS topic, one JSON object per line per topic."""

    folder: Path

    def path(self, topic_arn: str) -> Path:
        return self.folder / f"{topic_arn.rsplit(':', 1)[-1]}.jsonl"

    def install(self) -> None:
        from moto.sns import models

        publish = models.Topic.publish
        capture = self
        lock = threading.Lock()

        def publish_and_keep(
            topic: Any, message: str, subject: str | None = None, **kw: Any
        ) -> str:
            message_id: str = publish(topic, message, subject, **kw)
            attributes = {
                name: value.get("Value") or value.get("StringValue")
                for name, value in (kw.get("message_attributes") or {}).items()
            }
            record = {
                "time": dt.datetime.now(dt.UTC).isoformat(),
                "topic": topic.arn,
                "message_id": message_id,
                "subject": subject,
                "attributes": attributes,
                "message": message,
            }
            capture.folder.mkdir(parents=True, exist_ok=True)
            with lock, open(capture.path(topic.arn), "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            return message_id

        emulator.replace(models.Topic, "publish", publish_and_keep)


def read_alerts(folder: Path, topic_arn: str) -> list[dict[str, Any]]:
    """The messages captured for a topic, oldest first."""
    path = AlertCapture(folder).path(topic_arn)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _start_execution(settings: Settings, endpoint: str) -> Callable[[str, str], None]:
    client = aws_client("stepfunctions", settings, endpoint)

    def start(state_machine_arn: str, event: str) -> None:
        # EventBridge names each execution it starts with a fresh id.
        client.start_execution(
            stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=event
        )

    return start


_SYNC_CHECK_SECONDS: Final = 5.0
"""How long a ``.sync`` task waits for its run's end before reading its state again."""


def _sync_job_runs_on_their_end(ends: RunEnds) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_glue as glue,
    )

    # moto sleeps this after each read that finds the run unfinished: the wait below is the
    # task's wait instead.
    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = 0  # type: ignore[misc]
    build = glue.StateTaskServiceGlue._build_sync_resolver

    def on_end(self: Any, *args: Any, **kwargs: Any) -> Callable[[], Any] | None:
        # The StartJobRun result the resolver is built from (and pops).
        run_id: str = kwargs["env"].stack[-1]["JobRunId"]
        resolve = build(self, *args, **kwargs)
        if resolve is None:
            return None

        def read_at_end() -> Any:
            end = ends.watch(run_id)
            outcome = resolve()
            if outcome:
                ends.ended(run_id)  # the read saw the end first: nothing waits any more
            else:
                end.wait(_SYNC_CHECK_SECONDS)
            return outcome

        return read_at_end

    emulator.replace(glue.StateTaskServiceGlue, "_build_sync_resolver", on_end)


def serve(settings: Settings) -> None:
    """Serve the twin's AWS endpoint until SIGTERM or SIGINT."""
    port = settings.local.s3_port
    # The state machine interpreter calls the services back on this port.
    os.environ["MOTO_PORT"] = str(port)
    from moto.core.config import default_user_config
    from moto.moto_api import state_manager
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    emulator.apply(_start_execution(settings, LocalServices(settings).endpoint))
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    # Job runs and crawls end when their work does, never by moto's clock.
    for model in ("glue::job_run", "glue::crawl"):
        state_manager.set_transition(model, {"progression": "manual", "times": sys.maxsize})
    workers = GlueWorkers(settings)
    workers.install()
    _sync_job_runs_on_their_end(workers.ends)
    AlertCapture(settings.local.state_dir / "alerts").install()
    RedshiftDataApi(
        LocalServices(settings).warehouse_url,
        aws_client("s3", settings, LocalServices(settings).endpoint),
    ).install()
    # Restored before the first request, so no upload lands in a bucket about to be restored.
    durable = DurableState(settings.local.state_dir)
    durable.restore()
    durable.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    durable.start()
    if settings.local.warm_up:
        workers.warm_up()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("local AWS endpoint serving on port %d", port)
    stop.wait()
    try:
        # While still serving: `local down` kills the process once the port closes.
        durable.stop()
    finally:
        server.stop()
        workers.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--settings", help="the settings as JSON (default: loaded from FLIGHTPIPE_* variables)"
    )
    args = parser.parse_args(argv)
    configure_logging(json_lines=False, verbose=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    settings = Settings.model_validate_json(args.settings) if args.settings else load_settings()
    serve(own_ports(settings))


if __name__ == "__main__":
    main()
