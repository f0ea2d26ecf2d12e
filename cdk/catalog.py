"""The Glue Data Catalog: the database, and the crawlers ``pipeline.deployment.crawlers``
defines, each with a role that reads only what it crawls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Aws, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IDependable

from cdk.grants import READ, listing, network_interfaces, objects
from cdk.nag import arn_finding, suppress
from pipeline.deployment import Crawler, Names, crawlers
from pipeline.settings import Settings

if TYPE_CHECKING:
    from cdk.warehouse import Warehouse


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
        self.name = names.security_configuration
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

    def use(self, role: iam.IRole, log_groups: str) -> None:
        """Let ``role``'s runs encrypt and read with the key, and write their logs in the log
        groups under ``log_groups`` (``/aws-glue/jobs``, ``/aws-glue/crawlers``), which Glue
        names after the role and the configuration and encrypts with the key
        (``logs:AssociateKmsKey``)."""
        self.key.grant_encrypt_decrypt(role)
        stack = Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:AssociateKmsKey",
                ],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{log_groups}*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "Glue asks for kms:GenerateDataKey* and kms:ReEncrypt* on the encryption key, and "
            f"names its runs' log groups and streams under {log_groups} itself.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                arn_finding(self, "logs", f"log-group:{log_groups}*"),
            ],
        )


class Catalog(Construct):
    """The catalog database and its crawlers, by name: the warehouse's only with ``jdbc``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        names: Names,
        buckets: Mapping[str, s3.IBucket],
        encryption: GlueEncryption,
        jdbc: Warehouse | None,
    ) -> None:
        """``jdbc``: the warehouse whose Glue connection and admin secret the warehouse crawler
        reads it through (None with a workgroup deployed elsewhere: no crawler of it)."""
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
        validated = settings.storage.validated_prefix
        for spec in crawlers(settings, buckets["raw"].bucket_name, buckets["dim"].bucket_name):
            if spec.jdbc_path is not None and jdbc is None:
                continue
            label = _short(spec, names)
            role = iam.Role(
                self,
                f"{label}Role",
                assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                description=f"The {spec.name} crawler: reads what it crawls, writes its tables.",
            )
            needs: list[IDependable] = [self.database, encryption.configuration, role]
            needs.append(self._catalog_rights(label, role, names, jdbc=spec.bucket is None))
            encryption.use(role, "/aws-glue/crawlers")
            if spec.bucket is not None:
                bucket = buckets[spec.bucket]
                objects(role, bucket, f"{validated}*", READ, "The crawler reads what it crawls.")
                listing(role, bucket)
                targets = glue.CfnCrawler.TargetsProperty(
                    s3_targets=[glue.CfnCrawler.S3TargetProperty(path=spec.s3_path)]
                )
            else:
                assert jdbc is not None
                # JDBC through the connection, as the admin, from the warehouse's subnets.
                if jdbc.admin_secret is not None:
                    jdbc.admin_secret.grant_read(role)
                needs.append(network_interfaces(self, f"{label}Network", role))
                needs.append(jdbc.connection)
                targets = glue.CfnCrawler.TargetsProperty(
                    jdbc_targets=[
                        glue.CfnCrawler.JdbcTargetProperty(
                            connection_name=names.connection, path=spec.jdbc_path
                        )
                    ]
                )
            crawler = glue.CfnCrawler(
                self,
                label,
                name=spec.name,
                role=role.role_arn,
                database_name=names.database,
                targets=targets,
                description=f"Started by {spec.started_by}.",
                crawler_security_configuration=names.security_configuration,
                schedule=(
                    glue.CfnCrawler.ScheduleProperty(schedule_expression=spec.schedule)
                    if spec.schedule is not None
                    else None
                ),
            )
            crawler.node.add_dependency(*needs)
            self.crawlers[spec.name] = crawler

    def _catalog_rights(
        self, label: str, role: iam.Role, names: Names, *, jdbc: bool
    ) -> iam.Policy:
        """What a crawler does in the catalog, on this database only (and reading the
        connection it crawls through)."""
        stack = Stack.of(self)

        def glue_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="glue", resource=resource, resource_name=name)

        policy = iam.Policy(
            self,
            f"{label}Catalog",
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
                        *(["glue:GetConnection"] if jdbc else []),
                    ],
                    resources=[
                        stack.format_arn(service="glue", resource="catalog"),
                        glue_arn("database", names.database),
                        glue_arn("table", f"{names.database}/*"),
                        *([glue_arn("connection", names.connection)] if jdbc else []),
                    ],
                ),
            ],
        )
        suppress(
            policy,
            "AwsSolutions-IAM5",
            "A crawler creates and updates the tables it finds, whose names it chooses, in "
            "this database only.",
            applies_to=[arn_finding(self, "glue", f"table/{names.database}/*")],
        )
        return policy


def _short(spec: Crawler, names: Names) -> str:
    """The construct id of a crawler: Flights, Dimension or Warehouse."""
    return {
        names.flight_crawler: "Flights",
        names.dimension_crawler: "Dimension",
        names.warehouse_crawler: "Warehouse",
    }[spec.name]
