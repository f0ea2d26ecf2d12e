"""The smoke role: what ``flightpipe smoke`` and ``flightpipe health`` (``pipeline.smoke``) run
under after a deployment, and nothing more.

Only the environment's deploy role (the delivery stack's, ``cdk/delivery.py``) may assume it:
the trust names the account, on the condition that the caller is that role, since a role's ARN
as a principal would have to exist when this stack is deployed. Its rights are the calls the
two commands make (``tests/test_smoke.py`` records them on the twin and holds them to this
policy): read the dimension in use, upload and remove the reserved day's objects, follow and
stop its run, remove its report pages and rebuild the report's indexes, and the Data API as
its own database user, who may only count and delete rows (``SMOKE_PRIVILEGES``). The health
check reads buckets, state machines, jobs and crawlers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.delivery import role_arn
from cdk.grants import DELETE, listing, objects
from cdk.nag import arn_finding, suppress
from pipeline.deployment import Names
from pipeline.settings import Settings
from pipeline.smoke import SMOKE_DATE
from quality.reports import MONTHS, RECORDS, SITE_FOLDER

SESSION = Duration.hours(1)
"""The longest session: a role assumed by another role's session lasts an hour at most
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html, "role
chaining")."""


class SmokeRole(Construct):
    """The smoke test's and the health check's role (``Names.smoke_role``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        names: Names,
        buckets: Mapping[str, s3.IBucket],
        state_machines: Sequence[str],
        jobs: Sequence[str],
        crawlers: Sequence[str],
    ) -> None:
        """``state_machines``: the main one's ARN first, then the router's; ``jobs`` and
        ``crawlers``: their ARNs."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            role_name=names.smoke_role,
            description=f"Smoke test and health check of flightpipe {settings.env.value}",
            max_session_duration=SESSION,
            assumed_by=iam.AccountPrincipal(Aws.ACCOUNT_ID).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": role_arn(names.deploy_role)}}
            ),
        )
        role = self.role
        storage = settings.storage
        name = f"{SMOKE_DATE.isoformat()}.csv"
        key = storage.raw_prefix + name
        raw, dim, reports = buckets["raw"], buckets["dim"], buckets["reports"]
        why = "The smoke test removes every object its reserved day left."
        objects(role, dim, storage.validated_dimension_key, ["s3:GetObject"], why)
        objects(role, raw, key, ["s3:PutObject", *DELETE], why)
        objects(role, raw, storage.validated_prefix + name, DELETE, why)
        objects(role, raw, f"{storage.quarantine_prefix}{name}*", DELETE, why)
        objects(role, raw, f"{storage.results_of(key)}*", DELETE, why)
        site = f"{storage.reports_prefix}{SITE_FOLDER}/"
        why = "The smoke test removes its day's report pages and rebuilds the indexes."
        objects(role, reports, f"{storage.reports_prefix}{RECORDS}/*", ["s3:GetObject"], why)
        for folder in (RECORDS, "uncommitted"):
            objects(role, reports, f"{storage.reports_prefix}{folder}/*", ["s3:DeleteObject"], why)
        objects(role, reports, f"{site}index.html", ["s3:PutObject"], why)
        objects(role, reports, f"{site}{MONTHS}/*", ["s3:PutObject"], why)
        listing(role, raw, versions=True)
        for purpose in ("dim", "staging", "reports"):
            listing(role, buckets[purpose])

        main = state_machines[0]
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{names.main}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        for actions, resources in (
            (["states:DescribeExecution", "states:StopExecution"], [executions]),
            (["states:DescribeStateMachine"], list(state_machines)),
            (["states:ListExecutions"], [main]),
            (["glue:GetJob"], list(jobs)),
            (["glue:GetCrawler"], list(crawlers)),
        ):
            role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))
        suppress(
            role,
            "AwsSolutions-IAM5",
            "An execution's ARN ends in its name, the hash of the upload it runs; the smoke "
            "test follows and stops its own run of the main state machine.",
            applies_to=[arn_finding(stack, "states", f"execution:{names.main}:*")],
        )
