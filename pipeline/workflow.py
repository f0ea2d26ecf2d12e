"""The state machines, built with the Step Functions Data Science SDK and rendered to ASL.

The main state machine takes one uploaded object version (``{"bucket", "key",
"version_id"}``) through validation, a crawl of the validated location and the bookmarked load,
then publishes a success message. Any failure publishes an alert naming the file, the step, the
error and its cause, and ends in a Fail state, so a failed run (a quarantined file included) is
FAILED in Step Functions. The router, an Express state machine, turns an S3 "Object Created"
event into one main run, named by a hash of bucket, key and version id: a duplicated event finds
the name taken and ends there.

One definition serves AWS and the local twin. Names and ARNs of resources created elsewhere,
bucket names included, are ``${Name}`` placeholders (``PLACEHOLDERS``), filled by CDK's
``definition_substitutions`` on AWS and by ``substitute`` locally, so no definition holds an
account; numbers and values that settings decide (environment, prefixes, polls, timeouts,
retries) are rendered from ``Settings``.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from pipeline.core.contract import FLIGHT_LOAD_AUDIT, FLIGHT_LOAD_REJECTS
from pipeline.settings import Settings, WorkflowSettings

PLACEHOLDERS: Final[Mapping[str, str]] = {
    "ValidationJobName": "the validation Glue job (jobs/validation.py)",
    "EtlJobName": "the bookmarked load Glue job (jobs/flight_etl.py)",
    "CrawlerName": "the Glue crawler over the validated daily files",
    "DimensionCrawlerName": "the Glue crawler over the validated airport dimension",
    "AlertTopicArn": "the SNS topic for failure alerts and success messages",
    "RedshiftCopyRoleArn": "the role Redshift assumes to COPY the staged rows",
    "MainStateMachineArn": "the main state machine, started by the router",
    "RawBucket": "the bucket uploads land in, with the validated copies and the quarantine",
    "DimensionBucket": "the bucket of the airport dimension, uploaded and validated",
    "StagingBucket": "the bucket the load stages rows in for Redshift's COPY",
    "ReportsBucket": "the bucket of the quality report site",
    "ReportsUrl": "where on-call opens the quality report site (on AWS its HTTPS address)",
    "WorkgroupName": "the Redshift Serverless workgroup the load and the row count run in",
    "DatabaseName": "the warehouse's database in it",
}
"""Every placeholder a definition may hold, with what it names."""

QUARANTINED_BY_ANOTHER_RUN: Final = "Validation.Quarantined"
"""The error of a run whose version another run's validation quarantined (the cause: its alert).
A run that validated its own quarantined version fails its job run instead (States.TaskFailed,
the job's QuarantinedError as the cause)."""
REJECTED_AT_LOAD: Final = "Load.Rejected"
"""The error of a run whose version a load rejected (its reject record's reason is the cause)."""

_PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")

# Every error a Retry or Catch names, and where it comes from (the twin's emulator fixes make
# moto raise the same names). An integration's error is `Service.ErrorName`, the service's
# exception name with an "Exception" suffix where the service's lacks one
# (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html).
# "Model" below is the service's API model, botocore's in .venv (botocore/data/<service>/);
# tests/test_workflow.py checks every name against it. States.Timeout is a task's own
# TimeoutSeconds (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
_GLUE_JOB_TRANSIENT: Final = (
    # glue:startJobRun.sync reports throttling ("Rate exceeded") under the SDK's base exception,
    # not in the model: https://repost.aws/questions/QUVo7mhaGrRlyGUQ8A3EBpsQ/ and
    # https://repost.aws/knowledge-center/glue-throttling-rate-exceeded
    "Glue.AWSGlueException",
    # StartJobRun and GetJobRun in the model.
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
)
# StartJobRun in the model; https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-exceptions.html
_GLUE_JOB_BUSY: Final = ("Glue.ConcurrentRunsExceededException",)
_GLUE_API_TRANSIENT: Final = (
    # aws-sdk:glue:* : OperationTimeoutException is in StartCrawler's and GetCrawler's errors;
    # ThrottlingException and InternalServiceException are not, but Glue's model declares both
    # and an error is named by its code (a throttled GetCrawler's is ThrottlingException:
    # https://repost.aws/knowledge-center/glue-throttling-rate-exceeded).
    "Glue.ThrottlingException",
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
    "States.Timeout",
)
_CRAWLER_BUSY: Final = ("Glue.CrawlerRunningException",)  # StartCrawler in the model
# sns:publish: InternalError is in Publish's errors; ThrottledException in SNS's model.
_SNS_TRANSIENT: Final = ("SNS.ThrottledException", "SNS.InternalErrorException")
# redshiftdata: each operation's errors in the model, less those that are the caller's fault
# (ValidationException, ResourceNotFoundException), ExecuteStatementException (the statement
# failed) and those of features the definition does not use (ActiveSessionsExceededException:
# sessions; ActiveWaitingRequestsExceededException: WaitTimeSeconds).
_REDSHIFT_DATA_EXECUTE_TRANSIENT: Final = (
    "RedshiftData.ActiveStatementsExceededException",
    "RedshiftData.InternalServerException",
    "States.Timeout",
)
_REDSHIFT_DATA_READ_TRANSIENT: Final = ("RedshiftData.InternalServerException", "States.Timeout")
_SFN_TRANSIENT: Final = (
    # states:startExecution: Throttling is one of the Step Functions API's common errors
    # (https://docs.aws.amazon.com/step-functions/latest/apireference/CommonErrors.html), not
    # in the model; ExecutionLimitExceeded is in StartExecution's errors.
    "StepFunctions.ThrottlingException",
    "StepFunctions.ExecutionLimitExceededException",
    "States.Timeout",
)
_SFN_DUPLICATE: Final = ("StepFunctions.ExecutionAlreadyExistsException",)  # StartExecution
# s3:headObject and s3:getObject: NoSuchKey is in both operations' errors in the model (and
# HeadObject's one); S3's model declares no throttling or service error, so only the call's own
# timeout is retried.
_S3_NOT_FOUND: Final = ("S3.NoSuchKeyException",)
_S3_TRANSIENT: Final = ("States.Timeout",)

_GLUE_RUN_SUMMARY: Final = {"JobRunId.$": "$.Id", "JobRunState.$": "$.JobRunState"}

# Optimized integrations, written out: the SDK's GlueStartJobRunStep and SnsPublishStep take the
# ARN's partition from the caller's boto3 region (a session per step, a warning without a
# region, another definition in aws-cn), and the definition must depend on settings alone.
_GLUE_RUN_JOB: Final = "arn:aws:states:::glue:startJobRun.sync"
_SNS_PUBLISH: Final = "arn:aws:states:::sns:publish"


@cache
def _sdk() -> Any:
    """The SDK's ``stepfunctions.steps``, imported on first use (it imports sagemaker 2: ~10 s).

    sagemaker logs its configuration lookups to stdout on import (printed ASL must stay valid
    JSON) and, like the SDK, warns of its own deprecations: both are silenced here.
    """
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import stepfunctions.steps

    return stepfunctions.steps


@dataclass(frozen=True)
class _Retrier:
    """One Retry: exponential backoff up to ``max_delay_seconds``, with full jitter."""

    errors: Sequence[str]
    interval_seconds: int
    backoff_rate: float
    max_attempts: int
    max_delay_seconds: int


def _transient(errors: Sequence[str], workflow: WorkflowSettings) -> _Retrier:
    return _Retrier(
        errors,
        workflow.transient_retry_interval_seconds,
        workflow.transient_retry_backoff_rate,
        workflow.transient_retry_attempts,
        workflow.transient_retry_max_delay_seconds,
    )


@dataclass
class _Additions:
    """What the SDK cannot express, kept beside the graph and added to its rendering (``apply``).

    The SDK raises TypeError for ResultSelector, a Fail state's ErrorPath and CausePath, and a
    retrier's MaxDelaySeconds and JitterStrategy.
    """

    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_delays: dict[str, list[int]] = field(default_factory=dict)

    def retry(self, state: Any, retrier: _Retrier) -> None:
        state.add_retry(
            _sdk().Retry(
                error_equals=list(retrier.errors),
                interval_seconds=retrier.interval_seconds,
                backoff_rate=retrier.backoff_rate,
                max_attempts=retrier.max_attempts,
            )
        )
        self.max_delays.setdefault(state.state_id, []).append(retrier.max_delay_seconds)

    def add(self, state: Any, **fields: Any) -> None:
        self.fields.setdefault(state.state_id, {}).update(fields)

    def apply(self, definition: dict[str, Any]) -> dict[str, Any]:
        states = definition["States"]
        for name, fields in self.fields.items():
            states[name].update(fields)
        for name, delays in self.max_delays.items():
            for retry, delay in zip(states[name]["Retry"], delays, strict=True):
                retry.update(MaxDelaySeconds=delay, JitterStrategy="FULL")
        return definition


@dataclass
class _Failure:
    """The failure path: record the failed step, read a job run's error, alert, end FAILED.

    Every step's Catch leads to its own Pass state, which records the step's name for the alert
    (a Catch can only record the error). A failed Glue job run's cause is the whole job run as
    JSON; its ``ErrorMessage`` is what on-call needs (for a quarantined file, the broken rules),
    so it becomes the cause. Then one alert task, which ends in the Fail state whether or not
    it could be published.
    """

    entry: Any
    steps: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, additions: _Additions) -> _Failure:
        sf = _sdk()
        failed = sf.Fail("Failed", comment="The run failed; the alert (if published) says why.")
        # The execution's error is the step's error, not a generic one.
        additions.add(failed, ErrorPath="$.error.Error", CausePath="$.error.Cause")
        report = "${ReportsUrl}"
        alert = sf.Task(
            "Publish failure alert",
            resource=_SNS_PUBLISH,
            parameters={
                "TopicArn": "${AlertTopicArn}",
                "Subject": f"flightpipe {settings.env.value}: run FAILED",
                # The file, the step and the cause first (a cause may end in a period, or
                # run over lines: a quarantine's broken rules), then where to look further.
                "Message.$": (
                    "States.Format('flightpipe run FAILED at the {} step for s3://{}/{} "
                    "(version {}): {}\nExecution {}; quality report "
                    f"{report}', "
                    "$.failed_step, $.bucket, $.key, $.version_id, $.error.Cause, "
                    "$$.Execution.Id)"
                ),
                "MessageAttributes": _outcome("failed"),
            },
            result_path=None,
        )
        additions.retry(alert, _transient(_SNS_TRANSIENT, settings.workflow))
        alert.add_catch(
            sf.Catch(error_equals=["States.ALL"], result_path="$.alert_error", next_step=failed)
        )
        alert.next(failed)
        return cls(cls._job_run_error(alert))

    @staticmethod
    def _job_run_error(then: Any) -> Any:
        """States that replace a JSON job-run cause by the run's ErrorMessage, then ``then``."""
        sf = _sdk()
        rule = sf.ChoiceRule
        read = sf.Pass(
            "Read failed job run",
            parameters={"Error.$": "$.error.Error", "Run.$": "States.StringToJson($.error.Cause)"},
            result_path="$.error",
        )
        message = sf.Pass(
            "Keep job run message",
            parameters={"Error.$": "$.error.Error", "Cause.$": "$.error.Run.ErrorMessage"},
            result_path="$.error",
        )
        whole = sf.Pass(
            "Keep whole job run",
            parameters={"Error.$": "$.error.Error", "Cause.$": "States.JsonToString($.error.Run)"},
            result_path="$.error",
        )
        is_job_run = sf.Choice("Job run failed?")
        # Every caught error has a Cause; only a job run's is a JSON object.
        is_job_run.add_choice(rule.StringMatches("$.error.Cause", "{*"), read)
        is_job_run.default_choice(then)
        has_message = sf.Choice("Job run message?")
        has_message.add_choice(rule.IsPresent("$.error.Run.ErrorMessage", True), message)
        has_message.default_choice(whole)
        read.next(has_message)
        message.next(then)
        whole.next(then)
        return is_job_run

    def step(self, name: str) -> Any:
        """The state that records ``name`` as the failed step, then alerts (one per step,
        however many states fail at it)."""
        if name not in self.steps:
            record = _sdk().Pass(
                f"{name.capitalize()} failed", result=name, result_path="$.failed_step"
            )
            record.next(self.entry)
            self.steps[name] = record
        return self.steps[name]

    @staticmethod
    def catch(state: Any, step: Any) -> None:
        """Send every error of ``state`` that its retriers do not absorb down the failure path."""
        catch = _sdk().Catch(error_equals=["States.ALL"], result_path="$.error", next_step=step)
        state.add_catch(catch)


