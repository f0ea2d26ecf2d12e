"""The delivery stack of an environment: what lets GitHub Actions deploy it and review changes
to it, with no long-lived key anywhere.

- GitHub's OIDC provider in the account (or the one another environment's delivery stack
  made there, ``aws.github.oidc_provider``);
- the deploy role (``Names.deploy_role``), assumed by ``.github/workflows/deploy.yml``'s job in
  the GitHub environment of the same name: it may only assume the CDK bootstrap roles that
  deploy (``cdk bootstrap``'s deploy, file-publishing and lookup roles), then the smoke role,
  and publish a failed deployment to the operations topic;
- the review role (``Names.review_role``), assumed by ``.github/workflows/ci.yml``'s review
  of a pull request: it may only read the pipeline stack's template (``cdk diff --method
  template``).

Each role trusts one subject: the token's ``sub`` claim as ``aws.github`` renders it for the
job's context (``environment:<env>`` or ``pull_request``), and the audience AWS's action asks
for. An administrator deploys this stack once per environment, before the first deployment
(docs/DEPLOY.md); the workflows never deploy it. They could still change it through
CloudFormation's execution role, which CDK's deploy role passes and which is an administrator
by default: docs/DEPLOY.md bootstraps the account again with an execution policy that denies
it every IAM action on these roles and the provider.
"""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Aws, CfnOutput, DefaultStackSynthesizer, Duration, Fn, Stack, Tags
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk.nag import arn_finding, suppress
from pipeline.deployment import Names
from pipeline.settings import Settings

TOKEN_ISSUER: Final = "token.actions.githubusercontent.com"
"""GitHub's OIDC issuer: the provider's URL without its scheme, and the prefix of the IAM
condition keys on a token's claims (``token.actions.githubusercontent.com:sub``)."""
AUDIENCE: Final = "sts.amazonaws.com"
"""The audience aws-actions/configure-aws-credentials requests its token for."""
BOOTSTRAP_ROLES: Final = ("deploy", "file-publishing", "lookup")
"""The ``cdk bootstrap`` roles a deployment of this app assumes: it has file assets only."""
DEPLOY_SESSION: Final = Duration.hours(2)
"""How long a deploy role session may last: a first deployment (VPC, Redshift Serverless)
outlasts the default hour, and the CLI re-assumes the bootstrap roles from it."""

ENVIRONMENT_CONTEXT: Final = "environment:{env}"
PULL_REQUEST_CONTEXT: Final = "pull_request"


def delivery_stack_name(settings: Settings) -> str:
    return f"flightpipe-{settings.env.value}-delivery"


class DeliveryStack(Stack):
    """GitHub's OIDC provider and the deploy and review roles of one environment."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        Tags.of(self).add("project", "flightpipe")
        Tags.of(self).add("environment", settings.env.value)
        github = settings.aws.github
        names = Names.of(settings)
        provider = self._provider(github.oidc_provider == "create")

        deploy = self._role(
            "DeployRole",
            names.deploy_role,
            provider,
            github.subject(ENVIRONMENT_CONTEXT.format(env=settings.env.value)),
            description=f"Deploys flightpipe {settings.env.value} from GitHub Actions",
            max_session=DEPLOY_SESSION,
        )
        deploy.add_to_policy(_assume(*(bootstrap_role_arn(r) for r in BOOTSTRAP_ROLES)))
        deploy.add_to_policy(_assume(role_arn(names.smoke_role)))
        operations_topic = self.format_arn(service="sns", resource=names.operations_topic)
        deploy.add_to_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[operations_topic])
        )
        # The topic is encrypted with the pipeline stack's key, whose id this stack cannot
        # know: the key is named by the encryption context SNS gives it, the topic's ARN
        # (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
        deploy.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[self.format_arn(service="kms", resource="key", resource_name="*")],
                conditions={
                    "StringEquals": {
                        "kms:EncryptionContext:aws:sns:topicArn": operations_topic,
                        "kms:ViaService": f"sns.{Aws.REGION}.amazonaws.com",
                    }
                },
            )
        )
        suppress(
            deploy,
            "AwsSolutions-IAM5",
            "The operations topic's key is created by the pipeline stack with an id unknown "
            "here; the encryption context condition names the topic, so only its key matches",
            applies_to=[arn_finding(self, "kms", "key/*")],
        )

        review = self._role(
            "ReviewRole",
            names.review_role,
            provider,
            github.subject(PULL_REQUEST_CONTEXT),
            description=f"Reads flightpipe {settings.env.value} to review a pull request's changes",
        )
        # Not CDK's lookup role: it reads everything but KMS, the data buckets' objects among
        # them, and any branch's pull request gets this role. `cdk diff --method template`
        # reads the deployed template with the base credentials when it cannot assume it.
        review.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DescribeStacks", "cloudformation:GetTemplate"],
                resources=[
                    self.format_arn(
                        service="cloudformation",
                        resource="stack",
                        resource_name=f"flightpipe-{settings.env.value}/*",
                    )
                ],
            )
        )

        suppress(
            review,
            "AwsSolutions-IAM5",
            "A stack's ARN ends in an id CloudFormation gives it when created; the name "
            "before it is this environment's pipeline stack alone",
            applies_to=[
                arn_finding(self, "cloudformation", f"stack/flightpipe-{settings.env.value}/*")
            ],
        )

        CfnOutput(self, "DeployRoleArn", value=deploy.role_arn)
        CfnOutput(self, "ReviewRoleArn", value=review.role_arn)

    def _provider(self, create: bool) -> str:
        """The ARN of the account's GitHub OIDC provider, created here when ``create``."""
        if create:
            # IAM validates GitHub's certificate itself: no thumbprint is needed
            # (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc_verify-thumbprint.html).
            provider = iam.OidcProviderNative(
                self, "GitHubOidc", url=f"https://{TOKEN_ISSUER}", client_ids=[AUDIENCE]
            )
            return provider.oidc_provider_arn
        return self.format_arn(
            service="iam", region="", resource="oidc-provider", resource_name=TOKEN_ISSUER
        )

    def _role(
        self,
        construct_id: str,
        name: str,
        provider: str,
        subject: str,
        *,
        description: str,
        max_session: Duration | None = None,
    ) -> iam.Role:
        """A role only a GitHub job whose token has exactly ``subject`` may assume."""
        return iam.Role(
            self,
            construct_id,
            role_name=name,
            description=description,
            max_session_duration=max_session,
            assumed_by=iam.WebIdentityPrincipal(
                provider,
                {"StringEquals": {f"{TOKEN_ISSUER}:aud": AUDIENCE, f"{TOKEN_ISSUER}:sub": subject}},
            ),
        )


def bootstrap_role_arn(role: str) -> str:
    """The ARN of a ``cdk bootstrap`` role of the stack's account and region (default
    qualifier), as the app's synthesizer names it."""
    qualifier = DefaultStackSynthesizer.DEFAULT_QUALIFIER
    return role_arn(f"cdk-{qualifier}-{role}-role-${{AWS::AccountId}}-${{AWS::Region}}")


def role_arn(name: str) -> str:
    """The ARN of the role ``name`` (which may hold ``${AWS::...}``) in the stack's account."""
    return Fn.sub(f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{name}")


def _assume(*roles: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["sts:AssumeRole"], resources=list(roles))
