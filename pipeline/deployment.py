"""The pipeline's AWS resources as data: what the CDK app (``cdk/``) deploys and the twin
(``pipeline.local.resources``) provisions, from one ``Settings``.

Names, the Glue jobs' and crawlers' definitions, the event patterns, the alert topic's
subscriptions and the values of the state machines' placeholders are made here once; CDK and
the twin only turn them into a template or into API calls. Where a value is a name AWS gives
(a bucket named after the deploying account, a topic's ARN), the caller passes it: CDK a token,
the twin its endpoint's. ``tests/test_cdk_parity.py`` holds the two sides to each other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pipeline.settings import Environment, GlueJobSettings, Settings
from pipeline.workflow import LOAD_SCRIPT, VALIDATION_SCRIPT, ZIP_NAME, job_arguments

ARTIFACTS: Final = "artifacts"
"""The purpose of the bucket the Glue artifact (``make package``) is deployed to."""
ARTIFACT_PREFIX: Final = "glue/"
"""Where in the artifacts bucket the entry scripts and the wheels zip are, by their own names."""
GLUE_TEMPORARY_PREFIX: Final = "glue-temporary/"
GLUE_VERSION: Final = "5.1"


@dataclass(frozen=True)
class Names:
    """The names of one environment's resources."""

    validation_job: str
    load_job: str
    flight_crawler: str
    dimension_crawler: str
    warehouse_crawler: str
    database: str
    connection: str
    namespace: str
    security_configuration: str
    topic: str
    operations_topic: str
    main: str
    router: str
    upload_rule: str
    dimension_rule: str
    deploy_role: str
    """The role a deployment job of this environment assumes through GitHub's OIDC provider
    (the delivery stack, ``cdk/delivery.py``)."""
    review_role: str
    """The read-only role a pull request's report assumes to diff against this environment."""
    smoke_role: str
    """The role ``flightpipe smoke`` runs under after a deployment: the deploy role assumes it."""

    @classmethod
    def of(cls, settings: Settings) -> Names:
        name = settings.resource_name
        return cls(
            validation_job=name("validate"),
            load_job=name("load"),
            flight_crawler=name("validated-crawler"),
            dimension_crawler=name("dimension-crawler"),
            warehouse_crawler=name("warehouse-crawler"),
            database=name("catalog").replace("-", "_"),
            connection=name("warehouse"),
            namespace=name("warehouse"),
            security_configuration=name("encryption"),
            topic=name("alerts"),
            operations_topic=name("operations"),
            main=name("run"),
            router=name("router"),
            upload_rule=name("uploads"),
            dimension_rule=name("dimension-uploads"),
            deploy_role=name("deploy"),
            review_role=name("review"),
            smoke_role=name("smoke"),
        )


@dataclass(frozen=True)
class GlueJob:
    """One Glue job's definition, as CreateJob takes it."""

    name: str
    script: str
    default_arguments: Mapping[str, str]
    max_concurrent_runs: int
    timeout_minutes: int
    worker_type: str
    workers: int
    execution_class: Literal["STANDARD", "FLEX"]
    security_configuration: str
    """Encrypts the runs' CloudWatch logs and job bookmarks with the pipeline's key."""
    connections: tuple[str, ...] = ()
    """The Glue connections a run's network interfaces are placed by: the load runs in the
    warehouse's subnets, beside the workgroup it loads."""
    command: str = "glueetl"
    """A Spark job, run with Python 3."""
    max_retries: int = 0
    """The state machine retries what is worth retrying and counts the attempts; a Glue retry
    beside it would run a failed validation or load again unseen."""
    run_queuing: bool = False
    """Never: a start beyond the maximum must be refused (ConcurrentRunsExceededException),
    since that is how a run learns to wait for the runs in flight and read its result."""

    def script_location(self, artifacts_bucket: str) -> str:
        return f"s3://{artifacts_bucket}/{ARTIFACT_PREFIX}{self.script}"


def glue_jobs(settings: Settings, artifacts_bucket: str) -> tuple[GlueJob, GlueJob]:
    """The validation job and the bookmarked load job."""
    names = Names.of(settings)
    workflow = settings.workflow
    # Glue installs the artifact's wheels from the zip alone, never from an index
    # (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html);
    # the special parameters are in
    # https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-glue-arguments.html.
    arguments = {
        **job_arguments(settings),
        "--job-language": "python",
        "--additional-python-modules": (f"s3://{artifacts_bucket}/{ARTIFACT_PREFIX}{ZIP_NAME}"),
        "--python-modules-installer-option": "--no-index",
        "--enable-metrics": "true",
        "--enable-observability-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--TempDir": f"s3://{artifacts_bucket}/{GLUE_TEMPORARY_PREFIX}",
    }
    # A Glue run is stopped at its timeout, in whole minutes; the state machine's own wait is
    # the same, so neither outlives the other.
    timeout = math.ceil(workflow.job_timeout_seconds / 60)
    # The twin validates in its worker processes: a run beyond them would only wait.
    validations = workflow.validation_max_concurrent_runs
    if settings.env is Environment.LOCAL:
        validations = min(validations, settings.local.validation_workers)

    def job(name: str, script: str, glue: GlueJobSettings, **kwargs: Any) -> GlueJob:
        return GlueJob(
            name=name,
            script=script,
            timeout_minutes=timeout,
            worker_type=glue.worker_type,
            workers=glue.workers,
            execution_class="FLEX" if glue.flex else "STANDARD",
            security_configuration=names.security_configuration,
            **kwargs,
        )

    return (
        job(
            names.validation_job,
            VALIDATION_SCRIPT,
            settings.aws.validation_job,
            default_arguments=arguments,
            max_concurrent_runs=validations,
        ),
        # One load at a time: bookmarks need it, and the state machine waits out a running load.
        job(
            names.load_job,
            LOAD_SCRIPT,
            settings.aws.load_job,
            default_arguments={**arguments, "--job-bookmark-option": "job-bookmark-enable"},
            max_concurrent_runs=1,
            # A workgroup deployed elsewhere comes with no connection of this stack's.
            connections=() if settings.aws.existing_workgroup else (names.connection,),
        ),
    )