def _outcome(outcome: str) -> dict[str, Any]:
    """An SNS message attribute, so subscriptions can filter alerts from success messages."""
    return {"outcome": {"DataType": "String", "StringValue": outcome}}


ZIP_NAME: Final = "flightpipe.gluewheels.zip"
"""Glue installs an ``--additional-python-modules`` entry as a zip of wheels by this suffix."""
VALIDATION_SCRIPT: Final = "validation.py"
LOAD_SCRIPT: Final = "flight_etl.py"
JOB_SCRIPTS: Final = {VALIDATION_SCRIPT: "jobs.validation", LOAD_SCRIPT: "jobs.flight_etl"}
"""Each Glue job's script, by the name its job definition gives it (CDK's and the twin's), and
the module whose ``main`` it calls: ``make package`` writes these scripts, and the twin's
endpoint runs a job run by its job's script."""


def job_arguments(settings: Settings) -> dict[str, str]:
    """The default arguments both Glue jobs are created with, by CDK and by the twin: the job
    settings (``pipeline.core.settings.JobSettings``) as JSON. What differs per run, the state
    machine passes."""
    return {"--settings": settings.job_settings().model_dump_json()}


def main_definition(settings: Settings) -> dict[str, Any]:
    """The main state machine's ASL for one uploaded object version, with placeholders."""
    sf = _sdk()
    additions = _Additions()
    failure = _Failure.build(settings, additions)
    loaded = _message(settings, additions, failure, _LOADED)
    superseded = _message(settings, additions, failure, _SUPERSEDED)
    dimension = _message(settings, additions, failure, _DIMENSION)
    loaded.next(sf.Succeed("Loaded"))
    superseded.next(sf.Succeed("Superseded"))
    dimension.next(sf.Succeed("Dimension validated"))
    catalog_dimension = _catalog_dimension(settings, additions, failure, then=dimension)
    load = _load(
        settings,
        additions,
        failure,
        loaded=loaded,
        superseded=superseded,
        crawl=lambda then: _crawl(settings, additions, failure, then),
    )
    # The dimension's run ends once it is validated: no load reads it until the next file.
    is_dimension = sf.Choice("Airport dimension?")
    is_dimension.add_choice(
        sf.ChoiceRule.StringEquals("$.bucket", "${DimensionBucket}"), catalog_dimension
    )
    is_dimension.default_choice(_burst_wait(settings, additions, failure, then=load))
    validate = _validation(settings, additions, failure, then=is_dimension)
    graph = sf.Graph(validate, comment="Validate, crawl and load one uploaded file version.")
    return additions.apply(graph.to_dict())


