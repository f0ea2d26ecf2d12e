"""The pipeline's own CloudWatch metrics: what the jobs put, under which names, and how.

The validation job puts how many file versions it validated and quarantined; the load job,
after its warehouse transaction committed, how many it loaded, their rows, and how long the
oldest of them waited between its validation and its load. Each value carries one dimension,
the environment (``Environment`` = ``JobSettings.env``), so each environment's dashboard and
alarms read their own. The names below are plain constants: the CDK app builds the dashboard
and the alarm from them, so a job and its dashboard can never disagree on a name.

The job roles may put metrics only in this namespace and Glue's own (an IAM condition on
``cloudwatch:namespace``). A value that cannot be put never fails a run: ``put_metrics`` logs
a warning naming the metrics and the error, and the run goes on as if it had been put.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from pipeline.core.errors import plain_error

if TYPE_CHECKING:
    from botocore.config import Config

log = logging.getLogger(__name__)

NAMESPACE: Final = "flightpipe"
"""Where the jobs' metrics are, beside Glue's own (``Glue``): the job roles may put no other."""

ENVIRONMENT: Final = "Environment"
"""The one dimension of every metric: its value is the job settings' ``env``."""

FILES_VALIDATED: Final = "FilesValidated"
"""File versions a validation run found loadable (passed, or passed with warnings): promoted,
or superseded by a newer upload already promoted. A version counts in the run that decided
its result (its own run, or another run's batch), never in a run that read that result."""
FILES_QUARANTINED: Final = "FilesQuarantined"
"""File versions a validation run quarantined (moved, with their result, to quarantine)."""
FILES_LOADED: Final = "FilesLoaded"
"""Validated file versions a load run loaded (its rejected ones not among them)."""
ROWS_LOADED: Final = "RowsLoaded"
"""Rows a load run loaded: those of its audit rows."""
VALIDATED_TO_LOADED_SECONDS: Final = "ValidatedToLoadedSeconds"
"""How long the oldest file version a load run loaded waited, validated, for that load: from
its validated copy's write (S3's LastModified: when the gate promoted it) to the load's
commit. The input of the alarm on validated versions waiting too long; a load that loaded
nothing puts none."""

COUNT: Final = "Count"
SECONDS: Final = "Seconds"
UNITS: Final[Mapping[str, str]] = {
    FILES_VALIDATED: COUNT,
    FILES_QUARANTINED: COUNT,
    FILES_LOADED: COUNT,
    ROWS_LOADED: COUNT,
    VALIDATED_TO_LOADED_SECONDS: SECONDS,
}
"""Each metric's CloudWatch unit (a ``StandardUnit``)."""

MAX_METRICS_PER_CALL: Final = 1000
"""The most metrics one PutMetricData call takes ("no more than 1000 different metrics", in a
request of at most 1 MB; https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html).
A call here puts each metric of ``UNITS`` at most once, far fewer."""


def client_config() -> Config:
    """How a job's CloudWatch client calls, on AWS: briefly, and twice at most. A metric is
    worth far less than the run, so an unreachable endpoint costs a run seconds, not boto3's
    default minutes (a 60 s connect and read timeout, each attempt)."""
    from botocore.config import Config

    return Config(
        connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
    )


def put_metrics(
    cloudwatch: Any,
    env: str,
    values: Mapping[str, float],
    at: dt.datetime | None = None,
) -> bool:
    """Put ``values`` (by metric name, each of ``UNITS``) in one PutMetricData call, each with
    its unit, the ``Environment`` dimension ``env`` and the timestamp ``at`` (now by default).

    Whether they were put. A failed call raises nothing: the warning names each metric, its
    value and the error. A name this module does not define is a mistake in the caller, and
    raises ``ValueError`` before anything is sent.
    """
    unknown = sorted(set(values) - set(UNITS))
    if unknown:
        raise ValueError(f"no such metric: {', '.join(unknown)} (pipeline.core.metrics)")
    if not values:
        return True
    timestamp = at or dt.datetime.now(dt.UTC)
    dimensions = [{"Name": ENVIRONMENT, "Value": env}]
    data = [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": timestamp,
            "Value": float(value),
            "Unit": UNITS[name],
        }
        for name, value in values.items()
    ]
    shown = ", ".join(f"{name}={value:g}" for name, value in values.items())
    try:
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data)
    except Exception as exc:
        log.warning(
            "could not put the metrics %s (namespace %s, %s=%s): %s",
            shown,
            NAMESPACE,
            ENVIRONMENT,
            env,
            plain_error(exc),
            extra={"metrics": sorted(values), "metrics_error": plain_error(exc)},
        )
        return False
    log.info("put the metrics %s (%s=%s)", shown, ENVIRONMENT, env)
    return True
