"""The flight load's Glue entrypoint: ``main`` binds ``jobs.load.run`` to the Glue bookmarked
source, S3 and Redshift, runs it and commits the bookmark (the only module that imports
``awsglue.job``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from jobs.alerts import SnsRejectionAlerts
from jobs.glue_source import GlueBookmarkedSource, S3AirportSource
from jobs.load import LoadResult, run
from jobs.redshift import RedshiftWarehouse
from pipeline.core.errors import plain_error
from pipeline.core.logs import configure_logging
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


def main(argv: Sequence[str]) -> LoadResult:
    """The Glue entrypoint: bind the job to Glue, S3 and Redshift, run it, commit the bookmark."""
    import boto3
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    configure_logging(json_lines=True, verbose=True)
    settings, args = parse_arguments(argv)
    storage = settings.storage
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(args["JOB_NAME"], args)
    job_run_id = args["JOB_RUN_ID"]
    where = f"CloudWatch log group {GLUE_LOG_GROUP}, stream {job_run_id}"
    s3 = boto3.client("s3")
    source = GlueBookmarkedSource(
        glue_context,
        args["validated_uri"],
        s3,
        max_header_bytes=settings.quality.max_line_bytes,
        raw_prefix=storage.raw_prefix,
        quarantine_prefix=storage.quarantine_prefix,
    )
    try:
        result = run(
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
            job_run_id=job_run_id,
            alerts=SnsRejectionAlerts(
                boto3.client("sns"),
                boto3.client("stepfunctions"),
                topic_arn=args["alert_topic_arn"],
                state_machine_arn=args["state_machine_arn"],
                env=settings.env,
                quarantine_prefix=storage.quarantine_prefix,
                log_location=where,
            ),
        )
    except Exception as exc:
        # The run's ErrorMessage is what the alert quotes: one plain line, not a JVM trace.
        log.exception("load failed")
        raise LoadFailedError(f"{plain_error(exc)} (full log: {where})") from None
    # The bookmark advances only after the warehouse transaction committed.
    job.commit()
    return result


if __name__ == "__main__":
    main(sys.argv)