@dataclass
class _Attempts:
    """A bounded count of a step's attempts in the state at ``path``: its start at zero, one
    more, and the failure once they are used up (``error``; ``cause`` is a ``States.Format``
    template with one ``{}``, for the count, and no quote). The Choice that compares the count
    with its limit is the step's own."""

    subject: str
    path: str
    error: str
    cause: str
    start: Any = field(init=False)
    count: Any = field(init=False)
    exhausted: Any = field(init=False)

    def __post_init__(self) -> None:
        sf = _sdk()
        noun = self.subject.capitalize()
        self.start = sf.Pass(
            f"Start {self.subject} attempts", result={"count": 0}, result_path=self.path
        )
        self.count = sf.Pass(
            f"Count {self.subject} attempt",
            parameters={"count.$": f"States.MathAdd({self.path}.count, 1)"},
            result_path=self.path,
        )
        self.exhausted = sf.Pass(
            f"{noun} attempts exhausted",
            parameters={
                "Error": self.error,
                "Cause.$": f"States.Format('{self.cause}', {self.path}.count)",
            },
            result_path="$.error",
        )


def _validation(settings: Settings, additions: _Additions, failure: _Failure, then: Any) -> Any:
    """Validate the upload, in a validation run of its own or in another's: then ``then``.

    The validation job has a small maximum concurrency, and each of its runs also validates the
    uploads waiting beside its own (``jobs.validation``), leaving a result object per version
    (``StorageSettings.result_key``). So a start refused because the job is at its maximum is
    an answer, not an error: the run waits while validation runs are in flight, then reads its
    version's result. Passed, it goes on; quarantined or failed, it fails at the validation step
    with the result's alert as the cause (its one alert: the run that validated it alerts for
    its own upload only); no result yet, it starts a validation run again, at most
    ``validation_attempts`` times. A quarantined file fails its own validation run, and so
    this task, as before.
    """
    sf = _sdk()
    rule = sf.ChoiceRule
    workflow = settings.workflow
    failed = failure.step("validation")
    attempts = _Attempts(
        "validation",
        "$.validation_attempts",
        error="Validation.Timeout",
        cause=(
            "The upload was still not validated after {} validation runs this run tried to start."
        ),
    )
    start_attempts, attempt, exhausted = attempts.start, attempts.count, attempts.exhausted
    validate = sf.Task(
        "Validate upload",
        resource=_GLUE_RUN_JOB,
        comment="A quarantined file fails the job run, and so the execution.",
        parameters={
            "JobName": "${ValidationJobName}",
            "Arguments": {
                "--dimension_bucket": "${DimensionBucket}",
                "--reports_bucket": "${ReportsBucket}",
                "--reports_url": "${ReportsUrl}",
                "--bucket.$": "$.bucket",
                "--key.$": "$.key",
                "--version_id.$": "$.version_id",
            },
        },
        result_path="$.validation",
        timeout_seconds=workflow.job_timeout_seconds,
    )
    additions.add(validate, ResultSelector=_GLUE_RUN_SUMMARY)
    # Never States.TaskFailed: a failed validation run is a verdict, not a hiccup.
    additions.retry(validate, _transient(_GLUE_JOB_TRANSIENT, workflow))
    validate.add_catch(
        sf.Catch(
            error_equals=list(_GLUE_JOB_BUSY), result_path="$.validation_busy", next_step=attempt
        )
    )
    failure.catch(validate, failed)
    validate.next(then)
    start_attempts.next(validate)

    no_result = sf.Pass("No validation result", result={}, result_path="$.validation_result")
    read = _SdkCalls(settings, additions, failed).task(
        "Read validation result",
        "s3:getObject",
        {
            "Bucket.$": "$.bucket",
            "Key.$": (
                f"States.Format('{_escaped(settings.storage.results_prefix)}{{}}/{{}}.json', "
                "$.key, $.version_id)"
            ),
        },
        "$.validation_result",
        _transient(_S3_TRANSIENT, workflow),
        caught=[(_S3_NOT_FOUND, no_result, "$.validation_result")],
    )
    # The result is small JSON; the SDK integration hands the object's body over as text.
    additions.add(read, ResultSelector={"document.$": "States.StringToJson($.Body)"})
    watched = _InFlight(
        "running validations",
        "${ValidationJobName}",
        workflow.burst_newest_runs,
        workflow.burst_poll_seconds,
        workflow.burst_max_polls,
    )
    # Out of polls the run reads its result regardless: it may start the next run itself.
    waiting = _runs_in_flight(settings, additions, failed, watched).loop(failed, [], read, read)
    attempt.next(waiting)

    outcome = "$.validation_result.document.outcome"
    # Its one alert, with the cause the run that validated it would have failed with.
    quarantined, refused = (
        sf.Pass(
            name,
            parameters={"Error": error, "Cause.$": "$.validation_result.document.alert"},
            result_path="$.error",
        )
        for name, error in (
            ("Quarantined by another run", QUARANTINED_BY_ANOTHER_RUN),
            ("Failed in another run", "Validation.Failed"),
        )
    )
    quarantined.next(failed)
    refused.next(failed)
    exhausted.next(failed)
    # The run's messages name the validation run: here, the one that validated the upload.
    by_another = sf.Pass(
        "Validated by another run",
        parameters={"JobRunId.$": "$.validation_result.document.validated_by"},
        result_path="$.validation",
    )
    by_another.next(then)
    decided = sf.Choice("Validated yet?")
    # No result, or only another run's claim on the version: no outcome yet.
    known = rule.IsPresent(outcome, True)
    decided.add_choice(
        rule.And(
            [
                known,
                rule.Or(
                    [rule.StringEquals(outcome, "passed"), rule.StringEquals(outcome, "warnings")]
                ),
            ]
        ),
        by_another,
    )
    decided.add_choice(rule.And([known, rule.StringEquals(outcome, "quarantined")]), quarantined)
    decided.add_choice(known, refused)
    decided.add_choice(
        rule.NumericGreaterThanEquals("$.validation_attempts.count", workflow.validation_attempts),
        exhausted,
    )
    decided.default_choice(validate)
    read.next(decided)
    no_result.next(decided)
    return start_attempts


