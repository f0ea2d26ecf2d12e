"""The two Glue jobs, from the ``make package`` artifact, with their roles.

The artifact's files keep their own names in the artifacts bucket: Glue runs the script its job
names, and pip reads a wheel's name (a CDK asset would be renamed to its hash). A
``BucketDeployment`` copies them there at deploy time with no Docker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk.catalog import GlueEncryption
from cdk.grants import DELETE, READ, WRITE, listing, objects
from cdk.nag import arn_finding, suppress
from pipeline.deployment import (
    ARTIFACT_PREFIX,
    ARTIFACTS,
    GLUE_TEMPORARY_PREFIX,
    GLUE_VERSION,
    GlueJob,
    glue_jobs,
)
from pipeline.settings import Settings

METRICS_NAMESPACES = ("Glue", "flightpipe")
"""The CloudWatch namespaces the jobs put metrics in: Glue's job metrics, and the pipeline's."""

_VALIDATION = "The validation writes each upload's copy, quarantine, result and report."
_LOAD = "The load reads the validated files and stages its rows."


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
        connections: Sequence[str],
        warehouse: Sequence[iam.PolicyStatement],
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
        self.validation_role = self._role("Validation", artifacts)
        self.load_role = self._role("Load", artifacts)
        for role in (self.validation_role, self.load_role):
            encryption.use(role)
        self.encryption = encryption

        # Validation: reads each upload, writes its validated copy or its quarantine, its
        # result and its claim, and its report pages.
        role = self.validation_role
        uploads = (("raw", f"{storage.raw_prefix}*"), ("dim", storage.dimension_key))
        for purpose, uploaded in uploads:
            bucket = buckets[purpose]
            objects(role, bucket, uploaded, READ + DELETE, "A refused upload is moved out.")
            listing(role, bucket)
            for prefix in (
                storage.validated_prefix,
                storage.quarantine_prefix,
                storage.results_prefix,
            ):
                objects(role, bucket, f"{prefix}*", READ + WRITE + DELETE, _VALIDATION)
        objects(role, buckets["reports"], f"{storage.reports_prefix}*", READ + WRITE, _VALIDATION)
        listing(role, buckets["reports"])

        # The load: reads the validated files and the dimension, stages rows, loads the
        # warehouse through the Data API, publishes what it rejected.
        role = self.load_role
        objects(role, buckets["raw"], f"{storage.validated_prefix}*", READ, _LOAD)
        listing(role, buckets["raw"])
        objects(role, buckets["dim"], storage.validated_dimension_key, READ, _LOAD)
        staged = f"{storage.staging_prefix}*"
        objects(role, buckets["staging"], staged, READ + WRITE + DELETE, _LOAD)
        listing(role, buckets["staging"])
        topic.grant_publish(role)
        stack = Stack.of(self)
        self.load_role.add_to_policy(
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
        for statement in warehouse:
            self.load_role.add_to_policy(statement)
        suppress(
            self.load_role,
            "AwsSolutions-IAM5",
            "Publishing to the encrypted topic takes kms:GenerateDataKey*, as SNS asks; the Data "
            "API's Describe and GetStatementResult name no resource and are bound to the "
            "role's own statements; a run's ARN is its machine's and a name made per upload.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Resource::*",
                arn_finding(self, "states", f"execution:{main_state_machine}:*"),
            ],
        )

        self.jobs: dict[str, glue.CfnJob] = {}
        for spec, role, job_connections in (
            (validation, self.validation_role, ()),
            (load, self.load_role, tuple(connections)),
        ):
            job = self._job(spec, role, artifacts, job_connections)
            job.node.add_dependency(self.upload)
            self.jobs[spec.name] = job
        if connections:
            self._network_rights(self.load_role)

    def _role(self, label: str, artifacts: s3.IBucket) -> iam.Role:
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
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws-glue/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                # PutMetricData names no resource; the namespaces bound it.
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": list(METRICS_NAMESPACES)}},
            )
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "Glue writes a run's logs in log groups under /aws-glue/ that it names itself; "
            "PutMetricData names no resource and is bound to the jobs' metric namespaces.",
            applies_to=[
                arn_finding(self, "logs", "log-group:/aws-glue/*"),
                "Resource::*",
            ],
        )
        return role

    def _job(
        self, spec: GlueJob, role: iam.Role, artifacts: s3.IBucket, connections: Sequence[str]
    ) -> glue.CfnJob:
        return glue.CfnJob(
            self,
            "ValidationJob" if spec.script.startswith("validation") else "LoadJob",
            name=spec.name,
            role=role.role_arn,
            glue_version=GLUE_VERSION,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl",
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
            security_configuration=self.encryption.name,
            connections=(
                glue.CfnJob.ConnectionsListProperty(connections=list(connections))
                if connections
                else None
            ),
        )

    def _network_rights(self, role: iam.Role) -> None:
        """What Glue needs of the job's role to place the run's network interfaces in the
        connection's subnets (https://docs.aws.amazon.com/glue/latest/dg/create-an-iam-role.html)."""
        policy = iam.Policy(
            self,
            "LoadNetwork",
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
            "EC2's Describe actions and the creation of a network interface name no resource "
            "that exists beforehand.",
            applies_to=["Resource::*"],
        )
