"""The twin provisions what the CDK app deploys: the local-shaped stack, synthesized from the
twin's own settings, against the resources the twin created on its endpoint.

Each template value is resolved as CloudFormation would resolve it in the twin's account
(``Ref``, ``Fn::GetAtt``, ``Fn::Join``, the pseudo parameters); roles resolve to the twin's one
role, since the twin checks no rights; the report site's address to the twin's ``s3://``
location of it, since the twin has no CloudFront. The twin names its buckets after ``local.account``
while its endpoint's ARNs carry the endpoint's own account: ``AWS::AccountId`` resolves to the
former, the ARNs of topics and machines to the latter. A job argument, a definition, an event
pattern, a crawler target, a bucket or a subscription that one side has and the other lacks
fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline import packaging
from pipeline.local.resources import Resources
from pipeline.local.services import LocalServices
from pipeline.local.twin import LocalTwin
from pipeline.settings import Settings
from pipeline.workflow import substitute
from tests.conftest import isolated_settings
from tests.test_cdk import properties, synthesize

pytestmark = [pytest.mark.slow, pytest.mark.services]

Resolver = Callable[[Any], Any]


def resolver(template: dict[str, Any], settings: Settings, account: str, role: str) -> Resolver:
    region = settings.local.region
    pseudo = {
        "AWS::AccountId": settings.local.account,
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return ref(value["Ref"])
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolve(p)) for p in parts)
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            return get_att(logical, attribute)
        return {k: resolve(v) for k, v in value.items()}

    def ref(logical: str) -> str:
        if logical in pseudo:
            return pseudo[logical]
        resource = template["Resources"][logical]
        props = resource["Properties"]
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            return str(resolve(props["BucketName"]))
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{region}:{account}:{props['TopicName']}"
        if kind == "AWS::StepFunctions::StateMachine":
            return f"arn:aws:states:{region}:{account}:stateMachine:{props['StateMachineName']}"
        raise AssertionError(f"no local value for a Ref of {kind}")

    def get_att(logical: str, attribute: str) -> str:
        resource = template["Resources"][logical]
        if resource["Type"] == "AWS::IAM::Role" and attribute == "Arn":
            return role
        if resource["Type"] == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{ref(logical)}"
        raise AssertionError(f"no local value for {resource['Type']}.{attribute}")

    return resolve


@dataclass(frozen=True)
class Sides:
    """The twin, provisioned, and the local-shaped stack's template, from the same settings."""

    settings: Settings
    twin: LocalTwin
    provisioned: Resources
    template: dict[str, Any]
    resolve: Resolver


@pytest.fixture(scope="module")
def sides(
    services: LocalServices,
    artifact: packaging.Artifact,
    tmp_path_factory: pytest.TempPathFactory,
) -> Sides:
    base = isolated_settings("cdk parity")
    workflow = base.workflow.model_copy(
        update={"on_call_emails": ("on-call@example.com",), "on_call_sms": ("+15555550100",)}
    )
    settings = base.model_copy(update={"workflow": workflow})
    twin = LocalTwin(settings)
    twin.start()
    provisioned = twin.resources
    template = synthesize([settings], artifact.out, tmp_path_factory.mktemp("parity"))["local"]
    account = provisioned.main_arn.split(":")[4]
    role = twin.client("stepfunctions").describe_state_machine(
        stateMachineArn=provisioned.main_arn
    )["roleArn"]
    return Sides(settings, twin, provisioned, template, resolver(template, settings, account, role))


def test_each_job_is_the_deployed_job(sides: Sides) -> None:
    glue = sides.twin.client("glue")
    jobs = properties(sides.template, "AWS::Glue::Job")
    assert len(jobs) == 2
    for job in jobs:
        local = glue.get_job(JobName=job["Name"])["Job"]
        deployed = sides.resolve(job)
        assert local["Command"]["ScriptLocation"] == deployed["Command"]["ScriptLocation"]
        assert local["DefaultArguments"] == deployed["DefaultArguments"], job["Name"]
        for key in (
            "GlueVersion",
            "WorkerType",
            "NumberOfWorkers",
            "Timeout",
            "MaxRetries",
            "ExecutionClass",
            "ExecutionProperty",
            "SecurityConfiguration",
        ):
            assert local[key] == deployed[key], (job["Name"], key)
        assert local.get("Connections") == deployed.get("Connections"), job["Name"]
        # moto keeps no JobRunQueuingEnabled: the template test checks it is off.