@dataclass(frozen=True)
class _SdkCalls:
    """Builds one step's ``aws-sdk`` tasks: the settings' API timeout, errors to ``failed``."""

    settings: Settings
    additions: _Additions
    failed: Any
    """Where every error the retriers do not absorb goes (the step's failure path)."""

    def task(
        self,
        name: str,
        action: str,
        parameters: dict[str, Any],
        result_path: str | None,
        *retriers: _Retrier,
        caught: Sequence[tuple[Sequence[str], Any, str]] = (),
        **options: Any,
    ) -> Any:
        """A task calling ``action`` (``service:apiAction``), with ``retriers`` in order; each
        of ``caught`` (errors, the state they lead to, where the error goes) is an outcome
        rather than a failure."""
        sf = _sdk()
        task = sf.Task(
            name,
            resource=f"arn:aws:states:::aws-sdk:{action}",
            parameters=parameters,
            result_path=result_path,
            timeout_seconds=self.settings.workflow.api_timeout_seconds,
            **options,
        )
        for retrier in retriers:
            self.additions.retry(task, retrier)
        for errors, then, error_path in caught:
            task.add_catch(
                sf.Catch(error_equals=list(errors), result_path=error_path, next_step=then)
            )
        _Failure.catch(task, self.failed)
        return task


