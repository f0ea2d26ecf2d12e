"""The state machines, the upload events that start them, the alert topic and the operations
topic.

Both definitions are ``pipeline.workflow``'s, rendered with their ``${Name}`` placeholders and
filled by CloudFormation (``DefinitionSubstitutions``) from ``pipeline.deployment.substitutions``,
the values the twin fills them with: no account is in the definitions. An upload's event goes
to the router (an Express machine, which names the main run after the object version); an event
the router cannot take is retried, then kept in a dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.grants import READ, listing, objects
from cdk.nag import arn_finding, retained, suppress
from pipeline.deployment import (
    EVENT_MAX_AGE_SECONDS,
    EVENT_RETRIES,
    Names,
    dimension_events,
    subscriptions,
    substitutions,
    upload_events,
)
from pipeline.settings import Settings
from pipeline.workflow import main_definition, render, router_definition


class Alerting(Construct):
    """The alert topic (on-call: one message per failed file) and the operations topic (alarms,
    failed deployments), both encrypted with a key of their own."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Settings, names: Names
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="The pipeline's SNS topics",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # CloudWatch alarms publish to the operations topic with this key.
        self.key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.topic = sns.Topic(
            self, "Alerts", topic_name=names.topic, master_key=self.key, enforce_ssl=True
        )
        self.operations = sns.Topic(
            self,
            "Operations",
            topic_name=names.operations_topic,
            master_key=self.key,
            enforce_ssl=True,
        )
        for index, subscription in enumerate(subscriptions(settings)):
            sns.CfnSubscription(
                self,
                f"OnCall{index}",
                topic_arn=self.topic.topic_arn,
                protocol=subscription.protocol,
                endpoint=subscription.endpoint,
                filter_policy=dict(subscription.filter_policy),
            )
        for index, email in enumerate(settings.aws.operations_emails):
            sns.CfnSubscription(
                self,
                f"Operator{index}",
                topic_arn=self.operations.topic_arn,
                protocol="email",
                endpoint=email,
            )


