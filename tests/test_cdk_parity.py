"""The twin provisions what the CDK app deploys: the local-shaped stack, synthesized from the
twin's own settings, against the resources the twin created on its endpoint.

Each template value is resolved as CloudFormation would resolve it in the twin's account
(``Ref``, ``Fn::GetAtt``, ``Fn::Join``, the pseudo parameters); roles resolve to the twin's one
role, since the twin checks no rights. The twin names its buckets after ``local.account``
while its endpoint's ARNs carry the endpoint's own account: ``AWS::AccountId`` resolves to the
former, the ARNs of topics and machines to the latter. A job argument, a definition, an event
pattern, a crawler target, a bucket or a subscription that one side has and the other lacks
fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline import packaging
from pipeline.local.twin import LocalTwin
from pipeline.settings import Settings
from pipeline.workflow import substitute
from tests.test_cdk import properties, resources, synthesize

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


@pytest.fixture
def on_call(settings: Settings) -> Settings:
    workflow = settings.workflow.model_copy(
        update={"on_call_emails": ("on-call@example.com",), "on_call_sms": ("+15555550100",)}
    )
    return settings.model_copy(update={"workflow": workflow})


def test_the_twin_provisions_what_the_local_shaped_stack_deploys(
    on_call: Settings, artifact: packaging.Artifact, tmp_path: Path
) -> None:
    settings = on_call
    twin = LocalTwin(settings)
    twin.start()
    provisioned = twin.resources
    template = synthesize([settings], artifact.out, tmp_path)["local"]
    account = provisioned.main_arn.split(":")[4]
    role = twin.client("stepfunctions").describe_state_machine(
        stateMachineArn=provisioned.main_arn
    )["roleArn"]
    resolve = resolver(template, settings, account, role)

    glue = twin.client("glue")
    jobs = properties(template, "AWS::Glue::Job")
    assert jobs
    for job in jobs:
        local = glue.get_job(JobName=job["Name"])["Job"]
        deployed = resolve(job)
        assert local["Command"]["ScriptLocation"] == deployed["Command"]["ScriptLocation"]
        assert local["DefaultArguments"] == deployed["DefaultArguments"], job["Name"]
        for key in (
            "GlueVersion",
            "WorkerType",
            "NumberOfWorkers",
            "Timeout",
            "MaxRetries",
            "ExecutionClass",
        ):
            assert local[key] == deployed[key], (job["Name"], key)
        assert local["ExecutionProperty"] == deployed["ExecutionProperty"], job["Name"]

    crawlers = properties(template, "AWS::Glue::Crawler")
    assert len(crawlers) == 3
    for crawler in crawlers:
        local = glue.get_crawler(Name=crawler["Name"])["Crawler"]
        deployed = resolve(crawler)
        assert local["DatabaseName"] == deployed["DatabaseName"]
        wanted = deployed["Targets"]
        found = {k: v for k, v in local["Targets"].items() if v}
        assert {k: [dict(t) for t in v] for k, v in found.items()} == {
            k: [
                {"ConnectionName": t["ConnectionName"], "Path": t["Path"]}
                if "ConnectionName" in t
                else t
                for t in v
            ]
            for k, v in wanted.items()
        }, crawler["Name"]
        schedule = deployed.get("Schedule", {}).get("ScheduleExpression")
        assert local.get("Schedule", {}).get("ScheduleExpression") == schedule

    sfn = twin.client("stepfunctions")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    for machine in properties(template, "AWS::StepFunctions::StateMachine"):
        local = sfn.describe_state_machine(stateMachineArn=machines[machine["StateMachineName"]])
        values = resolve(machine["DefinitionSubstitutions"])
        assert local["definition"] == substitute(machine["DefinitionString"], values)
        assert local["type"] == machine["StateMachineType"]

    events = twin.client("events")
    for rule in properties(template, "AWS::Events::Rule"):
        local = events.describe_rule(Name=rule["Name"])
        assert json.loads(local["EventPattern"]) == resolve(rule["EventPattern"])
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == resolve(rule["Targets"][0]["Arn"])

    buckets = {resolve(b["BucketName"]) for b in properties(template, "AWS::S3::Bucket")}
    assert set(settings.buckets().values()) <= buckets

    sns = twin.client("sns")
    subscribed = {
        (s["Protocol"], s["Endpoint"], s["TopicArn"])
        for s in sns.list_subscriptions_by_topic(TopicArn=provisioned.topic_arn)["Subscriptions"]
    }
    deployed_subscriptions = {
        (s["Protocol"], s["Endpoint"], resolve(s["TopicArn"]))
        for s in properties(template, "AWS::SNS::Subscription")
        if resolve(s["TopicArn"]) == provisioned.topic_arn
    }
    assert subscribed == deployed_subscriptions
    assert len(subscribed) == 2
    policies = {
        json.dumps(s["FilterPolicy"], sort_keys=True)
        for s in properties(template, "AWS::SNS::Subscription")
        if resolve(s["TopicArn"]) == provisioned.topic_arn
    }
    local_policies = {
        json.dumps(
            json.loads(
                sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])["Attributes"][
                    "FilterPolicy"
                ]
            ),
            sort_keys=True,
        )
        for s in sns.list_subscriptions_by_topic(TopicArn=provisioned.topic_arn)["Subscriptions"]
    }
    assert local_policies == policies
    assert resources(template, "AWS::Glue::Database")