@dataclass(frozen=True)
class _Poll:
    """A bounded poll loop: ask (``get``), and while the answer says still running, count the
    poll, wait and ask again; fail once the count reaches ``max_polls``.

    The count and the last answer live in the state at ``path`` (``get`` writes its answer to
    ``<path>.status``). Asking comes first: a quick operation is seen done without a wait.
    """

    subject: str
    """What is polled, in state names and errors (``crawl``: "Wait for crawl", Crawl.Timeout)."""
    path: str
    get: Any
    running: Any
    """The Choice rule of an answer that is not final yet."""
    state: str
    """The path of the state the timeout's cause names."""
    seconds: int
    max_polls: int

    def loop(
        self,
        failed: Any,
        outcomes: Sequence[tuple[str, Any, str]],
        then: Any,
        expired: Any | None = None,
    ) -> Any:
        """The loop's first state. Once the answer is final, the first of ``outcomes`` (a
        state's name, a Choice rule, the cause as a ``States.Format``) that matches it fails
        the run at ``failed`` with that cause; a final answer none matches goes on to ``then``.
        Out of polls, the run fails at ``failed`` too, unless ``expired`` is where it goes on."""
        sf = _sdk()
        rule = sf.ChoiceRule
        noun = self.subject.capitalize()
        start = sf.Pass(
            f"Start {self.subject} poll count", result={"polls": 0}, result_path=self.path
        )
        count = sf.Pass(
            f"Count {self.subject} poll",
            parameters={"polls.$": f"States.MathAdd({self.path}.polls, 1)"},
            result_path=self.path,
        )
        wait = sf.Wait(f"Wait for {self.subject}", seconds=self.seconds)
        if expired is None:
            expired = sf.Pass(
                f"{noun} timed out",
                parameters={
                    "Error": f"{noun.title().replace(' ', '')}.Timeout",
                    "Cause.$": (
                        f"States.Format('The {self.subject} was still {{}} after {{}} polls, "
                        f"one every {self.seconds} s.', {self.state}, {self.path}.polls)"
                    ),
                },
                result_path="$.error",
            )
            expired.next(failed)
        check = sf.Choice(f"Check {self.subject}")
        limit = rule.NumericGreaterThanEquals(f"{self.path}.polls", self.max_polls)
        check.add_choice(rule.And([self.running, limit]), expired)
        check.add_choice(self.running, count)
        for name, matches, cause in outcomes:
            ended = sf.Pass(
                name,
                parameters={"Error": f"{noun}.Failed", "Cause.$": cause},
                result_path="$.error",
            )
            ended.next(failed)
            check.add_choice(matches, ended)
        check.default_choice(then)
        # Not chained: State.next returns its argument.
        start.next(self.get)
        self.get.next(check)
        count.next(wait)
        wait.next(self.get)
        return start


JOB_RUN_IN_FLIGHT: Final = ("STARTING", "RUNNING", "WAITING")
"""Job run states of a run not ended yet; WAITING: waiting for resources
(https://docs.aws.amazon.com/glue/latest/dg/job-run-statuses.html)."""


@dataclass(frozen=True)
class _InFlight:
    """Which Glue job's runs a poll watches, and how: every ``seconds``, ``max_polls`` times."""

    subject: str
    job: str
    """The job's placeholder."""
    newest: int
    """How many of its newest runs to look at: enough to hold every run in flight."""
    seconds: int
    max_polls: int


def _runs_in_flight(
    settings: Settings, additions: _Additions, failed: Any, watched: _InFlight
) -> _Poll:
    """A bounded poll of whether any of the newest runs of a Glue job is in flight. GetJobRuns
    returns the newest runs first
    (https://docs.aws.amazon.com/glue/latest/webapi/API_GetJobRuns.html)."""
    workflow = settings.workflow
    rule = _sdk().ChoiceRule
    subject, job, newest = watched.subject, watched.job, watched.newest
    path = "$." + subject.replace(" ", "_")
    get = _SdkCalls(settings, additions, failed).task(
        f"List {subject}",
        "glue:getJobRuns",
        {"JobName": job, "MaxResults": newest},
        f"{path}.status",
        _transient(_GLUE_API_TRANSIENT, workflow),
    )
    additions.add(
        get,
        ResultSelector={
            f"{state.lower()}.$": f"States.ArrayContains($.JobRuns[*].JobRunState, '{state}')"
            for state in JOB_RUN_IN_FLIGHT
        },
    )
    running = rule.Or(
        [rule.BooleanEquals(f"{path}.status.{state.lower()}", True) for state in JOB_RUN_IN_FLIGHT]
    )
    return _Poll(subject, path, get, running, f"{path}.status", watched.seconds, watched.max_polls)


def _burst_wait(settings: Settings, additions: _Additions, failure: _Failure, then: Any) -> Any:
    """Wait, bounded, while other validation runs are in flight; then ``then``.

    A burst's runs finish their validations one by one; waiting for the last of them brings
    them to the load together, where one crawl and one load serve them all (``_load``).
    GetJobRuns returns the newest runs first
    (https://docs.aws.amazon.com/glue/latest/webapi/API_GetJobRuns.html), so the runs in
    flight are on its first page. A run waiting for resources is WAITING
    (https://docs.aws.amazon.com/glue/latest/dg/job-run-statuses.html). Out of polls the run
    goes on, so uploads that never pause still load.
    """
    workflow = settings.workflow
    failed = failure.step("burst wait")
    watched = _InFlight(
        "validation runs",
        "${ValidationJobName}",
        workflow.burst_newest_runs,
        workflow.burst_poll_seconds,
        workflow.burst_max_polls,
    )
    return _runs_in_flight(settings, additions, failed, watched).loop(failed, [], then, then)


