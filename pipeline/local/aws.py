"""The local twin's AWS side: moto's services in one long-lived process, doing the real work.

moto serves S3, Glue, SNS, EventBridge and Step Functions (executing the deployed ASL). In
moto, Glue job runs and crawls only change state; here they run the project's code:

- a job run executes the script its job names (``validation.py`` or ``flight_etl.py``) with
  the run's arguments, on worker threads of this process, the loads in one SparkSession shared
  by every run; the run is RUNNING meanwhile, then SUCCEEDED or FAILED with the error;
- a crawl registers the schema of the validated daily files in the Glue catalog;
- a Redshift Data API statement runs on the twin's PostgreSQL (``pipeline.local.redshift_data``);
- every message published to an SNS topic is also appended to
  ``<state>/alerts/<topic>.jsonl``, which ``flightpipe alerts`` reads;
- the buckets and finished runs are kept under ``<state>/aws/`` and restored when the endpoint
  starts again (``pipeline.local.durable``).

The local settings a job runs with travel in its ``--local_settings`` default argument, set
when ``pipeline.local.resources`` creates the job, much as a deployed job gets ``--env``.

Run it with ``python -m pipeline.local.aws``; ``flightpipe local up`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pipeline.core.contract import DAILY_FLIGHTS, ColumnType, header_names
from pipeline.core.errors import plain_error
from pipeline.local import emulator
from pipeline.local.durable import DurableState
from pipeline.local.objects import aws_client
from pipeline.local.redshift_data import RedshiftDataApi
from pipeline.local.services import LocalServices, own_ports
from pipeline.settings import Settings, SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipeline.local.twin import LocalTwin

log = logging.getLogger(__name__)

LOCAL_SETTINGS_ARGUMENT: Final = "--local_settings"
"""The job argument holding the settings (JSON) a local job run works with."""

VALIDATION_SCRIPT: Final = "validation.py"
LOAD_SCRIPT: Final = "flight_etl.py"

# What a Glue crawler infers for the contract's columns of a CSV file.
_CRAWLED_TYPES: Final = {ColumnType.INTEGER: "bigint"}


@cache
def _twin(settings_json: str) -> LocalTwin:
    from pipeline.local.twin import LocalTwin

    return LocalTwin(Settings.model_validate_json(settings_json))


def run_twin(arguments: Mapping[str, str]) -> LocalTwin:
    """The twin a job run works in, from the settings its job was created with."""
    try:
        return _twin(arguments[LOCAL_SETTINGS_ARGUMENT])
    except KeyError:
        raise ValueError(
            f"the job has no {LOCAL_SETTINGS_ARGUMENT} argument: create it with "
            "`flightpipe local up`"
        ) from None


@dataclass
class GlueWorkers:
    """Runs the work of Glue job runs and crawls on threads of this process.

    Validations run one at a time (the gate and its report store are not built for threads),
    loads one at a time beside them (a load's Spark job already uses every core), crawls on
    their own thread, so a long load never holds up the next file's validation.
    """

    spark_settings: SparkSettings
    log_path: Path
    """This process's log, where a failed job run's whole error is."""
    _validations: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="validation")
    )
    _loads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="load")
    )
    _crawls: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="crawl")
    )
    _pending_validations: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _spark_lock: threading.Lock = field(default_factory=threading.Lock)
    _spark: SparkSession | None = None

    @property
    def spark(self) -> SparkSession:
        """The SparkSession every load shares, started on first use or by ``warm_up``."""
        with self._spark_lock:
            if self._spark is None:
                from pipeline.local.spark import local_spark

                self._spark = local_spark(self.spark_settings)
            return self._spark

    def warm_up(self) -> None:
        """Start Spark and import the gate in the background, before the first run needs them."""

        def warm() -> None:
            import jobs.validation  # noqa: F401  (GX takes seconds to import)

            _ = self.spark

        threading.Thread(target=warm, name="warm-up", daemon=True).start()

    def install(self) -> None:
        """Hook moto's job runs and crawls to this object's workers."""
        from moto.glue import models

        start_job_run = models.FakeJob.start_job_run
        start_crawler = models.FakeCrawler.start_crawler
        workers = self

        def start_run(job: Any, *args: Any, **kwargs: Any) -> str:
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
        script = job.command.get("ScriptLocation", "").rsplit("/", 1)[-1]
        if script == VALIDATION_SCRIPT:
            with self._lock:
                self._pending_validations += 1
            self._validations.submit(self._run, run, self._validate)
        elif script == LOAD_SCRIPT:
            self._loads.submit(self._run, run, self._load)
        else:
            run.error_message = f"no local runner for the job script {script!r}"
            run.status = "FAILED"
            run.completed_on = dt.datetime.now(dt.UTC)

    def _run(self, run: Any, work: Callable[[Mapping[str, str]], None]) -> None:
        run.status = "RUNNING"
        started = dt.datetime.now(dt.UTC)
        try:
            work(run.arguments or {})
        except Exception as exc:
            # The whole error goes to this process's log; the run's message, which the alert
            # quotes, is its plain lines and where that log is.
            log.warning("job run %s of %s failed", run.job_run_id, run.job_name, exc_info=True)
            run.error_message = f"{plain_error(exc)}\n(full log: {self.log_path})"
            run.status = "FAILED"
        else:
            run.status = "SUCCEEDED"
        finally:
            run.completed_on = dt.datetime.now(dt.UTC)
            run.execution_seconds = round((run.completed_on - started).total_seconds())

    def _validate(self, arguments: Mapping[str, str]) -> None:
        from jobs.validation import QuarantinedError
        from pipeline.core.uploads import Upload

        twin = run_twin(arguments)
        upload = Upload(arguments["--bucket"], arguments["--key"], arguments["--version_id"])
        try:
            validated = twin.validate(upload, build_report=False)
        finally:
            with self._lock:
                self._pending_validations -= 1
                last = self._pending_validations == 0
            # The index's one writer here: it reads every record, so once per burst.
            if last:
                twin.reports.build()
        alert = validated.alert()
        if alert is not None:
            raise QuarantinedError(alert)

    def _load(self, arguments: Mapping[str, str]) -> None:
        from jobs.alerts import SnsRejectionAlerts
        from pipeline.local.etl import run_local_etl

        twin = run_twin(arguments)
        # The state machine hands the load the alert topic and its own ARN, as on AWS.
        alerts = SnsRejectionAlerts(
            twin.client("sns"),
            twin.client("stepfunctions"),
            topic_arn=arguments["--alert_topic_arn"],
            state_machine_arn=arguments["--state_machine_arn"],
            env=twin.settings.env.value,
            quarantine_prefix=twin.settings.storage.quarantine_prefix,
            log_location=str(self.log_path),
        )
        run_local_etl(twin.settings, self.spark, twin.s3, twin.warehouse, alerts)

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
    from moto.s3.models import s3_backends

    backend = crawler.backend
    s3 = s3_backends[backend.account_id][backend.partition]
    for target in crawler.targets.get("S3Targets", []):
        bucket_name, _, prefix = target["Path"].removeprefix("s3://").partition("/")
        bucket = s3.get_bucket(bucket_name)
        files = [
            key
            for name, key in bucket.keys.items()
            if name.startswith(prefix) and name.endswith(".csv")
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


def serve(settings: Settings) -> None:
    """Serve the twin's AWS endpoint until SIGTERM or SIGINT."""
    import os

    port = settings.local.s3_port
    # The state machine interpreter calls the services back on this port.
    os.environ["MOTO_PORT"] = str(port)
    from moto.core.config import default_user_config
    from moto.moto_api import state_manager
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    emulator.apply(_start_execution(settings, LocalServices(settings).endpoint))
    # moto polls a .sync job run every 0.5 s; local job runs take about a second.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )

    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = 0.1  # type: ignore[misc]
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    # Job runs and crawls end when their work does, never by moto's clock.
    for model in ("glue::job_run", "glue::crawl"):
        state_manager.set_transition(model, {"progression": "manual", "times": sys.maxsize})
    workers = GlueWorkers(settings.spark, LocalServices(settings).aws_log)
    workers.install()
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
    with contextlib.suppress(Exception):
        if workers._spark is not None:
            workers._spark.stop()


def main(argv: list[str] | None = None) -> None:
    from pipeline.core.logs import configure_logging
    from pipeline.settings import load_settings

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
