"""The warehouse: a VPC, Redshift Serverless (namespace and workgroup), the COPY role, the Glue
connection the load job and the warehouse crawler run through, and what the Data API's callers
may do.

The admin password is generated in Secrets Manager and handed to the namespace as a dynamic
reference that CloudFormation resolves at deploy time: no password is in the code or the
templates. With ``aws.existing_workgroup`` the environment uses the workgroup
``warehouse.workgroup`` names, deployed elsewhere, and deploys none of this but the COPY role,
the callers' rights and the migrations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_redshiftserverless as redshift
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from cdk.grants import READ, listing, objects
from cdk.nag import arn_finding, logical_id, retained, suppress
from pipeline.core.migrations import deploy_properties, iam_role_user
from pipeline.deployment import Names
from pipeline.settings import Settings

MIGRATIONS_HANDLER: Final = Path(__file__).parent / "functions" / "migrations"
PORT: Final = 5439
ADMIN_USER: Final = "flightpipe_admin"

_INTERFACE_ENDPOINTS: Final = {
    # What the load job calls from its subnets (jobs/flight_etl.py), and the crawler's secret.
    "Glue": ec2.InterfaceVpcEndpointAwsService.GLUE,
    "RedshiftData": ec2.InterfaceVpcEndpointAwsService.REDSHIFT_DATA,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Metrics": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    # Job bookmarks are encrypted in the job itself (CSE-KMS, cdk/catalog.py).
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
}
"""The interface endpoints of ``egress="endpoints"``: S3 has its gateway endpoint either way."""


class Warehouse(Construct):
    """Redshift Serverless and its network, or an imported workgroup's name."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        names: Names,
        staging: s3.IBucket,
        flow_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        aws = settings.aws
        warehouse = settings.warehouse
        self.database = warehouse.database
        stack = Stack.of(self)
        self.copy_role = iam.Role(
            self,
            "CopyRole",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("redshift.amazonaws.com"),
                iam.ServicePrincipal("redshift-serverless.amazonaws.com"),
            ),
            description="Redshift assumes it to COPY a load's staged rows.",
        )
        staged = f"{settings.storage.staging_prefix}*"
        objects(self.copy_role, staging, staged, READ, "COPY reads a load's staged parts.")
        listing(self.copy_role, staging)
        self.connection: glue.CfnConnection | None = None
        self.workgroup_name = warehouse.workgroup
        if aws.existing_workgroup:
            # The workgroup's ARN holds its id, which a name does not give.
            self.workgroup_arn = stack.format_arn(
                service="redshift-serverless", resource="workgroup", resource_name="*"
            )
            self.admin_secret_arn: str | None = None
            self.admin_secret: secretsmanager.Secret | None = None
            self.workgroup: redshift.CfnWorkgroup | None = None
            return

        self.vpc = self._network(settings, flow_logs)
        self.security_group = ec2.SecurityGroup(
            self,
            "Jobs",
            vpc=self.vpc,
            description="Glue network interfaces in the warehouse subnets",
            allow_all_outbound=True,
        )
        # Glue needs its interfaces to reach each other on every port
        # (https://docs.aws.amazon.com/glue/latest/dg/setup-vpc-for-glue-access.html).
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.all_tcp(), "Glue interfaces among themselves"
        )
        self._endpoints(settings)
        workgroup_group = ec2.SecurityGroup(
            self,
            "WorkgroupAccess",
            vpc=self.vpc,
            description="Redshift Serverless: reached by the Glue connection only",
            # With enhanced VPC routing, COPY reads the staged parts through the VPC: out to
            # S3's gateway endpoint (the private subnets reach nothing else, or the NAT).
            allow_all_outbound=True,
        )
        workgroup_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(PORT), "The Glue connection to the warehouse"
        )
        self.admin_secret = secretsmanager.Secret(
            self,
            "Admin",
            description="The warehouse's admin user (the migrations and the warehouse crawler)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": ADMIN_USER}),
                generate_string_key="password",
                exclude_punctuation=True,
                password_length=32,
            ),
        )
        # The namespace it opens outlives the stack where data is retained: so does it.
        self.admin_secret.apply_removal_policy(
            RemovalPolicy.RETAIN if aws.retain_data else RemovalPolicy.DESTROY
        )
        suppress(
            self.admin_secret,
            "AwsSolutions-SMG4",
            "The namespace holds the password it was created with: rotating the secret alone "
            "would lock the migrations and the crawler out.",
        )
        self.namespace = redshift.CfnNamespace(
            self,
            "Namespace",
            namespace_name=names.namespace,
            db_name=warehouse.database,
            admin_username=ADMIN_USER,
            admin_user_password=self.admin_secret.secret_value_from_json(
                "password"
            ).unsafe_unwrap(),
            iam_roles=[self.copy_role.role_arn],
            default_iam_role_arn=self.copy_role.role_arn,
            log_exports=["userlog", "connectionlog", "useractivitylog"],
        )
        self.namespace.apply_removal_policy(
            RemovalPolicy.RETAIN if aws.retain_data else RemovalPolicy.DESTROY
        )
        subnets = self.vpc.select_subnets(subnet_group_name=_PRIVATE)
        self.workgroup = redshift.CfnWorkgroup(
            self,
            "Workgroup",
            workgroup_name=warehouse.workgroup,
            namespace_name=names.namespace,
            base_capacity=aws.redshift_base_capacity,
            subnet_ids=subnets.subnet_ids,
            security_group_ids=[workgroup_group.security_group_id],
            publicly_accessible=False,
            enhanced_vpc_routing=True,
            port=PORT,
        )
        self.workgroup.node.add_dependency(self.namespace)
        self.workgroup_arn = self.workgroup.attr_workgroup_workgroup_arn
        self.admin_secret_arn = self.admin_secret.secret_arn
        connection = glue.CfnConnection(
            self,
            "Connection",
            catalog_id=stack.account,
            connection_input=glue.CfnConnection.ConnectionInputProperty(
                name=names.connection,
                connection_type="JDBC",
                description="The load job's subnet and the warehouse crawler's JDBC target",
                connection_properties={
                    "JDBC_CONNECTION_URL": (
                        f"jdbc:redshift://{self.workgroup.attr_workgroup_endpoint_address}:"
                        f"{PORT}/{warehouse.database}"
                    ),
                    "SECRET_ID": self.admin_secret_arn,
                    "JDBC_ENFORCE_SSL": "true",
                },
                physical_connection_requirements=glue.CfnConnection.PhysicalConnectionRequirementsProperty(
                    subnet_id=subnets.subnet_ids[0],
                    availability_zone=aws.availability_zones[0],
                    security_group_id_list=[self.security_group.security_group_id],
                ),
            ),
        )
        for zoned in (self.vpc, connection):
            suppress(
                zoned,
                "CloudFormation-Validate::W3010",
                "The zones are the settings' (aws.availability_zones): Redshift Serverless needs "
                "three, and synthesis looks nothing up.",
            )
        self.connection = connection

    def migrate(
        self,
        settings: Settings,
        *,
        load_role: iam.IRole,
        state_machine_role: iam.IRole,
        smoke_role: iam.IRole | None,
        crawler: glue.CfnCrawler | None,
    ) -> CustomResource:
        """Apply the contract's migrations and the Data API callers' grants at deploy time, then
        start the warehouse crawler (``cdk/functions/migrations``): a failed statement fails
        the deployment with the database's message."""
        stack = Stack.of(self)
        group = logs.LogGroup(self, "MigrationsLogs", removal_policy=RemovalPolicy.DESTROY)
        retained(group, settings.aws.log_retention_days)
        role = iam.Role(
            self,
            "MigrationsRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Applies the warehouse migrations at deploy time.",
        )
        group.grant_write(role)
        data_api = self.grant_data_api("Migrations", role)
        if crawler is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["glue:StartCrawler"],
                    resources=[
                        stack.format_arn(
                            service="glue", resource="crawler", resource_name=str(crawler.name)
                        )
                    ],
                )
            )
        if self.admin_secret is not None:
            self.admin_secret.grant_read(role)
        function = lambda_.Function(
            self,
            "Migrations",
            runtime=lambda_.Runtime.PYTHON_3_14,
            code=lambda_.Code.from_asset(str(MIGRATIONS_HANDLER), exclude=["__pycache__"]),
            handler="index.on_event",
            timeout=Duration.minutes(15),
            role=role,
            log_group=group,
            description="Applies the warehouse migrations and grants, waiting for each statement",
        )
        provider = cr.Provider(self, "MigrationsProvider", on_event_handler=function)
        suppress(
            role,
            "AwsSolutions-IAM5",
            "The function's log streams are made per invocation, in its own log group.",
            applies_to=[f"Resource::<{logical_id(group)}.Arn>:*"],
        )
        for rule, findings in (
            (
                "AwsSolutions-IAM4",
                [
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole"
                ],
            ),
            ("AwsSolutions-IAM5", [f"Resource::<{logical_id(function)}.Arn>:*"]),
        ):
            suppress(
                provider,
                rule,
                "CDK's Provider framework: its own function (role, runtime and rights are CDK's) "
                "only invokes the migrations function.",
                applies_to=findings,
            )
        suppress(
            provider,
            "AwsSolutions-L1",
            "CDK's Provider framework picks its own function's Node.js runtime.",
        )
        properties = deploy_properties(
            settings.warehouse.database,
            iam_role_user_of(load_role),
            iam_role_user_of(state_machine_role),
            None if smoke_role is None else iam_role_user_of(smoke_role),
        )
        resource = CustomResource(
            self,
            "Schema",
            service_token=provider.service_token,
            resource_type="Custom::FlightpipeMigrations",
            properties={
                "WorkgroupName": self.workgroup_name,
                "Database": settings.warehouse.database,
                "SecretArn": self.admin_secret_arn or "",
                "CrawlerName": "" if crawler is None else str(crawler.name),
                **properties,
            },
        )
        if self.workgroup is not None:
            resource.node.add_dependency(self.workgroup)
        if crawler is not None:
            resource.node.add_dependency(crawler)
        resource.node.add_dependency(data_api)
        return resource

    def _network(self, settings: Settings, flow_logs: s3.IBucket) -> ec2.Vpc:
        aws = settings.aws
        nat = aws.egress == "nat"
        subnets = [
            ec2.SubnetConfiguration(
                name=_PRIVATE,
                subnet_type=(
                    ec2.SubnetType.PRIVATE_WITH_EGRESS if nat else ec2.SubnetType.PRIVATE_ISOLATED
                ),
                cidr_mask=22,
            )
        ]
        if nat:
            subnets.append(
                ec2.SubnetConfiguration(name="nat", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=26)
            )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(aws.vpc_cidr),
            availability_zones=list(aws.availability_zones),
            subnet_configuration=subnets,
            nat_gateways=1 if nat else 0,
            restrict_default_security_group=False,
            flow_logs={
                "s3": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_s3(flow_logs, "vpc-flow-logs/")
                )
            },
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
            },
        )
        return vpc

    def _endpoints(self, settings: Settings) -> None:
        """With ``egress="endpoints"``: an interface endpoint per service the load job calls,
        reachable from Glue's interfaces only."""
        if settings.aws.egress != "endpoints":
            return
        for name, service in _INTERFACE_ENDPOINTS.items():
            endpoint = self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=ec2.SubnetSelection(subnet_group_name=_PRIVATE),
                open=False,
            )
            endpoint.connections.allow_default_port_from(self.security_group)

    def grant_data_api(self, label: str, role: iam.IRole) -> iam.Policy:
        """What a Data API caller needs, as a policy of its own: statements in this workgroup
        as its own database user (``IAMR:<role name>``, from temporary credentials), and
        reading its own statements' states and results."""
        policy = iam.Policy(
            self,
            f"{label}DataApi",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "redshift-data:ExecuteStatement",
                        "redshift-data:BatchExecuteStatement",
                        "redshift-serverless:GetCredentials",
                    ],
                    resources=[self.workgroup_arn],
                ),
                iam.PolicyStatement(
                    # These name no resource: a statement is its caller's alone
                    # (https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-access.html).
                    actions=["redshift-data:DescribeStatement", "redshift-data:GetStatementResult"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {
                            "redshift-data:statement-owner-iam-userid": "${aws:userid}"
                        }
                    },
                ),
            ],
        )
        findings = ["Resource::*"]
        if self.workgroup is None:
            findings.append(arn_finding(self, "redshift-serverless", "workgroup/*"))
        suppress(
            policy,
            "AwsSolutions-IAM5",
            "DescribeStatement and GetStatementResult name no resource and are bound to the "
            "caller's own statements; a workgroup deployed elsewhere is named only "
            "(aws.existing_workgroup), and its ARN holds an id its name does not give.",
            applies_to=findings,
        )
        return policy


_PRIVATE: Final = "private"


def iam_role_user_of(role: iam.IRole) -> str:
    """The database user a role's Data API calls run as (``IAMR:<role name>``)."""
    return iam_role_user(role.role_name)
