"""The buckets: uploads (raw), the dimension, the load's staging area, the quality reports and
the Glue artifact, with one bucket for their server access logs.

The layout inside them is ``StorageSettings``' (the twin's, the jobs' and the state machines'
too): uploads under ``raw/``, validated copies under ``validated/``, refused files under
``quarantine/``, each version's outcome under ``validation-results/``, in the upload's own
bucket.
"""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.nag import suppress
from pipeline.deployment import ARTIFACTS
from pipeline.settings import BUCKET_PURPOSES, UPLOADED_BUCKETS, Settings

ACCESS_LOGS: Final = "access-logs"
DATA: Final = (*UPLOADED_BUCKETS, "reports")
"""The buckets whose content outlives a stack in an environment that retains its data."""


class Storage(Construct):
    """Every bucket, by purpose: ``BUCKET_PURPOSES`` and ``ARTIFACTS``."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        aws = settings.aws
        storage = settings.storage
        self.access_logs = _private_bucket(
            self,
            "AccessLogs",
            settings.bucket_name(ACCESS_LOGS, Aws.ACCOUNT_ID),
            removal_policy=RemovalPolicy.RETAIN if aws.retain_data else RemovalPolicy.DESTROY,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(aws.log_retention_days))],
        )
        suppress(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket of the others: logging its own access would loop.",
        )
        self.buckets: dict[str, s3.Bucket] = {}
        for purpose in (*BUCKET_PURPOSES, ARTIFACTS):
            rules = [s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1))]
            if purpose in UPLOADED_BUCKETS:
                # Old versions of uploads, validated copies, results and claims.
                rules.append(
                    s3.LifecycleRule(
                        noncurrent_version_expiration=Duration.days(aws.old_version_expiry_days)
                    )
                )
            if purpose == "staging":
                rules.append(
                    s3.LifecycleRule(
                        prefix=storage.staging_prefix,
                        expiration=Duration.days(aws.staging_expiry_days),
                    )
                )
            retained = aws.retain_data and purpose in DATA
            bucket = _private_bucket(
                self,
                purpose.capitalize(),
                # The deploying account's: synthesis needs none.
                settings.bucket_name(purpose, Aws.ACCOUNT_ID),
                versioned=purpose in UPLOADED_BUCKETS,
                lifecycle_rules=rules,
                server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix=f"{purpose}/",
                removal_policy=RemovalPolicy.RETAIN if retained else RemovalPolicy.DESTROY,
            )
            if purpose in UPLOADED_BUCKETS:
                # CloudFormation's own switch: `event_bridge_enabled=True` would deploy a
                # custom resource and its function to flip the same setting.
                cfn = bucket.node.default_child
                assert isinstance(cfn, s3.CfnBucket)
                cfn.add_property_override(
                    "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
                )
            self.buckets[purpose] = bucket


def _private_bucket(scope: Construct, construct_id: str, name: str, **options: Any) -> s3.Bucket:
    """A bucket as every bucket here is: private, encrypted, reachable over TLS only, its
    objects owned by its account."""
    return s3.Bucket(
        scope,
        construct_id,
        bucket_name=name,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        **options,
    )
