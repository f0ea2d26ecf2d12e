"""The Glue Data Catalog: the database, and the crawlers ``pipeline.deployment.crawlers``
defines, each with a role that reads only what it crawls."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Arn, ArnFormat, Aws, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.grants import READ, listing, objects
from cdk.nag import arn_finding, suppress
from pipeline.deployment import Crawler, Names, crawlers
from pipeline.settings import Settings


class GlueEncryption(Construct):
    """The Glue security configuration the jobs and crawlers run with: their CloudWatch logs
    and the load's job bookmarks encrypted with a key of the pipeline's, their S3 writes with
    S3's."""

    def __init__(self, scope: Construct, construct_id: str, *, names: Names) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description="Glue's logs and job bookmarks",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # CloudWatch Logs encrypts the runs' log groups with it
        # (https://docs.aws.amazon.com/glue/latest/dg/encryption-security-configuration.html).
        self.key.grant_encrypt_decrypt(iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com"))
        self.name = f"{names.database}-encryption"
        self.configuration = glue.CfnSecurityConfiguration(
            self,
            "Configuration",
            name=self.name,
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=self.key.key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=self.key.key_arn
                ),
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(s3_encryption_mode="SSE-S3")
                ],
            ),
        )

    def use(self, role: iam.IRole) -> None:
        """Let ``role``'s runs encrypt and read with the key."""
        self.key.grant_encrypt_decrypt(role)
        suppress(
            role,
            "AwsSolutions-IAM5",
            "Glue asks for kms:GenerateDataKey* and kms:ReEncrypt* on the encryption key.",
            applies_to=["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"],
        )


class Catalog(Construct):
    """The catalog database and its three crawlers, by name."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        names: Names,
        buckets: Mapping[str, s3.IBucket],
        encryption: GlueEncryption,
        jdbc: bool,
    ) -> None:
        """``jdbc``: the stack has the warehouse's Glue connection (not with a workgroup
        deployed elsewhere), so the warehouse crawler has a way in."""
        super().__init__(scope, construct_id)
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=names.database,
                description="The validated daily flight files, the airport dimension and the "
                "warehouse table, as the crawlers find them.",
            ),
        )
        self.crawlers: dict[str, glue.CfnCrawler] = {}
        self.roles: dict[str, iam.Role] = {}
        validated = settings.storage.validated_prefix
        for spec in crawlers(settings, buckets["raw"].bucket_name, buckets["dim"].bucket_name):
            if spec.jdbc_path is not None and not jdbc:
                continue
            role = iam.Role(
                self,
                f"{_short(spec, names)}Role",
                assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                description=f"The {spec.name} crawler: reads what it crawls, writes its tables.",
            )
            self._catalog_rights(role, names)
            encryption.use(role)
            if spec.bucket is not None:
                bucket = buckets[spec.bucket]
                objects(role, bucket, f"{validated}*", READ, "The crawler reads what it crawls.")
                listing(role, bucket)
            targets = (
                glue.CfnCrawler.TargetsProperty(
                    s3_targets=[glue.CfnCrawler.S3TargetProperty(path=spec.s3_path)]
                )
                if spec.s3_path is not None
                else glue.CfnCrawler.TargetsProperty(
                    jdbc_targets=[
                        glue.CfnCrawler.JdbcTargetProperty(
                            connection_name=names.connection, path=spec.jdbc_path
                        )
                    ]
                )
            )
            crawler = glue.CfnCrawler(
                self,
                _short(spec, names),
                name=spec.name,
                role=role.role_arn,
                database_name=names.database,
                targets=targets,
                description=f"Started by {spec.started_by}.",
                crawler_security_configuration=encryption.name,
                schedule=(
                    glue.CfnCrawler.ScheduleProperty(schedule_expression=spec.schedule)
                    if spec.schedule is not None
                    else None
                ),
            )
            crawler.node.add_dependency(self.database)
            self.crawlers[spec.name] = crawler
            self.roles[spec.name] = role

    def _catalog_rights(self, role: iam.Role, names: Names) -> None:
        """What a crawler does in the catalog and in CloudWatch Logs, on this database only."""
        stack = Stack.of(self)

        def glue_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="glue", resource=resource, resource_name=name)

        policy = iam.Policy(
            self,
            f"{role.node.id}Catalog",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "glue:GetDatabase",
                        "glue:GetTable",
                        "glue:GetTables",
                        "glue:CreateTable",
                        "glue:UpdateTable",
                        "glue:GetPartition",
                        "glue:GetPartitions",
                        "glue:BatchGetPartition",
                        "glue:BatchCreatePartition",
                        "glue:UpdatePartition",
                        "glue:BatchUpdatePartition",
                        "glue:GetConnection",
                    ],
                    resources=[
                        stack.format_arn(service="glue", resource="catalog"),
                        glue_arn("database", names.database),
                        glue_arn("table", f"{names.database}/*"),
                        glue_arn("connection", names.connection),
                    ],
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[
                        Arn.format(
                            components={
                                "service": "logs",
                                "resource": "log-group",
                                "resource_name": "/aws-glue/crawlers:*",
                                "arn_format": ArnFormat.COLON_RESOURCE_NAME,
                            },
                            stack=stack,
                        )
                    ],
                ),
            ],
        )
        suppress(
            policy,
            "AwsSolutions-IAM5",
            "A crawler creates and updates the tables it finds, whose names it chooses, in "
            "this database only; Glue writes every crawler's log streams in one log group.",
            applies_to=[
                arn_finding(self, "glue", f"table/{names.database}/*"),
                arn_finding(self, "logs", "log-group:/aws-glue/crawlers:*"),
            ],
        )


def _short(spec: Crawler, names: Names) -> str:
    """The construct id of a crawler: Flights, Dimension or Warehouse."""
    return {
        names.flight_crawler: "Flights",
        names.dimension_crawler: "Dimension",
        names.warehouse_crawler: "Warehouse",
    }[spec.name]
