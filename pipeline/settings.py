"""Typed settings, one object per environment, loaded once at the edge and passed down.

``load_settings`` is the only place that reads environment variables (``FLIGHTPIPE_*``) for
settings; every other module receives a ``Settings`` (or the part of it that it needs).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.core.settings import (
    Buckets,
    FrozenModel,
    JobSettings,
    QualitySettings,
    StorageSettings,
    ValidationSettings,
)

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
BUCKET_PURPOSES: Final = ("raw", "dim", "staging", "reports")
UPLOADED_BUCKETS: Final = ("raw", "dim")
"""The buckets files are uploaded to: versioned (a run names the version it validates and
loads), their events sent to EventBridge, on AWS and on the twin."""


class Environment(StrEnum):
    LOCAL = "local"
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class WarehouseSettings(FrozenModel):
    """The warehouse: a PostgreSQL URL locally (None: the local twin's own server)."""

    url: str | None = None
    database: str = "flightpipe"
    reader_url: str | None = None
    """Where ``flightpipe query`` connects: a user that may only read the warehouse tables.
    None: the twin's own server's read-only role (with ``url`` set, it must be given)."""
    query_timeout_seconds: float = Field(default=60.0, gt=0)
    """How long one ``flightpipe query`` statement may run before it is cancelled."""
    workgroup: str = "flightpipe"
    """The Redshift Serverless workgroup the load and the row count's query run in on AWS."""


class SparkSettings(FrozenModel):
    master: str = "local[*]"
    driver_memory: str = "2g"
    # Small input splits keep both cores busy on a single large daily file, and the first
    # staged part (the warehouse COPY's first work) comes sooner.
    max_partition_bytes: int = 4 * 1024 * 1024
    # What opening a file costs, in bytes of reading: Spark packs small daily files into one
    # task up to max_partition_bytes, counting this much per file (a dozen days of a thousand
    # flights share a task; a day of 100,000 has one to itself).
    file_open_cost_bytes: int = 256 * 1024
    # The throughput collector: a batch job has no pauses to avoid, and on two cores G1's
    # concurrent work takes CPU from the load itself.
    java_options: str = "-XX:+UseParallelGC"


class LocalSettings(FrozenModel):
    """The local twin: its state folder (git-ignored) and the ports of its services."""

    state_dir: Path = REPO_ROOT / ".flightpipe"
    s3_port: int = Field(default=0, ge=0, le=65535)
    """The AWS endpoint's port. 0: this state folder's own, chosen free when its twin first
    starts and recorded in ``<state_dir>/ports.json``, so two checkouts never share a twin."""
    postgres_port: int = Field(default=0, ge=0, le=65535)
    """PostgreSQL's port; 0 as for ``s3_port``."""
    account: str = "000000000000"
    """The twin's AWS account, in its bucket names and role ARNs (on AWS, CDK names the
    buckets and the definitions never hold an account)."""
    region: str = "us-east-1"
    follow_timeout_seconds: float = 1800.0
    """How long ``flightpipe ingest`` follows the runs its uploads started."""
    warm_up: bool = True
    """Start Spark and the validation workers (each importing the gate) when the local AWS
    endpoint starts, not at the first run."""
    validation_workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    """Worker processes the endpoint runs validation runs in, each one at a time; a run waits
    (WAITING) for a free one. Processes, because the gate is Python and pandas: threads of one
    process share one core under the GIL. Default: the machine's cores, since a validation
    keeps one core busy, more would only share the cores, and each holds its own GX and file
    in memory."""
    validation_niceness: int = Field(default=10, ge=0, le=19)
    """How much lower the validation workers' CPU priority is than the endpoint's (a Unix
    nice increment): when a load's Spark and a burst's validations both want the cores, the
    load gets them, so validations never starve the load that a burst waits for."""


class TimingSettings(FrozenModel):
    """Poll intervals and retry delays; short locally, AWS-sized elsewhere."""

    poll_interval_seconds: float = 0.2
    service_start_timeout_seconds: float = 30.0
    lock_wait_seconds: float = 0.0


class WorkflowSettings(FrozenModel):
    """The numbers of the state machines (``pipeline.workflow``): polls, timeouts, retries.

    Whole seconds: Amazon States Language takes integers for waits, intervals and timeouts.
    Retries back off exponentially up to a cap, with full jitter (each delay is drawn between
    zero and the computed one), so retries of many runs spread out instead of colliding.
    """

    on_call_emails: tuple[str, ...] = ()
    """Addresses subscribed to the alert topic for failures (success messages are filtered out)."""
    on_call_sms: tuple[str, ...] = ()
    """Phone numbers (E.164, ``+15555550100``) paged by SMS for failures, likewise."""
    crawler_poll_seconds: int = Field(default=1, ge=1)
    crawl_timeout_seconds: int = Field(default=120, ge=1)
    """How long a started crawl may take before the run fails as stuck."""
    job_timeout_seconds: int = Field(default=900, ge=1)
    """How long the state machine waits for one Glue job run (validation or load)."""
    api_timeout_seconds: int = Field(default=30, ge=1)
    """How long one AWS API call of the state machine (start or get the crawler) may take."""
    statement_poll_seconds: int = Field(default=1, ge=1)
    """How often the row count's query is described (DescribeStatement) until it has ended."""
    statement_timeout_seconds: int = Field(default=120, ge=1)
    """How long the row count's warehouse query may run before the run fails as stuck."""

    transient_retry_interval_seconds: int = Field(default=1, ge=1)
    transient_retry_backoff_rate: float = Field(default=2.0, ge=1)
    transient_retry_max_delay_seconds: int = Field(default=4, ge=1)
    transient_retry_attempts: int = Field(default=3, ge=0)
    """Retries of a throttled call, an AWS service error or an API timeout."""

    validation_max_concurrent_runs: int = Field(default=2, ge=1)
    """The validation job's maximum concurrency. Each run validates the uploads waiting beside
    its own, so a few runs validate a burst: a start refused at the maximum waits for the runs
    in flight and reads its upload's result (on the twin, at most its worker processes)."""
    validation_attempts: int = Field(default=5, ge=1)
    """Validation runs a run tries to start (each refused start waits for the runs in flight,
    bounded as the burst wait is) before it fails with its upload still not validated."""

    burst_poll_seconds: int = Field(default=10, ge=1)
    burst_wait_seconds: int = Field(default=600, ge=1)
    """After its validation, a run waits while other validation runs are in flight, looking
    every ``burst_poll_seconds``, for at most ``burst_wait_seconds``, so a burst's runs reach
    the crawl and the load together and one of each serves them all. Past it the run goes on:
    a stream of uploads that never pauses still loads. A long look interval costs a burst
    little: its many waiting runs look at different moments, so one of them sees the burst end
    soon after it and starts the load, and the others then wait for that load; while every
    look of hundreds of waiting runs is a call the service answers."""
    burst_newest_runs: int = Field(default=10, ge=1, le=200)
    """How many of the validation job's newest runs the burst wait looks at (GetJobRuns takes
    up to 200): enough to hold those in flight. The twin validates in upload order, so its
    runs in flight are its newest few; on AWS a burst's runs end in any order."""
    load_poll_seconds: int = Field(default=2, ge=1)
    load_wait_seconds: int = Field(default=1800, ge=1)
    """Before it asks the warehouse whether its version is loaded, a run waits while a load
    runs, looking every ``load_poll_seconds``, and fails once one still runs after
    ``load_wait_seconds``."""
    load_attempts: int = Field(default=3, ge=1)
    """Loads a run starts or waits for before it fails with its version still not loaded."""

    @property
    def crawler_max_polls(self) -> int:
        """Polls of a started crawl before the run fails: the timeout over the interval."""
        return math.ceil(self.crawl_timeout_seconds / self.crawler_poll_seconds)

    @property
    def burst_max_polls(self) -> int:
        """Looks at the validation runs in flight before a run goes on regardless."""
        return math.ceil(self.burst_wait_seconds / self.burst_poll_seconds)

    @property
    def load_max_polls(self) -> int:
        """Looks at a running load before the run fails."""
        return math.ceil(self.load_wait_seconds / self.load_poll_seconds)

    @property
    def statement_max_polls(self) -> int:
        """Polls of the row count's query before the run fails: the timeout over the interval."""
        return math.ceil(self.statement_timeout_seconds / self.statement_poll_seconds)


LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
"""The retentions CloudWatch Logs accepts, in days ("Valid Values", retentionInDays,
https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html)."""

WorkerType = Literal["G.1X", "G.2X", "G.4X", "G.8X"]
"""The worker types of a Glue Spark job (G.025X is for streaming jobs only,
https://docs.aws.amazon.com/glue/latest/dg/worker-types.html)."""


class GlueJobSettings(FrozenModel):
    """How one Glue job runs on AWS: its workers, and whether on spare capacity (Flex)."""

    worker_type: WorkerType = "G.1X"
    """Its DPUs per worker are in ``pipeline.costs.WORKER_DPUS``."""
    workers: int = Field(default=2, ge=2)
    """2 is the least Glue allocates an ETL job ("Glue の ETL ジョブには最低で 2 個の DPU が必要
    です", https://aws.amazon.com/jp/glue/pricing/)."""
    flex: bool = False
    """Run on spare capacity, whose "start and runtimes ... can vary"
    (https://aws.amazon.com/blogs/big-data/introducing-aws-glue-flex-jobs-cost-savings-on-etl-workloads/):
    for environments where an upload may wait. The cost estimate bills Flex runs at the
    standard rate (no Flex price was found on an AWS page here): an upper bound for them."""


class AlarmSettings(FrozenModel):
    """When the operations topic is told that something needs a look."""

    failed_executions: int = Field(default=1, ge=1)
    """Failed, timed-out or aborted main runs within five minutes that raise the alarm (each
    run's own alert already went to on-call)."""
    unloaded_minutes: int = Field(default=180, ge=1)
    """How long a validated version may wait to be loaded before the alarm fires: longer than
    a run's burst wait, load waits and retries take together."""


SUBJECT_CLAIMS: Final = ("repo", "repository_owner", "repository_owner_id", "repository_id")
"""The claims of a subject template this app can render besides ``context``: what a job's
token carries about the repository, which is known before the job runs."""


class GitHubSettings(FrozenModel):
    """The GitHub repository whose workflows deploy (``.github/workflows/``), as its OIDC
    tokens name it: the deploy and review roles (``cdk/delivery.py``) trust exactly the
    subjects these render.

    A token's subject follows the repository's OIDC customization, which only an API call
    tells (``gh api repos/OWNER/NAME/actions/oidc/customization/sub``, docs/DEPLOY.md): copy
    its ``include_claim_keys`` into ``subject_claims`` (or leave the default when it answers
    ``"use_default": true``) and its ``use_immutable_subject`` into ``immutable_subject``.
    Repositories created after July 15, 2026 have immutable subjects by default
    (https://docs.github.com/en/actions/reference/security/oidc).
    """

    repository: str = "flightpipe/flightpipe"
    """``owner/name``, as ``github.repository`` spells it in a workflow."""
    repository_id: int | None = None
    """The repository's immutable id (``gh api repos/OWNER/NAME --jq .id``): needed when the
    subject names ``repository_id``."""
    repository_owner_id: int | None = None
    """The owner's immutable id (``--jq .owner.id``): needed when the subject names
    ``repository_owner_id``."""
    subject_claims: tuple[str, ...] = ("repo", "context")
    """The subject template's claims in order: ``include_claim_keys``. GitHub's default is
    ``repo`` then ``context``."""
    immutable_subject: bool = False
    """The subject's ``repo`` claim carries the ids: ``repo:OWNER@OWNER-ID/NAME@ID``."""
    oidc_provider: Literal["create", "existing"] = "create"
    """Whether this environment's delivery stack creates the account's GitHub OIDC provider
    (an account holds one per URL): ``existing`` where another environment in the same
    account creates it."""

    @model_validator(mode="after")
    def _renderable(self) -> GitHubSettings:
        if not re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", self.repository):
            raise ValueError(f"aws.github.repository: {self.repository!r} is not owner/name")
        if "context" not in self.subject_claims:
            raise ValueError(
                "aws.github.subject_claims: a subject without 'context' names no environment, "
                "so a deploy role would trust every job of the repository; add 'context'"
            )
        unknown = [c for c in self.subject_claims if c != "context" and c not in SUBJECT_CLAIMS]
        if unknown:
            raise ValueError(
                f"aws.github.subject_claims: {', '.join(unknown)} cannot be known before a job "
                f"runs; the roles can trust subjects of {', '.join(('context', *SUBJECT_CLAIMS))}"
            )
        for claim, value in (
            ("repository_id", self.repository_id),
            ("repository_owner_id", self.repository_owner_id),
        ):
            if (claim in self.subject_claims or self.immutable_subject) and value is None:
                raise ValueError(
                    f"aws.github.subject_claims or immutable_subject needs {claim}: give "
                    f"aws.github.{claim} (docs/DEPLOY.md says how to read it)"
                )
        return self

    def subject(self, context: str) -> str:
        """The ``sub`` of a token whose context is ``context`` (``environment:prod``,
        ``pull_request``): each claim as ``name:value`` joined by colons, ``context`` as its
        value alone (the docs' examples: ``repo:octo-org/octo-repo:environment:prod``)."""
        owner, name = self.repository.split("/")
        repo = (
            f"{owner}@{self.repository_owner_id}/{name}@{self.repository_id}"
            if self.immutable_subject
            else self.repository
        )
        values = {
            "repo": repo,
            "repository_owner": owner,
            "repository_owner_id": str(self.repository_owner_id),
            "repository_id": str(self.repository_id),
        }
        return ":".join(
            context if claim == "context" else f"{claim}:{values[claim]}"
            for claim in self.subject_claims
        )


class AwsSettings(FrozenModel):
    """What the CDK app (``cdk/``) deploys an environment with; the twin reads none of it but
    the job and crawler definitions both share."""

    region: str = "us-east-1"
    availability_zones: tuple[str, ...] = ("us-east-1a", "us-east-1b", "us-east-1c")
    """The zones of the private subnets: Redshift Serverless needs subnets in three. Given,
    not looked up: synthesis needs no account."""
    vpc_cidr: str = "10.40.0.0/16"
    egress: Literal["nat", "endpoints"] = "endpoints"
    """How the jobs in the private subnets reach the AWS APIs they call (Glue, Redshift Data,
    Secrets Manager, CloudWatch Logs and metrics; S3 always through its free gateway
    endpoint): ``endpoints``, an interface endpoint per service in every zone (billed per zone
    and hour, no path to the internet), or ``nat``, one NAT gateway (billed per hour and GB,
    cheaper than five endpoints in three zones, and the internet is reachable)."""
    validation_job: GlueJobSettings = GlueJobSettings()
    load_job: GlueJobSettings = GlueJobSettings()
    redshift_base_capacity: int = 8
    """The workgroup's base capacity, in RPUs: what a query is billed at; 4, or 8 to 1024 in
    steps of 8."""
    existing_workgroup: bool = False
    """Use the Redshift Serverless workgroup ``warehouse.workgroup`` names, deployed elsewhere,
    rather than deploy one (and its VPC)."""
    retain_data: bool = False
    """Keep the data buckets and the Redshift namespace when the stack is deleted."""
    log_retention_days: int = 30
    """How long logs are kept: one of ``LOG_RETENTION_DAYS``."""
    staging_expiry_days: int = Field(default=7, ge=1)
    """When a load's staged parts expire: a load COPYs them within its run."""
    old_version_expiry_days: int = Field(default=30, ge=1)
    """When a replaced object version (an upload, a result, a report page) expires."""
    operations_emails: tuple[str, ...] = ()
    """Who the operations topic (alarms, failed deployments) reaches."""
    alarms: AlarmSettings = AlarmSettings()
    report_allowed_cidrs: tuple[str, ...] = ()
    """IPv4 networks (CIDR) that may open the quality report site; none: nobody can."""
    github: GitHubSettings = GitHubSettings()
    smoke_test: bool = True
    """After each deployment, CD sends the smoke test's synthetic day through the pipeline
    (``flightpipe smoke``); otherwise it only checks its health (``flightpipe health``), and
    the smoke role may only read: it may then not write an object or a row."""

    @model_validator(mode="after")
    def _deployable(self) -> AwsSettings:
        if not self.existing_workgroup and len(set(self.availability_zones)) < 3:
            raise ValueError(
                f"aws.availability_zones names {len(set(self.availability_zones))} distinct "
                "zone(s): Redshift Serverless needs subnets in three (or set "
                "aws.existing_workgroup to use the workgroup warehouse.workgroup names, "
                "deployed elsewhere)"
            )
        capacity = self.redshift_base_capacity
        if not (capacity == 4 or (8 <= capacity <= 1024 and capacity % 8 == 0)):
            raise ValueError(
                f"aws.redshift_base_capacity: {capacity} RPUs is not a base capacity Redshift "
                "Serverless takes: 4, or 8 to 1024 in steps of 8"
            )
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"aws.log_retention_days: {self.log_retention_days} is not one CloudWatch Logs "
                f"keeps logs for; choose one of {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        for zone in self.availability_zones:
            if not zone.startswith(self.region):
                raise ValueError(f"aws.availability_zones: {zone!r} is not in {self.region}")
        try:
            ipaddress.ip_network(self.vpc_cidr)
            for cidr in self.report_allowed_cidrs:
                # The site is served over IPv4 only (cdk/reports.py).
                ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            raise ValueError(f"aws.vpc_cidr or aws.report_allowed_cidrs: {exc}") from None
        return self


class PriceSettings(FrozenModel):
    """AWS prices and billing minimums for the cost estimate (``pipeline.costs``): on-demand, US
    East (N. Virginia), free tiers left out. Each figure says where it was read, on 2026-12-01.

    Glue's page (https://aws.amazon.com/glue/pricing/) could not be read in English: the
    figures below come from its stored Japanese copy, AWS's Glue documentation, or, where said,
    from no AWS page at all.
    """

    glue_dpu_hour_usd: float = Field(default=0.44, gt=0)
    """Per DPU-hour of a Glue Spark job, billed per second: "0.44 ドル" per DPU-hour on
    https://aws.amazon.com/jp/glue/pricing/ (the same figure in its pricing example)."""
    glue_job_minimum_seconds: int = Field(default=60, ge=0)
    """The least a Glue 5.x job run is billed for. Not found on an AWS page here: the stored copy
    of the Glue pricing page predates Glue 2.0 and states 10 minutes per ETL job; the 1-minute
    minimum of Glue 2.0 and later is stated by third parties only (for example
    https://awsnegotiations.com/glue-job-cost-optimization.html, "one-minute minimum, billed per
    second"), and by AWS for interactive sessions ("最小課金時間は 1 分",
    https://docs.aws.amazon.com/ja_jp/glue/latest/dg/interactive-sessions-session-pricing.html)."""
    crawler_dpu_hour_usd: float = Field(default=0.44, gt=0)
    """Per DPU-hour of a crawler run: "$0.44 per Data Processing Unit-Hour for AWS Glue crawler"
    (AWS's price list, as copied in
    https://huggingface.co/datasets/labofsahil/aws-pricing-dataset/raw/main/AWSGlue.csv)."""
    crawler_minimum_seconds: int = Field(default=600, ge=0)
    """The least a crawler run is billed for: 10 minutes. Not found on an AWS page here; stated
    by third parties ("Crawlers: $0.44 per DPU-hour, ten-minute minimum per crawl",
    https://awsnegotiations.com/glue-job-cost-optimization.html)."""
    crawler_dpus: float = Field(default=1.0, gt=0)
    """DPUs a crawl of a few files uses. AWS reports each crawl's DPU-hours afterwards
    (``DPUHour`` of ListCrawls, https://docs.aws.amazon.com/glue/latest/webapi/API_CrawlerHistory.html)
    but states no figure beforehand: 1 is the least, so the crawl cost is a lower bound."""
    standard_transition_usd: float = Field(default=0.000025, gt=0)
    """Per Standard state transition: "$0.025 per 1,000 state transitions" (US East (N.
    Virginia), https://aws.amazon.com/step-functions/pricing/)."""
    express_request_usd: float = Field(default=0.000001, gt=0)
    """Per Express request: "$1.00 per million invocations"
    (https://aws.amazon.com/blogs/compute/building-cost-effective-aws-step-functions-workflows/);
    the pricing page's Express table was not in the stored copy."""
    express_gb_second_usd: float = Field(default=0.00001667, gt=0)
    """Per GB-second of Express duration: "$0.0000001042" per 100 ms of 64 MB in AWS's Step
    Functions workshop (aws-samples/the-aws-step-functions-workshop, module 13, "Review the
    Cost Impact"), which is this per GB-second."""
    express_duration_step_ms: int = Field(default=100, ge=1)
    """Express duration is "rounded up to the nearest 100ms"
    (https://aws.amazon.com/step-functions/pricing/)."""
    express_memory_chunk_mb: int = Field(default=64, ge=1)
    """Express memory is "billed in 64-MB chunks" (same page); the router's small definition and
    payload fit one chunk."""
    redshift_rpu_hour_usd: float = Field(default=0.375, gt=0)
    """Per RPU-hour of Redshift Serverless. Not found on an AWS page here (the stored copy of
    https://aws.amazon.com/redshift/pricing/ lacks its Serverless table); third parties give
    "roughly $0.36 to $0.50 per RPU-hour" by region
    (https://awsnegotiations.com/redshift-serverless-pricing.html): 0.375 is US East's as
    commonly quoted, unconfirmed here."""
    redshift_minimum_seconds: int = Field(default=60, ge=0)
    """The least an active period is billed for. AWS: "billed according to the capacity used in
    a given duration, in RPU hours on a per-second basis"
    (https://docs.aws.amazon.com/redshift/latest/mgmt/serverless-billing.html); the 60-second
    minimum is stated by third parties only ("a 60-second minimum after each query starts",
    https://awsnegotiations.com/redshift-serverless-pricing.html)."""


class Settings(BaseSettings, Buckets):
    """Everything configurable, for one environment."""

    model_config = SettingsConfigDict(
        env_prefix="FLIGHTPIPE_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    env: Environment = Environment.LOCAL
    storage: StorageSettings = StorageSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    spark: SparkSettings = SparkSettings()
    local: LocalSettings = LocalSettings()
    timing: TimingSettings = TimingSettings()
    quality: QualitySettings = QualitySettings()
    validation: ValidationSettings = ValidationSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    prices: PriceSettings = PriceSettings()
    aws: AwsSettings = AwsSettings()

    @model_validator(mode="after")
    def _validation_fits_its_run(self) -> Settings:
        # A run may batch for batch_seconds, or wait out another run's claim on its upload
        # before validating it itself: either must end before the state machine's timeout.
        longest = self.validation.batch_seconds + self.validation.claim_seconds
        if longest >= self.workflow.job_timeout_seconds:
            raise ValueError(
                f"validation.batch_seconds + validation.claim_seconds ({longest} s) must be "
                f"less than workflow.job_timeout_seconds ({self.workflow.job_timeout_seconds} s): "
                "a validation run batching or waiting out a claim would time out"
            )
        return self

    @model_validator(mode="after")
    def _names_and_numbers_aws_takes(self) -> Settings:
        # The longest name a bucket of this environment gets (an account id is 12 digits; the
        # twin has no access-log bucket); S3 takes 63.
        purposes = BUCKET_PURPOSES if self.env is Environment.LOCAL else ("access-logs",)
        longest = max((self.bucket_name(purpose, "0" * 12) for purpose in purposes), key=len)
        if len(longest) > 63:
            raise ValueError(
                f"storage.bucket_prefix: bucket names such as {longest!r} are longer than the "
                "63 characters S3 takes; shorten the prefix"
            )
        for number in self.workflow.on_call_sms:
            if not re.fullmatch(r"\+[1-9][0-9]{1,14}", number):
                raise ValueError(
                    f"workflow.on_call_sms: {number!r} is not an E.164 number (+15555550100)"
                )
        for email in (*self.workflow.on_call_emails, *self.aws.operations_emails):
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise ValueError(f"an on-call or operations email: {email!r} is no address")
        return self

    def bucket(self, purpose: str) -> str:
        """The bucket for a purpose (``raw``, ``dim``, ``staging``, ``reports``): the one
        ``storage.buckets`` gives, else, on the twin, ``<prefix>-<purpose>-local-<account>``.

        Any other environment's buckets are CDK's: the definitions hold placeholders for them
        and the runs' arguments name them, so only a name given here can be asked for.
        """
        given = self.storage.buckets.get(purpose)
        if given is not None:
            return given
        if self.env is not Environment.LOCAL:
            raise ValueError(
                f"the {self.env.value} environment's {purpose!r} bucket is named by CDK, not "
                f"derived: give it in the setting storage.buckets "
                f"(FLIGHTPIPE_STORAGE__BUCKETS__{purpose.upper()})"
            )
        return self.bucket_name(purpose, self.local.account)

    def bucket_name(self, purpose: str, account: str) -> str:
        """A bucket's name in ``account``: ``<prefix>-<purpose>-<env>-<account>``, bucket names
        being global (the twin's, and CDK's with the deploying account)."""
        return f"{self.storage.bucket_prefix}-{purpose}-{self.env.value}-{account}"

    def resource_name(self, purpose: str) -> str:
        """The name of this environment's resource for a purpose (a job, a topic, a machine)."""
        return f"{self.storage.bucket_prefix}-{purpose}-{self.env.value}"

    def job_settings(self) -> JobSettings:
        """What this environment's jobs are created with, as their ``--settings`` argument:
        bucket names only where ``storage.buckets`` gives them (a run's arguments name the
        rest)."""
        return JobSettings(
            env=self.env.value,
            storage=self.storage,
            quality=self.quality,
            validation=self.validation,
        )

    def buckets(self) -> dict[str, str]:
        """Every bucket of this environment, by purpose."""
        return {purpose: self.bucket(purpose) for purpose in BUCKET_PURPOSES}


# The state machines' numbers on AWS: Glue jobs and crawls take minutes, not seconds.
_AWS_WORKFLOW: Final[dict[str, object]] = {
    "crawler_poll_seconds": 15,
    "crawl_timeout_seconds": 1800,
    "job_timeout_seconds": 7200,
    "api_timeout_seconds": 60,
    # Each DescribeStatement of a Standard run is a billed state transition
    # (https://aws.amazon.com/step-functions/pricing/): a poll every few seconds, not every
    # second. A query may wait for a slot in Redshift's queue before it runs
    # (https://docs.aws.amazon.com/redshift/latest/dg/review-queue-wait-times-for-queries.html),
    # so the short query gets minutes before the run fails as stuck.
    "statement_poll_seconds": 5,
    "statement_timeout_seconds": 300,
    "transient_retry_interval_seconds": 5,
    "transient_retry_max_delay_seconds": 60,
    "transient_retry_attempts": 5,
    "validation_max_concurrent_runs": 4,
    "burst_poll_seconds": 30,
    "burst_newest_runs": 200,
    "burst_wait_seconds": 1800,
    "load_poll_seconds": 30,
    "load_wait_seconds": 7200,
}

# A Glue run is billed a minute at least and takes longer to start than to validate a day: a
# run on AWS goes on validating the uploads waiting beside its own for minutes, and waits
# longer for the next upload of a burst (its idle wait is within the billed minute).
_AWS_VALIDATION: Final[dict[str, object]] = {"batch_seconds": 600, "idle_seconds": 30}

# Per-environment defaults: the differences between environments are visible values here.
_ENVIRONMENT_DEFAULTS: Final[dict[Environment, dict[str, object]]] = {
    Environment.LOCAL: {},
    Environment.DEV: {
        "timing": {"poll_interval_seconds": 15.0, "lock_wait_seconds": 60.0},
        "warehouse": {"workgroup": "flightpipe-dev"},
        "validation": _AWS_VALIDATION,
        "workflow": _AWS_WORKFLOW,
        # A development account: a NAT costs less than five endpoints in three zones, and
        # an upload there may wait for spare capacity.
        "aws": {
            "vpc_cidr": "10.40.0.0/16",
            "egress": "nat",
            "validation_job": {"flex": True},
            "load_job": {"flex": True},
            "log_retention_days": 14,
            "old_version_expiry_days": 7,
        },
    },
    Environment.STAGING: {
        "timing": {"poll_interval_seconds": 15.0, "lock_wait_seconds": 60.0},
        "warehouse": {"workgroup": "flightpipe-staging"},
        "validation": _AWS_VALIDATION,
        "workflow": _AWS_WORKFLOW,
        "aws": {"vpc_cidr": "10.41.0.0/16", "egress": "nat", "old_version_expiry_days": 14},
    },
    Environment.PROD: {
        "timing": {"poll_interval_seconds": 30.0, "lock_wait_seconds": 120.0},
        "warehouse": {"workgroup": "flightpipe-prod"},
        "validation": _AWS_VALIDATION,
        "workflow": {
            **_AWS_WORKFLOW,
            "crawler_poll_seconds": 30,
        },
        # Production data never has a path to the internet, and outlives its stack.
        "aws": {
            "vpc_cidr": "10.42.0.0/16",
            "egress": "endpoints",
            "retain_data": True,
            # Real data only: CD checks production's health and never writes to it.
            "smoke_test": False,
            "log_retention_days": 365,
            "old_version_expiry_days": 90,
            "load_job": {"workers": 4},
        },
    },
}


def _merge_into(target: dict[str, object], layer: Mapping[str, object]) -> None:
    """Merge one layer of settings into ``target``, section by section, at every depth (a
    variable setting ``aws.load_job.workers`` keeps the environment's ``aws.load_job.flex``)."""
    for key, value in layer.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge_into(current, value)
        else:
            target[key] = _copied(value)


def _copied(value: object) -> object:
    """``value`` with every mapping in it copied, so merging never changes a defaults layer."""
    if isinstance(value, Mapping):
        return {key: _copied(item) for key, item in value.items()}
    return value


def load_settings(env: Environment | str | None = None, **overrides: object) -> Settings:
    """Settings for ``env`` (default: ``FLIGHTPIPE_ENV`` or local).

    Precedence, lowest first: the environment's defaults, ``FLIGHTPIPE_*`` variables (nested
    with ``__``, e.g. ``FLIGHTPIPE_LOCAL__S3_PORT``), then ``overrides``.
    """
    probe = Settings() if env is None else None
    chosen = Environment(env) if env is not None else probe.env if probe else Environment.LOCAL
    from_env = Settings(env=chosen)  # reads FLIGHTPIPE_* on top of the model defaults
    merged: dict[str, object] = {}
    for layer in (
        _ENVIRONMENT_DEFAULTS[chosen],
        from_env.model_dump(exclude_unset=True),
        overrides,
    ):
        _merge_into(merged, layer)
    merged["env"] = chosen
    return Settings.model_validate(merged)
