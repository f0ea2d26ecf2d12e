"""Small helpers the constructs share: cdk-nag suppressions, each on the narrowest node it
applies to with its reason; a log group's retention in days."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from aws_cdk import aws_logs as logs
from aws_cdk.region_info import RegionInfo
from constructs import IConstruct

REASON_MIN_WORDS: Final = 8
"""How many words an acknowledgment's reason needs at least: enough to say why, which a rule
id, "ok" or "needed" never does."""


def explains(reason: str) -> bool:
    """Whether ``reason`` is long enough to say why a finding is acknowledged: the tests hold
    every acknowledgment to it, and the pull request's review every new or changed one."""
    return len(reason.split()) >= REASON_MIN_WORDS


def suppress(node: IConstruct, rule: str, reason: str, *, applies_to: Sequence[str] = ()) -> None:
    """Acknowledge cdk-nag's ``rule`` on ``node`` and what it holds, for ``reason`` (one that
    ``explains``); with ``applies_to``, only those findings of the rule (``Resource::*``,
    ``Action::s3:*``)."""
    ids = [f"{rule}[{finding}]" for finding in applies_to] or [rule]
    Validations.of(node).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def arn_finding(scope: IConstruct, service: str, resource: str) -> str:
    """The ``Resource::`` finding cdk-nag reports for an ARN of this stack's region and the
    deploying account: ``resource`` is what follows the account (``table/db/*``)."""
    stack = Stack.of(scope)
    partition = RegionInfo.get(stack.region).partition
    return f"Resource::arn:{partition}:{service}:{stack.region}:<AWS::AccountId>:{resource}"


def logical_id(construct: IConstruct) -> str:
    """The logical id of ``construct``'s CloudFormation resource, as findings name it."""
    stack = Stack.of(construct)
    cfn = construct.node.default_child
    assert isinstance(cfn, CfnElement)
    return str(stack.resolve(stack.get_logical_id(cfn)))


def retained(group: logs.LogGroup, days: int) -> None:
    """Keep ``group``'s events ``days`` days (``aws.log_retention_days``, one of the values
    CloudWatch Logs accepts): the CloudFormation property, which takes the number itself."""
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = days
