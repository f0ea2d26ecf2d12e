"""The smoke role: what ``flightpipe smoke`` and ``flightpipe health`` (``pipeline.smoke``) run
under after a deployment, and nothing more.

Only the environment's deploy role (the delivery stack's, ``cdk/delivery.py``) may assume it:
the trust names the account, on the condition that the caller is that role, since a role's ARN
as a principal would have to exist when this stack is deployed. Its rights are the calls the
two commands make (``tests/test_smoke.py`` records them on the twin and holds them to this
policy): read the dimension in use, upload and remove the reserved day's objects, follow and
stop its run, remove its report pages and rebuild the report's indexes, and the Data API as
its own database user, who may only count and delete rows (``SMOKE_PRIVILEGES``). The health
check reads buckets, state machines, jobs and crawlers. Where the environment runs no smoke
test (``aws.smoke_test``: production), the role has the health check's reads alone, and no
database user.
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
from quality.reports import MONTHS, RECORDS, RESULTS_FOLDER, SITE_FOLDER

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
        if settings.aws.smoke_test:
            self._smoke_test(settings, names, buckets)
        listing(role, buckets["raw"], versions=settings.aws.smoke_test)
        for purpose in ("dim", "staging", "reports"):
            listing(role, buckets[purpose])

        main = state_machines[0]
        reads = [
            (["states:DescribeStateMachine"], list(state_machines)),
            (["states:ListExecutions"], [main]),
            (["glue:GetJob"], list(jobs)),
            (["glue:GetCrawler"], list(crawlers)),
        ]
        for actions, resources in reads:
            role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))

    def _smoke_test(
        self, settings: Settings, names: Names, buckets: Mapping[str, s3.IBucket]
    ) -> None:
        """The smoke test's: read the dimension in use, upload its day, follow its run,
        remove every object of that day and its report files, rebuild the report's indexes."""
        role = self.role
        stack = Stack.of(self)
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{names.main}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions])
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            "An execution's ARN ends in its name, the hash of the upload it runs; the smoke "
            "test follows its own run of the main state machine.",
            applies_to=[arn_finding(stack, "states", f"execution:{names.main}:*")],
        )

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
        root = storage.reports_prefix
        site = f"{root}{SITE_FOLDER}/"
        why = "The smoke test removes its day's report files and rebuilds the indexes."
        objects(role, reports, f"{root}{RECORDS}/*", ["s3:GetObject"], why)
        # Its own validations only: each file is under the name of its file version.
        for folder in (f"{RECORDS}/*", f"{RESULTS_FOLDER}/*", f"{SITE_FOLDER}/validations/*"):
            objects(role, reports, f"{root}{folder}/{name}@*", ["s3:DeleteObject"], why)
        objects(role, reports, f"{site}index.html", ["s3:PutObject"], why)
        objects(role, reports, f"{site}{MONTHS}/*", ["s3:PutObject"], why)
