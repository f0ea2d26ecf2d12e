"""The pipeline's CloudWatch metrics (``pipeline.core.metrics``): one PutMetricData call per set
of values, each with its unit and the environment's dimension, and a call that fails fails
nothing. CloudWatch is moto's, in this process; what the jobs put is checked where they run
(``tests/test_validation_job.py``, ``tests/test_glue_job.py``, ``tests/test_orchestration.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from pipeline.core import metrics
from pipeline.core.metrics import (
    ENVIRONMENT,
    FILES_LOADED,
    FILES_QUARANTINED,
    FILES_VALIDATED,
    NAMESPACE,
    ROWS_LOADED,
    UNITS,
    VALIDATED_TO_LOADED_SECONDS,
    put_metrics,
)


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("cloudwatch")


def calls(client: Any, sent: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The parameters of every PutMetricData this client sends from now on (added to
    ``sent`` when given)."""
    sent = [] if sent is None else sent
    client.meta.events.register(
        "provide-client-params.cloudwatch.PutMetricData", lambda params, **_: sent.append(params)
    )
    return sent


def jobs_metric_calls(monkeypatch: pytest.MonkeyPatch, instead: Any = None) -> list[dict[str, Any]]:
    """The parameters of every PutMetricData sent by a CloudWatch client that a job's Glue
    binding makes from now on (``boto3.client("cloudwatch", ...)``); with ``instead``, the
    binding gets that client instead. Each client made has the jobs' ``client_config``."""
    sent: list[dict[str, Any]] = []
    real = boto3.client

    def client(name: str, *args: Any, **kwargs: Any) -> Any:
        if name != "cloudwatch":
            return real(name, *args, **kwargs)
        assert kwargs["config"].connect_timeout == metrics.client_config().connect_timeout
        if instead is not None:
            return instead
        made = real(name, *args, **kwargs)
        calls(made, sent)
        return made

    monkeypatch.setattr(boto3, "client", client)
    return sent


def put_values(call: dict[str, Any], env: str) -> dict[str, float]:
    """The values one PutMetricData call put, by metric name, once its namespace, units and
    dimension are checked."""
    assert call["Namespace"] == NAMESPACE
    values = {}
    for datum in call["MetricData"]:
        assert datum["Dimensions"] == [{"Name": ENVIRONMENT, "Value": env}]
        assert datum["Unit"] == UNITS[datum["MetricName"]]
        values[datum["MetricName"]] = datum["Value"]
    assert len(values) == len(call["MetricData"])  # each metric once
    return values


def statistics(client: Any, name: str, env: str, at: dt.datetime) -> list[dict[str, Any]]:
    """The datapoints of ``name`` in ``env`` in the minutes around ``at``."""
    return list(
        client.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": ENVIRONMENT, "Value": env}],
            StartTime=at - dt.timedelta(minutes=5),
            EndTime=at + dt.timedelta(minutes=5),
            Period=60,
            Statistics=["Sum", "SampleCount", "Maximum"],
        )["Datapoints"]
    )


def test_each_value_is_put_with_its_unit_and_the_environment_in_one_call(
    cloudwatch: Any,
) -> None:
    sent = calls(cloudwatch)
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    values = {
        FILES_VALIDATED: 3,
        FILES_QUARANTINED: 1,
        FILES_LOADED: 2,
        ROWS_LOADED: 800,
        VALIDATED_TO_LOADED_SECONDS: 12.5,
    }

    assert put_metrics(cloudwatch, "dev", values, at) is True

    assert len(sent) == 1  # every metric there is, in one call
    assert sent[0]["Namespace"] == NAMESPACE == "flightpipe"
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == sorted(values)
    assert all(m["Dimensions"] == [{"Name": "Environment", "Value": "dev"}] for m in listed)
    for name, value in values.items():
        [point] = statistics(cloudwatch, name, "dev", at)
        assert (point["Sum"], point["SampleCount"], point["Unit"]) == (value, 1, UNITS[name])
    assert {UNITS[n] for n in (FILES_LOADED, ROWS_LOADED)} == {"Count"}
    assert UNITS[VALIDATED_TO_LOADED_SECONDS] == "Seconds"
    # Another environment's dashboard sees none of them.
    assert statistics(cloudwatch, ROWS_LOADED, "prod", at) == []
    # One call holds at most one datum per metric: far below CloudWatch's limit.
    assert len(UNITS) <= metrics.MAX_METRICS_PER_CALL


class Refusing:
    """A CloudWatch client whose every PutMetricData fails as ``error`` says."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def put_metric_data(self, **_: Any) -> None:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "not allowed in namespace flightpipe"}},
            "PutMetricData",
        ),
        EndpointConnectionError(endpoint_url="https://monitoring.eu-west-1.amazonaws.com/"),
    ],
    ids=["refused", "unreachable"],
)
def test_values_that_cannot_be_put_raise_nothing_and_the_warning_names_them_and_the_error(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    client = Refusing(error)
    caplog.set_level(logging.WARNING, logger="pipeline.core.metrics")

    assert put_metrics(client, "dev", {FILES_LOADED: 2, ROWS_LOADED: 800}) is False

    assert client.calls == 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "FilesLoaded=2" in message
    assert "RowsLoaded=800" in message
    assert type(error).__name__ in message
    assert ("not allowed" if isinstance(error, ClientError) else "monitoring.eu-west-1") in message


def test_a_name_that_is_no_metric_is_the_callers_mistake_and_nothing_is_sent() -> None:
    client = Refusing(AssertionError("nothing may be sent"))

    with pytest.raises(ValueError, match="no such metric: FilesLost"):
        put_metrics(client, "dev", {FILES_LOADED: 1, "FilesLost": 1})

    assert client.calls == 0


def test_the_jobs_client_gives_up_in_seconds() -> None:
    config = metrics.client_config()
    assert (config.connect_timeout, config.read_timeout) == (3, 5)
    assert config.retries == {"max_attempts": 2, "mode": "standard"}
