"""The two Glue jobs, from the ``make package`` artifact, with their roles.

The artifact's files keep their own names in the artifacts bucket: Glue runs the script its job
names, and pip reads a wheel's name (a CDK asset would be renamed to its hash). A
``BucketDeployment`` copies them there at deploy time with no Docker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sns as sns
from constructs import Construct, IDependable

from cdk.catalog import GlueEncryption
from cdk.grants import DELETE, READ, WRITE, listing, network_interfaces, objects
from cdk.nag import arn_finding, suppress
from pipeline.core.metrics import NAMESPACE
from pipeline.deployment import (
    ARTIFACT_PREFIX,
    ARTIFACTS,
    GLUE_TEMPORARY_PREFIX,
    GLUE_VERSION,
    GlueJob,
    glue_jobs,
)
from pipeline.settings import Settings

METRICS_NAMESPACES: Final = ("Glue", NAMESPACE)
"""The CloudWatch namespaces the jobs put metrics in: Glue's job metrics, and the pipeline's."""

_VALIDATION: Final = "The validation writes each upload's copy, quarantine, result and report."
_LOAD: Final = "The load reads the validated files, stages its rows, sets a refused file aside."


class Jobs(Construct):
    """The validation job and the load job, by name, and their roles."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        buckets: Mapping[str, s3.IBucket],
        artifact: Path,
        topic: sns.ITopic,
        main_state_machine: str,
        connection: glue.CfnConnection | None,
        encryption: GlueEncryption,
    ) -> None:
        super().__init__(scope, construct_id)
        storage = settings.storage
        artifacts = buckets[ARTIFACTS]
        self.upload = s3deploy.BucketDeployment(
            self,
            "Artifact",
            sources=[s3deploy.Source.asset(str(artifact))],
            destination_bucket=artifacts,
            destination_key_prefix=ARTIFACT_PREFIX,
            prune=True,
        )
        validation, load = glue_jobs(settings, artifacts.bucket_name)
        self.validation_role = self._role("Validation", artifacts, encryption)
        self.load_role = self._role("Load", artifacts, encryption)

        # Validation: reads each upload and moves a refused one out; writes its validated copy
        # or its quarantine, its result and its claim (a claim it gives up is deleted), and
        # its report pages.
        role = self.validation_role
        uploads = (("raw", f"{storage.raw_prefix}*"), ("dim", storage.dimension_key))
        for purpose, uploaded in uploads:
            bucket = buckets[purpose]
            objects(role, bucket, uploaded, READ + DELETE, "A refused upload is moved out.")
            # A batch lists the versions waiting beside its own.
            listing(role, bucket, versions=True)
            for prefix in (storage.validated_prefix, storage.quarantine_prefix):
                objects(role, bucket, f"{prefix}*", READ + WRITE, _VALIDATION)
            objects(role, bucket, f"{storage.results_prefix}*", READ + WRITE + DELETE, _VALIDATION)
        objects(role, buckets["reports"], f"{storage.reports_prefix}*", READ + WRITE, _VALIDATION)
        listing(role, buckets["reports"])

        # The load: reads the validated files and the dimension, stages rows, loads the
        # warehouse through the Data API; a copy the warehouse refuses moves to quarantine
        # (jobs/quarantine.py) and its alert is published.
        role = self.load_role
        raw = buckets["raw"]
        objects(role, raw, f"{storage.validated_prefix}*", READ + DELETE, _LOAD)
        objects(role, raw, f"{storage.quarantine_prefix}*", WRITE, _LOAD)
        listing(role, raw)
        objects(role, buckets["dim"], storage.validated_dimension_key, READ, _LOAD)
        staged = f"{storage.staging_prefix}*"
        objects(role, buckets["staging"], staged, READ + WRITE + DELETE, _LOAD)
        listing(role, buckets["staging"])
        topic.grant_publish(role)
        stack = Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # A rejected file's alert names the run that started the load, if it exists.
                actions=["states:DescribeExecution"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{main_state_machine}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "Publishing to the encrypted topic takes kms:GenerateDataKey*, as SNS asks; a "
            "run's ARN is its machine's and a name made per upload.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                arn_finding(self, "states", f"execution:{main_state_machine}:*"),
            ],
        )
        if connection is not None:
            # The load runs in the warehouse's subnets, placed by its connection.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["glue:GetConnection"],
                    resources=[
                        stack.format_arn(service="glue", resource="catalog"),
                        *(
                            stack.format_arn(
                                service="glue", resource="connection", resource_name=name
                            )
                            for name in load.connections
                        ),
                    ],
                )
            )
            network_interfaces(self, "LoadNetwork", role)

        self.jobs: dict[str, glue.CfnJob] = {}
        for label, spec, job_role in (
            ("ValidationJob", validation, self.validation_role),
            ("LoadJob", load, self.load_role),
        ):
            job = self._job(label, spec, job_role, artifacts)
            # A job names its security configuration and connection: they must exist first.
            needs: list[IDependable] = [self.upload, encryption.configuration]
            if spec.connections and connection is not None:
                needs.append(connection)
            job.node.add_dependency(*needs)
            self.jobs[spec.name] = job

    def _role(self, label: str, artifacts: s3.IBucket, encryption: GlueEncryption) -> iam.Role:
        role = iam.Role(
            self,
            f"{label}Role",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"The {label.lower()} Glue job.",
        )
        objects(role, artifacts, f"{ARTIFACT_PREFIX}*", READ, "Glue reads the job's artifact.")
        objects(
            role,
            artifacts,
            f"{GLUE_TEMPORARY_PREFIX}*",
            READ + WRITE + DELETE,
            "Glue's temporary directory (--TempDir).",
        )
        encryption.use(role, "/aws-glue/jobs")
        metrics = iam.Policy(
            self,
            f"{label}Metrics",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    # PutMetricData names no resource; the namespaces bound it.
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": list(METRICS_NAMESPACES)}},
                )
            ],
        )
        suppress(
            metrics,
            "AwsSolutions-IAM5",
            "PutMetricData names no resource; the condition bounds it to the jobs' namespaces.",
            applies_to=["Resource::*"],
        )
        return role

    def _job(self, label: str, spec: GlueJob, role: iam.Role, artifacts: s3.IBucket) -> glue.CfnJob:
        connections: Sequence[str] = spec.connections
        return glue.CfnJob(
            self,
            label,
            name=spec.name,
            role=role.role_arn,
            glue_version=GLUE_VERSION,
            command=glue.CfnJob.JobCommandProperty(
                name=spec.command,
                python_version="3",
                script_location=spec.script_location(artifacts.bucket_name),
            ),
            default_arguments=dict(spec.default_arguments),
            execution_property=glue.CfnJob.ExecutionPropertyProperty(
                max_concurrent_runs=spec.max_concurrent_runs
            ),
            timeout=spec.timeout_minutes,
            max_retries=spec.max_retries,
            worker_type=spec.worker_type,
            number_of_workers=spec.workers,
            execution_class=spec.execution_class,
            job_run_queuing_enabled=spec.run_queuing,
            security_configuration=spec.security_configuration,
            connections=(
                glue.CfnJob.ConnectionsListProperty(connections=list(connections))
                if connections
                else None
            ),
        )
