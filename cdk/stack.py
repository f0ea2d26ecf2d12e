"""One environment's pipeline: the constructs, and the wiring between them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Stack, Tags
from aws_cdk.region_info import RegionInfo
from constructs import Construct

from cdk.catalog import Catalog, GlueEncryption
from cdk.jobs import Jobs
from cdk.nag import logical_id, suppress
from cdk.observability import Observability
from cdk.orchestration import Alerting, Orchestration
from cdk.reports import Reports
from cdk.smoke import SmokeRole
from cdk.storage import Storage
from cdk.warehouse import Warehouse
from pipeline.deployment import ARTIFACTS, Names
from pipeline.packaging import SITE_FOLDER
from pipeline.settings import Settings


class PipelineStack(Stack):
    """Everything one environment runs; the account is the deploying one's."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        artifact: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        Tags.of(self).add("project", "flightpipe")
        Tags.of(self).add("environment", settings.env.value)
        names = Names.of(settings)
        self.storage = Storage(self, "Storage", settings=settings)
        buckets = self.storage.buckets
        self.alerting = Alerting(self, "Alerting", settings=settings, names=names)
        self.reports = Reports(
            self,
            "Reports",
            settings=settings,
            bucket=buckets["reports"],
            site=artifact.parent / SITE_FOLDER,
        )
        self.warehouse = Warehouse(
            self,
            "Warehouse",
            settings=settings,
            names=names,
            staging=buckets["staging"],
            flow_logs=self.storage.access_logs,
        )
        encryption = GlueEncryption(self, "GlueEncryption", names=names)
        self.catalog = Catalog(
            self,
            "Catalog",
            settings=settings,
            names=names,
            buckets=buckets,
            encryption=encryption,
            jdbc=None if self.warehouse.connection is None else self.warehouse,
        )
        self.jobs = Jobs(
            self,
            "Jobs",
            settings=settings,
            buckets=buckets,
            artifact=artifact,
            topic=self.alerting.topic,
            main_state_machine=names.main,
            connection=self.warehouse.connection,
            encryption=encryption,
        )
        self.warehouse.grant_data_api("Load", self.jobs.load_role)
        self._acknowledge_bucket_deployment()
        job_arns = [self._arn("glue", "job", name) for name in self.jobs.jobs]
        crawler_arns = {
            name: self._arn("glue", "crawler", name)
            for name in (names.flight_crawler, names.dimension_crawler)
        }
        self.orchestration = Orchestration(
            self,
            "Orchestration",
            settings=settings,
            names=names,
            buckets=buckets,
            alerting=self.alerting,
            reports_url=self.reports.url,
            copy_role=self.warehouse.copy_role,
            job_arns=job_arns,
            # The state machine starts and reads the flight crawler and starts the dimension's.
            crawler_arns=crawler_arns,
        )
        self.warehouse.grant_data_api("StateMachine", self.orchestration.main.role)
        self.smoke = SmokeRole(
            self,
            "Smoke",
            settings=settings,
            names=names,
            buckets=buckets,
            state_machines=[
                self.orchestration.main.state_machine_arn,
                self.orchestration.router.state_machine_arn,
            ],
            jobs=job_arns,
            crawlers=list(crawler_arns.values()),
        )
        if settings.aws.smoke_test:
            self.warehouse.grant_data_api("Smoke", self.smoke.role)
        self._migrations(names)
        self.observability = Observability(
            self,
            "Observability",
            settings=settings,
            names=names,
            main=self.orchestration.main,
            dead_letters=self.orchestration.dead_letters,
            operations=self.alerting.operations,
        )

    def _migrations(self, names: Names) -> None:
        self.warehouse.migrate(
            self.settings,
            load_role=self.jobs.load_role,
            state_machine_role=self.orchestration.main.role,
            smoke_role=self.smoke.role if self.settings.aws.smoke_test else None,
            crawler=self.catalog.crawlers.get(names.warehouse_crawler),
        )

    def _acknowledge_bucket_deployment(self) -> None:
        """CDK's function that copies the artifact: one per stack, made by CDK, not by us."""
        for child in self.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                reason = (
                    "CDK's own BucketDeployment function (its runtime, role and rights are "
                    "CDK's): it copies the Glue artifact from CDK's asset bucket into the "
                    "artifacts bucket under its own file names, at deploy time only."
                )
                suppress(child, "AwsSolutions-L1", reason)
                suppress(
                    child,
                    "AwsSolutions-IAM4",
                    reason,
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        "AWSLambdaBasicExecutionRole"
                    ],
                )
                suppress(
                    child,
                    "AwsSolutions-IAM5",
                    reason,
                    applies_to=[
                        "Action::s3:GetBucket*",
                        "Action::s3:GetObject*",
                        "Action::s3:List*",
                        "Action::s3:Abort*",
                        "Action::s3:DeleteObject*",
                        f"Resource::arn:{RegionInfo.get(self.region).partition}:s3:::"
                        f"cdk-hnb659fds-assets-<AWS::AccountId>-{self.region}/*",
                        *(
                            f"Resource::<{logical_id(self.storage.buckets[purpose])}.Arn>/*"
                            for purpose in (ARTIFACTS, "reports")
                        ),
                    ],
                )

    def _arn(self, service: str, resource: str, name: str) -> str:
        return self.format_arn(service=service, resource=resource, resource_name=name)

    @property
    def availability_zones(self) -> list[str]:
        """The settings' zones: the stack needs no account to know them (Redshift Serverless
        needs three, and an environment-agnostic stack would see two)."""
        return list(self.settings.aws.availability_zones)
