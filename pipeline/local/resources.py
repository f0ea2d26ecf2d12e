"""The local twin's AWS resources, created on its endpoint as CDK creates them on AWS.

Glue database, crawler and the two jobs; the SNS topic with the on-call subscriptions; the
EventBridge rules sending upload events to the router; and both state machines, from the very
definitions ``pipeline.workflow`` renders, filled in with ``substitute``. ``provision`` is
idempotent: it creates what is missing and brings the rest up to date with the settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pipeline import workflow
from pipeline.local.objects import aws_client
from pipeline.settings import Settings
from pipeline.workflow import (
    LOAD_SCRIPT,
    VALIDATION_SCRIPT,
    main_definition,
    render,
    router_definition,
    substitute,
)

# Roles are not checked by the twin; these name what each would be on AWS.
_ROLE: Final = "arn:aws:iam::{account}:role/{name}"


@dataclass(frozen=True)
class Names:
    """The names of one environment's resources, as the settings derive them."""

    validation_job: str
    load_job: str
    crawler: str
    database: str
    topic: str
    main: str
    router: str
    upload_rule: str
    dimension_rule: str

    @classmethod
    def of(cls, settings: Settings) -> Names:
        name = settings.resource_name
        return cls(
            validation_job=name("validate"),
            load_job=name("load"),
            crawler=name("validated-crawler"),
            database=name("catalog").replace("-", "_"),
            topic=name("alerts"),
            main=name("run"),
            router=name("router"),
            upload_rule=name("uploads"),
            dimension_rule=name("dimension-uploads"),
        )


@dataclass(frozen=True)
class Resources:
    """One environment's resources on the local endpoint: names and ARNs."""

    names: Names
    topic_arn: str
    main_arn: str
    router_arn: str

    @classmethod
    def of(cls, settings: Settings, account: str) -> Resources:
        """The resources of ``settings`` in the endpoint's ``account``."""
        names = Names.of(settings)
        region = settings.local.region
        machine = f"arn:aws:states:{region}:{account}:stateMachine:"
        return cls(
            names,
            topic_arn=f"arn:aws:sns:{region}:{account}:{names.topic}",
            main_arn=machine + names.main,
            router_arn=machine + names.router,
        )


_FINGERPRINT_TAG: Final = "flightpipe-fingerprint"


def fingerprint(settings: Settings) -> str:
    """What the resources are made from: the settings and the code that renders them.

    Rendering the definitions imports the Step Functions SDK (seconds), so ``ensure``
    compares this instead, kept as a tag on the main state machine.
    """
    digest = hashlib.sha256(settings.model_dump_json().encode())
    for module in (workflow, sys.modules[__name__]):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:32]


def ensure(settings: Settings, endpoint: str) -> Resources:
    """The resources of ``settings``, provisioned first if missing or made from other inputs."""
    account = aws_client("sts", settings, endpoint).get_caller_identity()["Account"]
    resources = Resources.of(settings, account)
    sfn = aws_client("stepfunctions", settings, endpoint)
    wanted = fingerprint(settings)
    try:
        tags = sfn.list_tags_for_resource(resourceArn=resources.main_arn)["tags"]
    except sfn.exceptions.ResourceNotFound:
        tags = []
    if {"key": _FINGERPRINT_TAG, "value": wanted} not in tags:
        provision(settings, endpoint)
        sfn.tag_resource(
            resourceArn=resources.main_arn, tags=[{"key": _FINGERPRINT_TAG, "value": wanted}]
        )
    return resources


def upload_events(settings: Settings) -> dict[str, Any]:
    """The EventBridge pattern of daily-file uploads: objects created under the raw prefix."""
    return _created(settings.raw_bucket, [{"prefix": settings.storage.raw_prefix}])


def dimension_events(settings: Settings) -> dict[str, Any]:
    """The EventBridge pattern of dimension uploads."""
    return _created(settings.dimension_bucket, [settings.storage.dimension_key])


def _created(bucket: str, keys: list[Any]) -> dict[str, Any]:
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": keys}},
    }


