"""The flight load's entrypoint: ``main`` parses the run's Glue arguments, binds
``jobs.load.run`` to where it runs and runs it. On AWS Glue (``GlueLoad``, the only binding
that imports ``awsglue.job``) that is the Glue bookmarked source, S3 and Redshift, and the
bookmark commits after the load; the twin's endpoint passes its own binding
(``pipeline.local.etl.TwinLoad``)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from jobs.alerts import SnsRejectionAlerts
from jobs.glue_source import GlueBookmarkedSource, S3AirportSource
from jobs.load import AirportSource, FlightSource, LoadResult, Warehouse, run
from jobs.redshift import RedshiftWarehouse
from pipeline.core.errors import plain_error
from pipeline.core.logs import configure_logging
from pipeline.core.metrics import client_config, put_metrics
from pipeline.core.settings import JobSettings

log = logging.getLogger(__name__)


GLUE_ARGUMENTS = (
    "JOB_NAME",
    "settings",
    "validated_uri",
    "dimension_uri",
    "staging_uri",
    "redshift_workgroup",
    "redshift_database",
    "redshift_copy_role_arn",
    "alert_topic_arn",
    "state_machine_arn",
)
"""What the entrypoint asks ``getResolvedOptions`` for. Not ``JOB_RUN_ID``: Glue's parser
registers ``--JOB_ID`` and ``--JOB_RUN_ID`` itself (asking again is an argparse conflict) and
returns them whatever is asked; Glue passes both to every run. ``--settings`` is a default
argument of the job (``pipeline.workflow.job_arguments``); the state machine passes the rest."""


def parse_arguments(argv: Sequence[str]) -> tuple[JobSettings, dict[str, str]]:
    """The job settings and every argument of one run, from the argument vector Glue hands
    the script. The locations the job reads and writes are the run's arguments."""
    from awsglue.utils import getResolvedOptions

    args: dict[str, str] = getResolvedOptions(list(argv), list(GLUE_ARGUMENTS))
    return JobSettings.model_validate_json(args["settings"]), args


GLUE_LOG_GROUP = "/aws-glue/jobs/error"
"""Where a Glue job's errors are logged, one stream per job run id."""


class LoadFailedError(RuntimeError):
    """The load job failed; the message is the cause in one line and where the full log is."""


@dataclass(frozen=True)
class LoadBinding:
    """What one load run reads, writes and alerts through, bound to where it runs."""

    flights: FlightSource
    airports: AirportSource
    warehouse: Warehouse
    sns: Any
    stepfunctions: Any
    """The clients the load alerts with (``SnsRejectionAlerts``)."""
    cloudwatch: Any
    """The client the load puts its metrics with, once the block ended."""


class LoadRuntime(Protocol):
    """Where a load run runs: AWS Glue (``GlueLoad``) or the twin's endpoint."""

    def log_location(self, job_run_id: str) -> str:
        """Where the run's whole log is, in words, for the messages on-call reads."""
        ...

    def bind(
        self, settings: JobSettings, args: Mapping[str, str]
    ) -> AbstractContextManager[LoadBinding]:
        """The run's I/O for the block, from the run's arguments. The block ends after the
        warehouse transaction committed; a bookmark kept apart from the warehouse advances
        then, and only if the block raised nothing."""
        ...


class GlueLoad:
    """AWS Glue: logs in JSON lines for CloudWatch, the Glue job bookmark over the validated
    files (``job.init`` before the read, ``job.commit`` after the load), S3, SNS, Step
    Functions and CloudWatch through boto3, and Redshift through the Data API."""

    def log_location(self, job_run_id: str) -> str:
        return f"CloudWatch log group {GLUE_LOG_GROUP}, stream {job_run_id}"

    @contextmanager
    def bind(self, settings: JobSettings, args: Mapping[str, str]) -> Iterator[LoadBinding]:
        import boto3
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from pyspark.context import SparkContext

        configure_logging(json_lines=True, verbose=True)
        storage = settings.storage
        glue_context = GlueContext(SparkContext.getOrCreate())
        job = Job(glue_context)
        job.init(args["JOB_NAME"], dict(args))
        source = GlueBookmarkedSource(
            glue_context,
            args["validated_uri"],
            boto3.client("s3"),
            max_header_bytes=settings.quality.max_line_bytes,
            raw_prefix=storage.raw_prefix,
            quarantine_prefix=storage.quarantine_prefix,
        )
        yield LoadBinding(
            source,
            S3AirportSource(glue_context.spark_session, args["dimension_uri"]),
            RedshiftWarehouse(
                boto3.client("redshift-data"),
                spark=glue_context.spark_session,
                workgroup=args["redshift_workgroup"],
                database=args["redshift_database"],
                staging_uri=args["staging_uri"],
                copy_role_arn=args["redshift_copy_role_arn"],
                # Spark read the copies' current versions: still the ones listed, or stop.
                before_commit=source.confirm_read,
            ),
            boto3.client("sns"),
            boto3.client("stepfunctions"),
            boto3.client("cloudwatch", config=client_config()),
        )
        # The bookmark advances only after the warehouse transaction committed.
        job.commit()


def main(argv: Sequence[str], runtime: LoadRuntime | None = None) -> LoadResult:
    """The entrypoint: bind the load to where it runs (Glue unless ``runtime`` is given), run
    it over what is new, and let the binding advance its bookmark.

    ``argv`` is the run's argument vector as Glue hands it over; the job run id in it names
    the run in the audit, the log and the alerts. Once the binding's block ended (the
    warehouse transaction committed, then the bookmark), the run puts its metrics
    (``LoadResult.metrics``); a run that failed puts none, and a metric that cannot be put
    fails nothing.
    """
    settings, args = parse_arguments(argv)
    runtime = runtime or GlueLoad()
    job_run_id = args["JOB_RUN_ID"]
    where = runtime.log_location(job_run_id)
    try:
        with runtime.bind(settings, args) as bound:
            result = run(
                bound.flights,
                bound.airports,
                bound.warehouse,
                job_run_id=job_run_id,
                alerts=SnsRejectionAlerts(
                    bound.sns,
                    bound.stepfunctions,
                    topic_arn=args["alert_topic_arn"],
                    state_machine_arn=args["state_machine_arn"],
                    env=settings.env,
                    quarantine_prefix=settings.storage.quarantine_prefix,
                    log_location=where,
                ),
            )
            committed_at = dt.datetime.now(dt.UTC)  # ``run`` returns once it committed
    except Exception as exc:
        # The run's ErrorMessage is what the alert quotes: one plain line, not a JVM trace.
        log.exception("load failed")
        raise LoadFailedError(f"{plain_error(exc)} (full log: {where})") from None
    # After the block: the twin's run lock is free by now, and a slow CloudWatch holds up
    # neither the bookmark nor the next load.
    put_metrics(bound.cloudwatch, settings.env, result.metrics(committed_at), committed_at)
    return result


if __name__ == "__main__":
    main(sys.argv)
