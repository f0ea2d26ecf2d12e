"""The local twin's AWS resources, created on its endpoint as CDK creates them on AWS.

Glue database, the three crawlers and the two jobs; the SNS topic with the on-call
subscriptions, and operations' topic; the EventBridge rules sending upload events to the
router; and both state machines, from the very definitions ``pipeline.workflow`` renders,
filled in with ``substitute``. What each is made of comes from ``pipeline.deployment``, as
CDK's does: this module only makes the API calls. ``provision`` is idempotent: it creates
what is missing and brings the rest up to date with the settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pipeline import deployment, workflow
from pipeline.deployment import Names
from pipeline.local.objects import aws_client
from pipeline.settings import UPLOADED_BUCKETS, Settings
from pipeline.workflow import main_definition, render, router_definition, substitute

# Roles are not checked by the twin; these name what each would be on AWS.
_ROLE: Final = "arn:aws:iam::{account}:role/{name}"


@dataclass(frozen=True)
class Resources:
    """One environment's resources on the local endpoint: names and ARNs."""

    names: Names
    topic_arn: str
    operations_topic_arn: str
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
            operations_topic_arn=f"arn:aws:sns:{region}:{account}:{names.operations_topic}",
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
    for module in (workflow, deployment, sys.modules[__name__]):
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


def provision(settings: Settings, endpoint: str) -> None:
    """Create or update every resource of the pipeline on the local endpoint."""
    names = Names.of(settings)
    account = settings.local.account
    role = _ROLE.format(account=account, name=settings.resource_name("role"))
    buckets = settings.buckets()

    def client(service: str) -> Any:
        return aws_client(service, settings, endpoint)

    glue = client("glue")
    _database(glue, names.database)
    for crawler in deployment.crawlers(settings, buckets["raw"], buckets["dim"]):
        _crawler(glue, crawler, names, role)
    artifacts = settings.bucket_name(deployment.ARTIFACTS, account)
    for job in deployment.glue_jobs(settings, artifacts):
        _job(glue, job, role, artifacts)

    topic_arn = _topic(client("sns"), names.topic, deployment.subscriptions(settings))
    # Operations' topic: a failed deployment is told there (`flightpipe deployment-failed`).
    _topic(client("sns"), names.operations_topic, ())
    sfn = client("stepfunctions")
    values = deployment.substitutions(
        settings, buckets, alert_topic_arn=topic_arn, copy_role_arn=role
    )
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
        (names.upload_rule, deployment.upload_events(settings, buckets["raw"])),
        (names.dimension_rule, deployment.dimension_events(settings, buckets["dim"])),
    ):
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        # No dead-letter queue on the twin: its router takes every event or fails it.
        retry = {
            "MaximumRetryAttempts": deployment.EVENT_RETRIES,
            "MaximumEventAgeInSeconds": deployment.EVENT_MAX_AGE_SECONDS,
        }
        events.put_targets(
            Rule=rule,
            Targets=[{"Id": "router", "Arn": router_arn, "RoleArn": role, "RetryPolicy": retry}],
        )
    s3 = client("s3")
    for bucket in (buckets[purpose] for purpose in UPLOADED_BUCKETS):
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _database(glue: Any, name: str) -> None:
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": name})


def _crawler(glue: Any, crawler: deployment.Crawler, names: Names, role: str) -> None:
    """Create the crawler, or bring it up to date (a twin restored from its state folder has
    the crawlers of its last start)."""
    targets: dict[str, Any] = (
        {"S3Targets": [{"Path": crawler.s3_path}]}
        if crawler.s3_path is not None
        else {"JdbcTargets": [{"ConnectionName": names.connection, "Path": crawler.jdbc_path}]}
    )
    definition: dict[str, Any] = {
        "Name": crawler.name,
        "Role": role,
        "DatabaseName": names.database,
        "Targets": targets,
    }
    if crawler.schedule is not None:
        definition["Schedule"] = crawler.schedule
    try:
        existing = glue.get_crawler(Name=crawler.name)["Crawler"]
    except glue.exceptions.EntityNotFoundException:
        glue.create_crawler(**definition)
        return
    found = {
        "Targets": {kind: targets for kind, targets in existing["Targets"].items() if targets},
        "Schedule": existing.get("Schedule", {}).get("ScheduleExpression"),
        "DatabaseName": existing["DatabaseName"],
    }
    if found != {
        **{k: definition[k] for k in ("Targets", "DatabaseName")},
        "Schedule": crawler.schedule,
    }:
        # moto 5.2.5 has no UpdateCrawler (a 500): a crawler whose definition changed is
        # created anew, its crawls forgotten.
        glue.delete_crawler(Name=crawler.name)
        glue.create_crawler(**definition)


def _job(glue: Any, job: deployment.GlueJob, role: str, artifacts: str) -> None:
    definition: dict[str, Any] = {
        "Role": role,
        "Command": {
            "Name": job.command,
            "ScriptLocation": job.script_location(artifacts),
            "PythonVersion": "3",
        },
        "GlueVersion": deployment.GLUE_VERSION,
        "DefaultArguments": dict(job.default_arguments),
        "ExecutionProperty": {"MaxConcurrentRuns": job.max_concurrent_runs},
        "Timeout": job.timeout_minutes,
        "MaxRetries": job.max_retries,
        "WorkerType": job.worker_type,
        "NumberOfWorkers": job.workers,
        "ExecutionClass": job.execution_class,
        "SecurityConfiguration": job.security_configuration,
    }
    if job.connections:
        definition["Connections"] = {"Connections": list(job.connections)}
    # moto has no UpdateJob: a job whose settings changed is created anew.
    with contextlib.suppress(glue.exceptions.EntityNotFoundException):
        glue.delete_job(JobName=job.name)
    glue.create_job(Name=job.name, **definition)


def _topic(sns: Any, name: str, wanted: tuple[deployment.Subscription, ...]) -> str:
    """The alert topic with exactly the ``wanted`` subscriptions: new ones subscribed, the
    others' filters brought up to date, those no longer wanted removed."""
    arn: str = sns.create_topic(Name=name)["TopicArn"]
    subscribed = {
        (s["Protocol"], s["Endpoint"]): s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    }
    for subscription in wanted:
        policy = deployment.filter_policy_json(subscription)
        existing = subscribed.pop((subscription.protocol, subscription.endpoint), None)
        if existing is None:
            sns.subscribe(
                TopicArn=arn,
                Protocol=subscription.protocol,
                Endpoint=subscription.endpoint,
                Attributes={"FilterPolicy": policy},
            )
        else:
            sns.set_subscription_attributes(
                SubscriptionArn=existing, AttributeName="FilterPolicy", AttributeValue=policy
            )
    for unwanted in subscribed.values():
        sns.unsubscribe(SubscriptionArn=unwanted)
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