class Orchestration(Construct):
    """The main state machine and the router, with the rules that start the router."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        names: Names,
        buckets: Mapping[str, s3.IBucket],
        alerting: Alerting,
        reports_url: str,
        copy_role: iam.IRole,
        job_arns: Sequence[str],
        crawler_arns: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        aws = settings.aws
        storage = settings.storage
        values = substitutions(
            settings,
            {purpose: bucket.bucket_name for purpose, bucket in buckets.items()},
            alert_topic_arn=alerting.topic.topic_arn,
            copy_role_arn=copy_role.role_arn,
            reports_url=reports_url,
        )
        self.main = sfn.StateMachine(
            self,
            "Main",
            state_machine_name=names.main,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(render(main_definition(settings))),
            definition_substitutions=values,
            logs=self._logs("Main", aws.log_retention_days),
            tracing_enabled=True,
        )
        main_arn = self.main.state_machine_arn
        self.router = sfn.StateMachine(
            self,
            "Router",
            state_machine_name=names.router,
            state_machine_type=sfn.StateMachineType.EXPRESS,
            definition_body=sfn.DefinitionBody.from_string(render(router_definition(settings))),
            definition_substitutions={**values, "MainStateMachineArn": main_arn},
            logs=self._logs("Router", aws.log_retention_days),
            tracing_enabled=True,
        )
        self.main.grant_start_execution(self.router)
        alerting.topic.grant_publish(self.main)
        alerting.topic.grant_publish(self.router)

        # What the main machine's tasks call (pipeline/workflow.py).
        self.main.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "glue:StartJobRun",
                    "glue:GetJobRun",
                    "glue:GetJobRuns",
                    "glue:BatchStopJobRun",
                ],
                resources=list(job_arns),
            )
        )
        self.main.add_to_role_policy(
            iam.PolicyStatement(
                actions=["glue:StartCrawler", "glue:GetCrawler"],
                resources=list(crawler_arns.values()),
            )
        )
        for purpose in ("raw", "dim"):
            # A result not yet written must read as missing (NoSuchKey), not forbidden: that
            # takes ListBucket.
            objects(
                self.main.role,
                buckets[purpose],
                f"{storage.results_prefix}*",
                READ,
                "A run reads the result of its upload version.",
            )
            listing(self.main.role, buckets[purpose])
        objects(
            self.main.role,
            buckets["raw"],
            f"{storage.validated_prefix}*",
            READ,
            "A run reads its validated copy's version.",
        )
        for machine in (self.main, self.router):
            suppress(
                machine.role,
                "AwsSolutions-IAM5",
                "Publishing to the encrypted topic takes kms:GenerateDataKey*, as SNS asks; "
                "X-Ray's PutTraceSegments and the log delivery CDK grants name no resource.",
                applies_to=["Action::kms:GenerateDataKey*", "Resource::*"],
            )
        # Upload events, retried for a day, then dead-lettered.
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        suppress(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the upload events; its messages are alarmed on.",
        )
        target = targets.SfnStateMachine(
            self.router,
            dead_letter_queue=self.dead_letters,
            retry_attempts=EVENT_RETRIES,
            max_event_age=Duration.seconds(EVENT_MAX_AGE_SECONDS),
        )
        self.rules = []
        for rule_id, rule_name, pattern in (
            ("Uploads", names.upload_rule, upload_events(settings, buckets["raw"].bucket_name)),
            (
                "DimensionUploads",
                names.dimension_rule,
                dimension_events(settings, buckets["dim"].bucket_name),
            ),
        ):
            rule = events.Rule(
                self,
                rule_id,
                rule_name=rule_name,
                event_pattern=_pattern(pattern),
                targets=[target],
            )
            self.rules.append(rule)

        # One alarm for operations on failed runs or dead-lettered events (on-call already
        # has each failed file's alert).
        failed = cloudwatch.MathExpression(
            expression="failed + timedout + aborted",
            using_metrics={
                "failed": self.main.metric_failed(period=Duration.minutes(5)),
                "timedout": self.main.metric_timed_out(period=Duration.minutes(5)),
                "aborted": self.main.metric_aborted(period=Duration.minutes(5)),
            },
            label="Failed, timed-out or aborted runs",
            period=Duration.minutes(5),
        )
        self.failed_alarm = failed.create_alarm(
            self,
            "RunsFailed",
            alarm_description="Main runs failed, timed out or were aborted: see the alerts",
            threshold=aws.alarms.failed_executions,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dead_letter_alarm = self.dead_letters.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5)
        ).create_alarm(
            self,
            "EventsDeadLettered",
            alarm_description="Upload events the router never took: their files did not run",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (self.failed_alarm, self.dead_letter_alarm):
            alarm.add_alarm_action(actions.SnsAction(alerting.operations))

        # What an operator needs later: redriving a failed run from where it failed.
        self.operate = iam.ManagedPolicy(
            self,
            "Operate",
            description="Redrive, describe and list the main machine's runs",
            statements=[
                iam.PolicyStatement(
                    actions=["states:RedriveExecution", "states:DescribeExecution"],
                    resources=[
                        stack.format_arn(
                            service="states",
                            resource="execution",
                            resource_name=f"{names.main}:*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
                iam.PolicyStatement(
                    actions=["states:ListExecutions", "states:DescribeStateMachine"],
                    resources=[main_arn],
                ),
            ],
        )
        suppress(
            self.operate,
            "AwsSolutions-IAM5",
            "A run's ARN is its machine's and its name, a hash of the object version it runs.",
            applies_to=[arn_finding(self, "states", f"execution:{names.main}:*")],
        )

    def _logs(self, label: str, retention_days: int) -> sfn.LogOptions:
        group = logs.LogGroup(self, f"{label}Logs", removal_policy=RemovalPolicy.DESTROY)
        retained(group, retention_days)
        return sfn.LogOptions(
            destination=group, level=sfn.LogLevel.ALL, include_execution_data=True
        )


def _pattern(pattern: Mapping[str, object]) -> events.EventPattern:
    """``pipeline.deployment``'s event pattern as CDK's: the same JSON once synthesized."""
    detail = pattern["detail"]
    assert isinstance(detail, dict)
    return events.EventPattern(
        source=list(pattern["source"]),  # type: ignore[call-overload]
        detail_type=list(pattern["detail-type"]),  # type: ignore[call-overload]
        detail=json.loads(json.dumps(detail)),
    )