def _crawl(settings: Settings, additions: _Additions, failure: _Failure, then: Any) -> Any:
    """Start the crawler, or join the crawl in progress, then poll it until the crawl ends
    (``then``), fails or times out.

    A crawl in progress serves a run that joins it: the crawler's table is the validated
    prefix's, so a file written while it crawls is in the table once the crawl has made it.
    Crawlers have no ``.sync`` integration: a bounded ``_Poll`` of GetCrawler.
    """
    sf = _sdk()
    workflow = settings.workflow
    crawl_failed = failure.step("crawl")
    calls = _SdkCalls(settings, additions, crawl_failed)
    crawler = {"Name": "${CrawlerName}"}
    transient = _transient(_GLUE_API_TRANSIENT, workflow)
    get = calls.task("Get crawler", "glue:getCrawler", crawler, "$.crawl.status", transient)

    rule = sf.ChoiceRule
    crawler_state = "$.crawl.status.Crawler.State"
    last_crawl = "$.crawl.status.Crawler.LastCrawl.Status"
    poll = _Poll(
        "crawl",
        "$.crawl",
        get,
        # Once the crawler is READY again, the crawl we started or joined has ended.
        running=rule.Not(rule.StringEquals(crawler_state, "READY")),
        state=crawler_state,
        seconds=workflow.crawler_poll_seconds,
        max_polls=workflow.crawler_max_polls,
    )
    unsuccessful = rule.Or(
        [rule.StringEquals(last_crawl, "FAILED"), rule.StringEquals(last_crawl, "CANCELLED")]
    )
    cause = (
        f"States.Format('The crawl ended {{}}: see the crawler log in CloudWatch.', {last_crawl})"
    )
    # AWS reports a good crawl as SUCCEEDED, moto as COMPLETED: anything else READY is done.
    crawling = poll.loop(crawl_failed, [("Crawl unsuccessful", unsuccessful, cause)], then)
    start = calls.task(
        "Start crawler",
        "glue:startCrawler",
        crawler,
        None,
        transient,
        caught=[(_CRAWLER_BUSY, crawling, "$.joined_crawl")],
        comment="A crawl in progress is joined, not queued behind.",
    )
    start.next(crawling)
    return start


def _catalog_dimension(
    settings: Settings, additions: _Additions, failure: _Failure, then: Any
) -> Any:
    """Start the dimension's crawler once a new dimension is promoted, and go on (``then``)
    without waiting: no load reads the catalog's dimension table, it is for whoever queries the
    catalog. A crawl in progress is left to finish; the next promotion crawls again."""
    calls = _SdkCalls(settings, additions, failure.step("catalog dimension"))
    start = calls.task(
        "Catalog dimension",
        "glue:startCrawler",
        {"Name": "${DimensionCrawlerName}"},
        None,
        _transient(_GLUE_API_TRANSIENT, settings.workflow),
        caught=[(_CRAWLER_BUSY, then, "$.joined_crawl")],
    )
    start.next(then)
    return start


def _load(
    settings: Settings,
    additions: _Additions,
    failure: _Failure,
    *,
    loaded: Any,
    superseded: Any,
    crawl: Callable[[Any], Any],
) -> Any:
    """Load the run's version once, whichever run's load it is: then ``loaded``.

    The load is bookmarked: one run loads every validated version waiting. So a run waits
    while a load is in flight, then asks the warehouse whether a load wrote (or rejected) its
    version; if none did, and its version is still the validated copy (else a newer upload
    replaced it: ``superseded``), it starts the load itself. A burst's runs so wait for one
    load instead of each starting its own. A start refused because another run's load started
    meanwhile is an answer, not an error: the run waits for that load. Each wait is bounded by
    ``load_wait_seconds``; the run fails once ``load_attempts`` loads it waited for or started
    left its version unloaded.

    The run whose load it was then has the validated files crawled (``crawl``: the states that
    crawl, then go on to the state given), so the catalog follows each load with one crawl,
    not one per upload. The load needs no catalog: it names its files by its bookmark and
    reads them from S3.
    """
    sf = _sdk()
    rule = sf.ChoiceRule
    workflow = settings.workflow
    storage = settings.storage
    load_failed = failure.step("load")

    attempts = _Attempts(
        "load",
        "$.attempts",
        error="Load.Timeout",
        cause="The version was still not loaded after {} loads this run started or waited for.",
    )
    start_attempts, attempt, exhausted = attempts.start, attempts.count, attempts.exhausted
    outcome = sf.Choice("Loaded yet?")
    check = _count_loaded_rows(settings, additions, failure, then=_rejected(failure, outcome))
    watched = _InFlight(
        "load runs", "${EtlJobName}", 1, workflow.load_poll_seconds, workflow.load_max_polls
    )
    # The load job runs one at a time: its newest run is the only one that can be in flight.
    waiting = _runs_in_flight(settings, additions, load_failed, watched).loop(
        load_failed, [], check
    )
    start_attempts.next(waiting)
    attempt.next(waiting)

    exhausted.next(load_failed)

    name = "States.StringSplit($.key, '/')"
    last = f"States.ArrayGetItem({name}, States.MathAdd(States.ArrayLength({name}), -1))"
    calls = _SdkCalls(settings, additions, load_failed)
    no_copy = sf.Pass("No validated copy", result={}, result_path="$.copy")
    read_copy = calls.task(
        "Read validated copy",
        "s3:headObject",
        {
            "Bucket": "${RawBucket}",
            "Key.$": f"States.Format('{_escaped(storage.validated_prefix)}{{}}', {last})",
        },
        "$.copy",
        _transient(_S3_TRANSIENT, workflow),
        # A newer upload's copy that a load rejected is behind a delete marker.
        caught=[(_S3_NOT_FOUND, no_copy, "$.copy")],
    )
    additions.add(read_copy, ResultSelector={"Metadata.$": "$.Metadata"})

    run_load = sf.Task(
        "Load validated files",
        resource=_GLUE_RUN_JOB,
        comment="Bookmarked: loads every validated version not loaded yet, one run at a time.",
        parameters={
            "JobName": "${EtlJobName}",
            "Arguments": {
                "--job-bookmark-option": "job-bookmark-enable",
                "--validated_uri": f"s3://${{RawBucket}}/{storage.validated_prefix}",
                "--dimension_uri": f"s3://${{DimensionBucket}}/{storage.validated_dimension_key}",
                "--staging_uri": f"s3://${{StagingBucket}}/{storage.staging_prefix}",
                "--redshift_workgroup": "${WorkgroupName}",
                "--redshift_database": "${DatabaseName}",
                "--redshift_copy_role_arn": "${RedshiftCopyRoleArn}",
                # For rejected files no run of their own reports: the load alerts itself.
                "--alert_topic_arn": "${AlertTopicArn}",
                "--state_machine_arn.$": "$$.StateMachine.Id",
            },
        },
        result_path="$.load",
        timeout_seconds=workflow.job_timeout_seconds,
    )
    additions.add(run_load, ResultSelector=_GLUE_RUN_SUMMARY)
    additions.retry(run_load, _transient(_GLUE_JOB_TRANSIENT, workflow))
    run_load.add_catch(
        sf.Catch(error_equals=list(_GLUE_JOB_BUSY), result_path="$.load_busy", next_step=attempt)
    )
    failure.catch(run_load, load_failed)
    run_load.next(crawl(attempt))

    version = "$.copy.Metadata['source-version']"
    still_ours = sf.Choice("Still this version's copy?")
    still_ours.add_choice(
        rule.And([rule.IsPresent(version, True), rule.StringEqualsPath(version, "$.version_id")]),
        run_load,
    )
    still_ours.default_choice(superseded)
    read_copy.next(still_ours)
    no_copy.next(still_ours)

    outcome.add_choice(rule.IsPresent("$.count.rows.LongValue", True), loaded)
    outcome.add_choice(
        rule.NumericGreaterThanEquals("$.attempts.count", workflow.load_attempts), exhausted
    )
    outcome.default_choice(read_copy)
    return start_attempts


