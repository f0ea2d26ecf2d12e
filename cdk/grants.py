"""Object-level rights on bucket prefixes, with exactly the actions asked for, each
acknowledging cdk-nag's finding for its own prefix wildcard and nothing else.

CDK's ``grant_read``/``grant_write`` give action wildcards (``s3:GetObject*``, ``s3:List*``)
and bucket-wide listing; a pipeline role needs a few named actions on the keys it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.nag import logical_id, suppress

READ: Final = ("s3:GetObject", "s3:GetObjectVersion")
WRITE: Final = ("s3:PutObject", "s3:AbortMultipartUpload")
DELETE: Final = ("s3:DeleteObject", "s3:DeleteObjectVersion")


def objects(
    role: iam.IRole, bucket: s3.IBucket, pattern: str, actions: Sequence[str], why: str
) -> None:
    """Allow ``actions`` on the keys ``pattern`` matches (a key, or a prefix and ``*``)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(actions), resources=[bucket.arn_for_objects(pattern)])
    )
    if pattern.endswith("*"):
        suppress(
            role,
            "AwsSolutions-IAM5",
            f"{why} The keys under the prefix are made per file, version and run.",
            applies_to=[f"Resource::<{logical_id(bucket)}.Arn>/{pattern}"],
        )


def listing(role: iam.IRole, bucket: s3.IBucket, *, versions: bool = False) -> None:
    """Allow listing the bucket's keys (so a missing key reads as missing, not as
    forbidden), and with ``versions`` its object versions."""
    actions = ["s3:ListBucket", *(["s3:ListBucketVersions"] if versions else [])]
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[bucket.bucket_arn])
    )


def network_interfaces(scope: Construct, construct_id: str, role: iam.IRole) -> iam.Policy:
    """What Glue needs of a role to place a run's network interfaces in its connection's
    subnets (https://docs.aws.amazon.com/glue/latest/dg/create-an-iam-role.html), as a policy
    of its own: its wildcard is acknowledged there and nowhere else."""
    policy = iam.Policy(
        scope,
        construct_id,
        roles=[role],
        statements=[
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeVpcEndpoints",
                    "ec2:DescribeRouteTables",
                    "ec2:CreateTags",
                    "ec2:DeleteTags",
                ],
                resources=["*"],
            )
        ],
    )
    suppress(
        policy,
        "AwsSolutions-IAM5",
        "EC2's Describe actions and the creation of a network interface name no resource that "
        "exists beforehand.",
        applies_to=["Resource::*"],
    )
    return policy