def provision(settings: Settings, endpoint: str) -> None:
    """Create or update every resource of the pipeline on the local endpoint."""
    names = Names.of(settings)
    role = _ROLE.format(account=settings.local.account, name=settings.resource_name("role"))

    def client(service: str) -> Any:
        return aws_client(service, settings, endpoint)

    glue = client("glue")
    _database(glue, names.database)
    _crawler(glue, names, role, f"s3://{settings.raw_bucket}/{settings.storage.validated_prefix}")
    # Both jobs get what CDK gives them on AWS: the job settings, and the bookmark on the load.
    _job(
        glue,
        names.validation_job,
        role,
        VALIDATION_SCRIPT,
        # The twin validates in its worker processes: a run beyond them would only wait.
        concurrency=min(
            settings.workflow.validation_max_concurrent_runs, settings.local.validation_workers
        ),
        arguments=workflow.job_arguments(settings),
    )
    # One load at a time: bookmarks need it, and the state machine retries a refused start.
    _job(
        glue,
        names.load_job,
        role,
        LOAD_SCRIPT,
        concurrency=1,
        arguments={
            **workflow.job_arguments(settings),
            "--job-bookmark-option": "job-bookmark-enable",
        },
    )

    topic_arn = _topic(client("sns"), names.topic, settings.workflow.on_call_emails)
    sfn = client("stepfunctions")
    values = {
        "ValidationJobName": names.validation_job,
        "EtlJobName": names.load_job,
        "CrawlerName": names.crawler,
        "AlertTopicArn": topic_arn,
        "RedshiftCopyRoleArn": role,
        "RawBucket": settings.raw_bucket,
        "DimensionBucket": settings.dimension_bucket,
        "StagingBucket": settings.staging_bucket,
        "ReportsBucket": settings.reports_bucket,
    }
    main_arn = _state_machine(
        sfn, names.main, "STANDARD", substitute(render(main_definition(settings)), values), role
    )
    router_arn = _state_machine(
        sfn,
        names.router,
        "EXPRESS",
        substitute(
            render(router_definition(settings)), {**values, "MainStateMachineArn": main_arn}
        ),
        role,
    )

    events = client("events")
    for rule, pattern in (
        (names.upload_rule, upload_events(settings)),
        (names.dimension_rule, dimension_events(settings)),
    ):
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(
            Rule=rule, Targets=[{"Id": "router", "Arn": router_arn, "RoleArn": role}]
        )
    s3 = client("s3")
    for bucket in (settings.raw_bucket, settings.dimension_bucket):
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _database(glue: Any, name: str) -> None:
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": name})


def _crawler(glue: Any, names: Names, role: str, path: str) -> None:
    crawler = {
        "Name": names.crawler,
        "Role": role,
        "DatabaseName": names.database,
        "Targets": {"S3Targets": [{"Path": path}]},
    }
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_crawler(**crawler)


def _job(
    glue: Any, name: str, role: str, script: str, *, concurrency: int, arguments: dict[str, str]
) -> None:
    job = {
        "Role": role,
        "Command": {
            "Name": "glueetl",
            "ScriptLocation": f"s3://flightpipe-local-scripts/jobs/{script}",
            "PythonVersion": "3",
        },
        "GlueVersion": "5.1",
        "DefaultArguments": arguments,
        "ExecutionProperty": {"MaxConcurrentRuns": concurrency},
    }
    # moto has no UpdateJob: a job whose settings changed is created anew.
    with contextlib.suppress(glue.exceptions.EntityNotFoundException):
        glue.delete_job(JobName=name)
    glue.create_job(Name=name, **job)


def _topic(sns: Any, name: str, emails: tuple[str, ...]) -> str:
    arn: str = sns.create_topic(Name=name)["TopicArn"]
    subscribed = {
        s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    }
    for email in emails:
        if email not in subscribed:
            # Failures page on-call; success messages stay on the topic for whoever wants them.
            sns.subscribe(
                TopicArn=arn,
                Protocol="email",
                Endpoint=email,
                Attributes={"FilterPolicy": json.dumps({"outcome": ["failed"]})},
            )
    return arn


def _state_machine(sfn: Any, name: str, kind: str, definition: str, role: str) -> str:
    existing: dict[str, str] = {
        m["name"]: m["stateMachineArn"]
        for page in sfn.get_paginator("list_state_machines").paginate()
        for m in page["stateMachines"]
    }
    if name in existing:
        sfn.update_state_machine(
            stateMachineArn=existing[name], definition=definition, roleArn=role
        )
        return existing[name]
    arn: str = sfn.create_state_machine(name=name, definition=definition, roleArn=role, type=kind)[
        "stateMachineArn"
    ]
    return arn