def _escaped(text: str) -> str:
    """``text`` inside an intrinsic function's quoted string."""
    return re.sub(r"([\\'{}])", r"\\\1", text)


def _count_loaded_rows(
    settings: Settings, additions: _Additions, failure: _Failure, then: Any
) -> Any:
    """Ask the warehouse, through the Redshift Data API, how many rows the file has loaded,
    and whether a load rejected this upload's version.

    The load is bookmarked: another run's load may have loaded (or rejected) this file, so the
    count comes from the load audit by source key (the file's validated copy), and the
    rejection from the reject records by upload key and version, not from this run's load.
    ExecuteStatement only submits the statement: DescribeStatement is polled (``_Poll``) until
    it is FINISHED, FAILED or ABORTED, and only a FINISHED statement's result is read
    (GetStatementResult refuses one that is not, with ValidationException).
    """
    sf = _sdk()
    workflow = settings.workflow
    count_failed = failure.step("row count")
    query = {
        "WorkgroupName": "${WorkgroupName}",
        "Database": "${DatabaseName}",
        "Sql": loaded_rows_sql(),
        "Parameters": [
            {"Name": "upload_key", "Value.$": "$.key"},
            {"Name": "upload_version", "Value.$": "$.version_id"},
        ],
    }
    calls = _SdkCalls(settings, additions, count_failed)
    execute_retry = _transient(_REDSHIFT_DATA_EXECUTE_TRANSIENT, workflow)
    execute = calls.task(
        "Count loaded rows", "redshiftdata:executeStatement", query, "$.count", execute_retry
    )
    additions.add(execute, ResultSelector={"Id.$": "$.Id"})
    statement = {"Id.$": "$.count.Id"}
    transient = _transient(_REDSHIFT_DATA_READ_TRANSIENT, workflow)
    describe = calls.task(
        "Describe statement",
        "redshiftdata:describeStatement",
        statement,
        "$.statement.status",
        transient,
    )
    read = calls.task(
        "Read loaded rows", "redshiftdata:getStatementResult", statement, "$.count", transient
    )
    # One row of three columns; the fields, not their values: a path may not go past an index.
    additions.add(
        read,
        ResultSelector={
            "rows.$": "$.Records[0][0]",
            "load_run.$": "$.Records[0][1]",
            "rejected.$": "$.Records[0][2]",
        },
    )
    read.next(then)

    rule = sf.ChoiceRule
    status, error = "$.statement.status.Status", "$.statement.status.Error"
    poll = _Poll(
        "statement",
        "$.statement",
        describe,
        running=rule.Not(
            rule.Or(
                [rule.StringEquals(status, final) for final in ("FINISHED", "FAILED", "ABORTED")]
            )
        ),
        state=status,
        seconds=workflow.statement_poll_seconds,
        max_polls=workflow.statement_max_polls,
    )
    # A FAILED statement says why in Error; an ABORTED one (cancelled) need not.
    failed = (
        "Statement failed",
        rule.IsPresent(error, True),
        f"States.Format('The row count query ended {{}}: {{}}', {status}, {error})",
    )
    ended = (
        "Statement not finished",
        rule.Not(rule.StringEquals(status, "FINISHED")),
        f"States.Format('The row count query ended {{}}.', {status})",
    )
    execute.next(poll.loop(count_failed, [failed, ended], read))
    return execute