def test_each_crawler_crawls_what_the_deployed_one_crawls(sides: Sides) -> None:
    glue = sides.twin.client("glue")
    crawlers = properties(sides.template, "AWS::Glue::Crawler")
    assert len(crawlers) == 3
    for crawler in crawlers:
        local = glue.get_crawler(Name=crawler["Name"])["Crawler"]
        deployed = sides.resolve(crawler)
        assert local["DatabaseName"] == deployed["DatabaseName"]
        found = {kind: targets for kind, targets in local["Targets"].items() if targets}
        assert found == deployed["Targets"], crawler["Name"]
        schedule = deployed.get("Schedule", {}).get("ScheduleExpression")
        assert local.get("Schedule", {}).get("ScheduleExpression") == schedule


def test_each_state_machine_runs_the_deployed_definition(sides: Sides) -> None:
    settings = sides.settings
    sfn = sides.twin.client("stepfunctions")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    deployed = properties(sides.template, "AWS::StepFunctions::StateMachine")
    assert len(deployed) == 2
    for machine in deployed:
        local = sfn.describe_state_machine(stateMachineArn=machines[machine["StateMachineName"]])
        substitutions = dict(machine["DefinitionSubstitutions"])
        # The twin serves no site (no CloudFront): its alerts link the report's s3:// location.
        del substitutions["ReportsUrl"]
        values = {
            **sides.resolve(substitutions),
            "ReportsUrl": f"s3://{settings.reports_bucket}/{settings.storage.reports_prefix}",
        }
        assert local["definition"] == substitute(machine["DefinitionString"], values)
        assert local["type"] == machine["StateMachineType"]


def test_uploads_reach_the_router_as_the_deployed_rules_send_them(sides: Sides) -> None:
    events = sides.twin.client("events")
    rules = properties(sides.template, "AWS::Events::Rule")
    assert len(rules) == 2
    for rule in rules:
        local = events.describe_rule(Name=rule["Name"])
        assert json.loads(local["EventPattern"]) == sides.resolve(rule["EventPattern"])
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        (deployed,) = rule["Targets"]
        assert target["Arn"] == sides.resolve(deployed["Arn"])
        assert target["RetryPolicy"] == deployed["RetryPolicy"]


def test_the_twins_buckets_are_deployed_buckets(sides: Sides) -> None:
    deployed = {
        sides.resolve(b["BucketName"]): b for b in properties(sides.template, "AWS::S3::Bucket")
    }
    s3 = sides.twin.client("s3")
    created = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    twins = {p: n for p, n in sides.settings.buckets().items() if n in created}
    # The twin keeps its report site on disk: it has every bucket but that one.
    assert set(twins) == {"raw", "dim", "staging"}
    for purpose, name in twins.items():
        bucket = deployed[name]
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status")
        assert versioning == bucket.get("VersioningConfiguration", {}).get("Status"), purpose
        # moto 5.2.5's GetBucketNotificationConfiguration leaves EventBridgeConfiguration out:
        # that the uploaded buckets' events reach the router, the orchestration tests show.


def test_on_call_is_subscribed_as_the_deployed_topic_subscribes_it(sides: Sides) -> None:
    sns = sides.twin.client("sns")
    topic = sides.provisioned.topic_arn
    local = {
        (s["Protocol"], s["Endpoint"]): json.loads(
            sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])["Attributes"][
                "FilterPolicy"
            ]
        )
        for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    }
    deployed = {
        (s["Protocol"], s["Endpoint"]): s["FilterPolicy"]
        for s in properties(sides.template, "AWS::SNS::Subscription")
        if sides.resolve(s["TopicArn"]) == topic
    }
    assert local == deployed
    assert len(local) == 2


def test_provisioning_again_brings_the_subscriptions_to_the_settings_and_keeps_crawlers(
    settings: Settings,
) -> None:
    """A twin started again with other on-call settings has exactly those subscriptions, as
    a deployment of the changed stack would."""
    from pipeline.local.resources import provision

    def with_on_call(emails: tuple[str, ...], sms: tuple[str, ...]) -> Settings:
        workflow = settings.workflow.model_copy(
            update={"on_call_emails": emails, "on_call_sms": sms}
        )
        return settings.model_copy(update={"workflow": workflow})

    twin = LocalTwin(with_on_call(("old@example.com", "kept@example.com"), ()))
    twin.start()
    topic = twin.resources.topic_arn
    sns = twin.client("sns")
    glue = twin.client("glue")
    crawler = twin.resources.names.flight_crawler
    created = glue.get_crawler(Name=crawler)["Crawler"]["CreationTime"]
    provision(with_on_call(("kept@example.com",), ("+15555550100",)), twin.services.endpoint)
    # An unchanged crawler is left as it is, its crawls with it.
    assert glue.get_crawler(Name=crawler)["Crawler"]["CreationTime"] == created
    subscribed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert {(s["Protocol"], s["Endpoint"]) for s in subscribed} == {
        ("email", "kept@example.com"),
        ("sms", "+15555550100"),
    }