@dataclass(frozen=True)
class Crawler:
    """One Glue crawler: what it crawls, and what starts it."""

    name: str
    bucket: str | None
    """The purpose of the bucket it crawls (``raw``, ``dim``), or None: the warehouse."""
    s3_path: str | None
    jdbc_path: str | None
    schedule: str | None
    started_by: str
    """What starts it (documentation, shown in the template's description)."""


WAREHOUSE_CRAWL_SCHEDULE: Final = "cron(15 3 * * ? *)"
"""When the warehouse crawler runs besides after each migration: nightly, off the upload hours."""


def crawlers(settings: Settings, raw_bucket: str, dimension_bucket: str) -> tuple[Crawler, ...]:
    """The crawlers over the validated daily files, the validated dimension and the warehouse
    table (through the Glue connection; the twin creates it but cannot crawl it)."""
    names = Names.of(settings)
    validated = settings.storage.validated_prefix
    return (
        Crawler(
            names.flight_crawler,
            bucket="raw",
            s3_path=f"s3://{raw_bucket}/{validated}",
            jdbc_path=None,
            schedule=None,
            started_by="the main state machine, before each load",
        ),
        Crawler(
            names.dimension_crawler,
            bucket="dim",
            s3_path=f"s3://{dimension_bucket}/{validated}",
            jdbc_path=None,
            schedule=None,
            started_by="the main state machine, when a new dimension is promoted",
        ),
        Crawler(
            names.warehouse_crawler,
            bucket=None,
            s3_path=None,
            jdbc_path=f"{settings.warehouse.database}/public/flight_processed",
            schedule=WAREHOUSE_CRAWL_SCHEDULE,
            started_by="its schedule, and the warehouse migrations after each one",
        ),
    )


EVENT_RETRIES: Final = 185
EVENT_MAX_AGE_SECONDS: Final = 24 * 3600
"""How long EventBridge retries delivering an upload's event to the router (its most: 185
attempts over 24 hours, https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html)
before the event goes to the dead-letter queue."""


def upload_events(settings: Settings, raw_bucket: str) -> dict[str, Any]:
    """The EventBridge pattern of daily-file uploads: objects created under the raw prefix."""
    return _created(raw_bucket, [{"prefix": settings.storage.raw_prefix}])


def dimension_events(settings: Settings, dimension_bucket: str) -> dict[str, Any]:
    """The EventBridge pattern of dimension uploads."""
    return _created(dimension_bucket, [settings.storage.dimension_key])


def _created(bucket: str, keys: list[Any]) -> dict[str, Any]:
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": keys}},
    }


@dataclass(frozen=True)
class Subscription:
    """One subscription to the alert topic."""

    protocol: Literal["email", "sms"]
    endpoint: str
    filter_policy: Mapping[str, list[str]]


FAILURES_ONLY: Final = {"outcome": ["failed"]}
"""Failures page on-call; success messages stay on the topic for whoever wants them."""


def subscriptions(settings: Settings) -> tuple[Subscription, ...]:
    """On-call's subscriptions to the alert topic: every address and number, failures only."""
    workflow = settings.workflow
    return (
        *(Subscription("email", email, FAILURES_ONLY) for email in workflow.on_call_emails),
        *(Subscription("sms", number, FAILURES_ONLY) for number in workflow.on_call_sms),
    )


def filter_policy_json(subscription: Subscription) -> str:
    return json.dumps(subscription.filter_policy)


def substitutions(
    settings: Settings,
    buckets: Mapping[str, str],
    *,
    alert_topic_arn: str,
    copy_role_arn: str,
    reports_url: str | None = None,
) -> dict[str, str]:
    """The values of the main state machine's placeholders (``pipeline.workflow.PLACEHOLDERS``),
    ``buckets`` by purpose; the router's adds ``MainStateMachineArn``. ``reports_url``: where
    the report site is opened; None (the twin) its ``s3://`` location."""
    names = Names.of(settings)
    return {
        "ValidationJobName": names.validation_job,
        "EtlJobName": names.load_job,
        "CrawlerName": names.flight_crawler,
        "DimensionCrawlerName": names.dimension_crawler,
        "AlertTopicArn": alert_topic_arn,
        "RedshiftCopyRoleArn": copy_role_arn,
        "RawBucket": buckets["raw"],
        "DimensionBucket": buckets["dim"],
        "StagingBucket": buckets["staging"],
        "ReportsBucket": buckets["reports"],
        "WorkgroupName": settings.warehouse.workgroup,
        "DatabaseName": settings.warehouse.database,
        "ReportsUrl": reports_url or f"s3://{buckets['reports']}/{settings.storage.reports_prefix}",
    }