def loaded_rows_sql() -> str:
    """The rows a load wrote from the upload's version and that load's job run (NULL while no
    load has), and why a load rejected it (NULL when none did): by ``:upload_key`` and
    ``:upload_version``, which the audit and the reject records both keep."""
    of_upload = "WHERE upload_key = :upload_key AND upload_version = :upload_version"
    latest = "ORDER BY loaded_at DESC LIMIT 1"
    audit = FLIGHT_LOAD_AUDIT.name
    return (
        f"SELECT (SELECT row_count FROM {audit} {of_upload} {latest}) AS row_count, "
        f"(SELECT job_run_id FROM {audit} {of_upload} {latest}) AS load_run, "
        "(SELECT 'the load set aside ' || validated_key || ': ' || reason "
        f"FROM {FLIGHT_LOAD_REJECTS.name} {of_upload} {latest}) AS rejected"
    )


def _rejected(failure: _Failure, then: Any) -> Any:
    """Fail the run at the load step when a load rejected this upload's version (whichever
    run's load it was), with the reject record's reason as the cause; else ``then``."""
    sf = _sdk()
    rejected = sf.Pass(
        "Load rejected the file",
        parameters={"Error": REJECTED_AT_LOAD, "Cause.$": "$.count.rejected.StringValue"},
        result_path="$.error",
    )
    rejected.next(failure.step("load"))
    check = sf.Choice("Rejected at load?")
    check.add_choice(sf.ChoiceRule.IsPresent("$.count.rejected.StringValue", True), rejected)
    check.default_choice(then)
    return check


@dataclass(frozen=True)
class _Outcome:
    """A successful run's message: its state's name, subject and text (``States.Format``)."""

    state: str
    subject: str
    message: str


_LOADED: Final = _Outcome(
    "Publish success",
    "file loaded",
    "States.Format('Loaded s3://{}/{} (version {}): {} rows in the warehouse (load audit), "
    "written by load run {}. Validation run {}. Execution: {}.', $.bucket, $.key, $.version_id, "
    "$.count.rows.LongValue, $.count.load_run.StringValue, $.validation.JobRunId, "
    "$$.Execution.Id)",
)
_SUPERSEDED: Final = _Outcome(
    "Publish superseded",
    "file superseded",
    "States.Format('Superseded s3://{}/{} (version {}): a newer upload of the same file replaced "
    "it before a load read it, and the run of that upload reports its own load. Validation "
    "run {}. "
    "Execution: {}.', $.bucket, $.key, $.version_id, $.validation.JobRunId, $$.Execution.Id)",
)


_DIMENSION: Final = _Outcome(
    "Publish dimension validated",
    "airport dimension validated",
    "States.Format('Validated the airport dimension s3://{}/{} (version {}): loads from now on "
    "join the newest upload of it that passed. Validation run {}. Execution: {}.', $.bucket, "
    "$.key, $.version_id, $.validation.JobRunId, $$.Execution.Id)",
)


def _message(
    settings: Settings, additions: _Additions, failure: _Failure, outcome: _Outcome
) -> Any:
    publish = _sdk().Task(
        outcome.state,
        resource=_SNS_PUBLISH,
        parameters={
            "TopicArn": "${AlertTopicArn}",
            "Subject": f"flightpipe {settings.env.value}: {outcome.subject}",
            "Message.$": outcome.message,
            "MessageAttributes": _outcome("succeeded"),
        },
        result_path=None,
    )
    additions.retry(publish, _transient(_SNS_TRANSIENT, settings.workflow))
    failure.catch(publish, failure.step("success message"))
    return publish


def router_definition(settings: Settings) -> dict[str, Any]:
    """The router's ASL (an Express state machine): one S3 Object Created event, one main run."""
    sf = _sdk()
    additions = _Additions()
    failure = _Failure.build(settings, additions)

    read = sf.Pass(
        "Read upload",
        parameters={
            "bucket.$": "$.detail.bucket.name",
            "key.$": "$.detail.object.key",
            "version_id.$": "$.detail.object['version-id']",
        },
    )
    start = sf.Task(
        "Start run",
        resource="arn:aws:states:::states:startExecution",
        comment="The name is a function of the object version: a duplicate event finds it taken.",
        parameters={
            "StateMachineArn": "${MainStateMachineArn}",
            # 64 hex digits: within the 80 characters an execution name may have.
            "Name.$": (
                "States.Hash(States.Format('{}/{}/{}', $.bucket, $.key, $.version_id), 'SHA-256')"
            ),
            "Input.$": "$",
        },
        result_path="$.run",
        timeout_seconds=settings.workflow.api_timeout_seconds,
    )
    additions.add(start, ResultSelector={"ExecutionArn.$": "$.ExecutionArn"})
    additions.retry(start, _transient(_SFN_TRANSIENT, settings.workflow))
    start.add_catch(
        sf.Catch(
            error_equals=list(_SFN_DUPLICATE),
            result_path="$.duplicate",
            next_step=sf.Succeed(
                "Duplicate event", comment="This object version already has a run."
            ),
        )
    )
    failure.catch(start, failure.step("start"))
    read.next(start)

    graph = sf.Graph(read, comment="Start one main run per uploaded object version.")
    return additions.apply(graph.to_dict())


def render(definition: Mapping[str, Any]) -> str:
    """The definition as JSON: the SDK's state order, indented, byte-for-byte stable."""
    return json.dumps(definition, indent=2)


def placeholders(definition: Mapping[str, Any]) -> set[str]:
    """The ``${Name}`` placeholders a definition holds."""
    return set(_PLACEHOLDER.findall(render(definition)))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Fill every ``${Name}`` in ``text`` with ``values[Name]``, as CDK's substitutions do.

    Raises ``KeyError`` naming the placeholders ``values`` lacks: a definition with a
    placeholder left in it would fail only when the state using it runs.
    """
    missing = sorted(set(_PLACEHOLDER.findall(text)) - values.keys())
    if missing:
        raise KeyError(f"no value for placeholder(s): {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
