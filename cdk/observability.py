"""What operations watches: one dashboard per environment, and the alarm on validated versions
that waited too long for their load.

The pipeline's own metrics are the jobs' (``pipeline.core.metrics``: files validated,
quarantined and loaded, rows loaded, how long a load's oldest version waited), in the
environment's dimension; runs and failures are Step Functions' metrics of the main machine;
job durations are Glue's job metrics (``--enable-metrics``).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from pipeline.core import metrics
from pipeline.deployment import Names
from pipeline.settings import Settings

PERIOD: Final = Duration.minutes(5)
GLUE_ELAPSED: Final = "glue.driver.aggregate.elapsedTime"
"""A Glue job run's elapsed time, in milliseconds, reported under the job's name with
``JobRunId`` ``ALL`` and ``Type`` ``count``
(https://docs.aws.amazon.com/glue/latest/dg/monitoring-awsglue-with-cloudwatch-metrics.html)."""


class Observability(Construct):
    """The dashboard, and the alarm on a validated version's wait."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        names: Names,
        main: sfn.StateMachine,
        dead_letters: sqs.IQueue,
        operations: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        env = settings.env.value

        def pipeline(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=metrics.NAMESPACE,
                metric_name=name,
                dimensions_map={metrics.ENVIRONMENT: env},
                statistic=statistic,
                period=PERIOD,
                label=name,
            )

        def elapsed(job: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="Glue",
                metric_name=GLUE_ELAPSED,
                dimensions_map={"JobName": job, "JobRunId": "ALL", "Type": "count"},
                statistic="Maximum",
                period=PERIOD,
                label=f"{job} (ms)",
            )

        waited = pipeline(metrics.VALIDATED_TO_LOADED_SECONDS, "Maximum")
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"flightpipe-{env}",
            widgets=[
                [
                    cloudwatch.GraphWidget(
                        title="Runs",
                        left=[
                            main.metric_started(period=PERIOD),
                            main.metric_succeeded(period=PERIOD),
                        ],
                    ),
                    cloudwatch.GraphWidget(
                        title="Failures",
                        left=[
                            main.metric_failed(period=PERIOD),
                            main.metric_timed_out(period=PERIOD),
                            main.metric_aborted(period=PERIOD),
                            dead_letters.metric_approximate_number_of_messages_visible(
                                period=PERIOD
                            ),
                        ],
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Files",
                        left=[
                            pipeline(metrics.FILES_VALIDATED),
                            pipeline(metrics.FILES_QUARANTINED),
                            pipeline(metrics.FILES_LOADED),
                        ],
                    ),
                    cloudwatch.GraphWidget(
                        title="Rows loaded", left=[pipeline(metrics.ROWS_LOADED)]
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Job durations",
                        left=[elapsed(names.validation_job), elapsed(names.load_job)],
                    ),
                    cloudwatch.GraphWidget(title="Validated to loaded (s)", left=[waited]),
                ],
            ],
        )
        # A load that finally loads a version that waited too long raises this; a version no
        # load ever takes fails its own run at the load wait's end, which the failed-runs
        # alarm reports.
        self.waited_alarm = waited.create_alarm(
            self,
            "ValidatedWaitedTooLong",
            alarm_description=(
                f"A validated version waited more than {settings.aws.alarms.unloaded_minutes} "
                "minutes (aws.alarms.unloaded_minutes) for its load"
            ),
            threshold=settings.aws.alarms.unloaded_minutes * 60,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.waited_alarm.add_alarm_action(actions.SnsAction(operations))
