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

from cdk.nag import logical_id, suppress

READ: Final = ("s3:GetObject", "s3:GetObjectVersion")
WRITE: Final = ("s3:PutObject", "s3:AbortMultipartUpload")
DELETE: Final = ("s3:DeleteObject", "s3:DeleteObjectVersion")
LIST: Final = ("s3:ListBucket", "s3:ListBucketVersions")


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


def listing(role: iam.IRole, bucket: s3.IBucket) -> None:
    """Allow listing the bucket's keys and versions (and a missing key to read as missing,
    not as forbidden)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(LIST), resources=[bucket.bucket_arn])
    )
