"""The CDK app: every deployable environment's stack in one cloud assembly.

``make synth`` writes it (``cdk.out``); ``make diff ENV=...`` and ``make deploy ENV=...`` pick
one environment's stack from it. Synthesis needs no AWS account, no Docker and no lookups: each
stack has its region from the settings, and its account is the deploying one's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from aws_cdk import App, Stack, Validations
from aws_cdk import Environment as CdkEnvironment
from cdk_nag import AwsSolutionsChecks

from cdk.delivery import DeliveryStack, delivery_stack_name
from cdk.stack import PipelineStack
from pipeline.packaging import OUT_DIR
from pipeline.settings import Environment, Settings, load_settings

DEPLOYED: Final = (Environment.DEV, Environment.STAGING, Environment.PROD)

CONTEXT: Final = {
    # Server access logs are delivered under the log bucket's policy, not its ACL (the
    # buckets have ACLs disabled).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/core:enablePartitionLiterals": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-s3:createDefaultLoggingPolicy": True,
    "@aws-cdk/aws-ec2:restrictDefaultSecurityGroup": True,
}
"""Feature flags this app is written for (CDK's behaviour changes behind them)."""


def stack_name(settings: Settings) -> str:
    return f"flightpipe-{settings.env.value}"


def build(app: App, environments: Iterable[Settings], artifact: Path = OUT_DIR) -> dict[str, Stack]:
    """Each environment's pipeline stack and delivery stack in ``app``, checked by cdk-nag's
    AwsSolutions pack, by their names without the ``flightpipe-`` prefix (``dev``,
    ``dev-delivery``)."""
    stacks: list[Stack] = []
    for settings in environments:
        where = CdkEnvironment(region=settings.aws.region)
        env = settings.env.value
        stacks.append(
            PipelineStack(
                app,
                stack_name(settings),
                settings=settings,
                artifact=artifact,
                env=where,
                description=f"flightpipe, {env}: event-driven airline-flight pipeline",
            )
        )
        stacks.append(
            DeliveryStack(
                app,
                delivery_stack_name(settings),
                settings=settings,
                env=where,
                description=f"flightpipe, {env}: the roles GitHub Actions deploys it with",
            )
        )
    # The acknowledgments are written into each resource's template metadata too: the
    # template says what was acknowledged on it, and why.
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    return {stack.stack_name.removeprefix("flightpipe-"): stack for stack in stacks}


def main() -> None:
    app = App(context=CONTEXT)
    build(app, [load_settings(env) for env in DEPLOYED])
    app.synth()


if __name__ == "__main__":
    main()
