"""The state machines' definitions: their graphs, their numbers, and reviewed snapshots.

No AWS endpoint: the SDK renders offline, and moto's ASL parser (the one the local twin
executes) checks the syntax, intrinsic functions included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import workflow
from pipeline.local.postgres import PostgresWarehouse
from pipeline.settings import REPO_ROOT, Settings, load_settings

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_SNAPSHOTS = "FLIGHTPIPE_UPDATE_SNAPSHOTS"
MACHINES: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "main": workflow.main_definition,
    "router": workflow.router_definition,
}
CASES = [(machine, env) for machine in MACHINES for env in ("local", "prod")]


@pytest.fixture(autouse=True)
def settings_only_from_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Definitions depend on settings alone, never on the caller's FLIGHTPIPE_* variables."""
    for name in os.environ:
        if name.startswith("FLIGHTPIPE_") and name != UPDATE_SNAPSHOTS:
            monkeypatch.delenv(name)


def definition(machine: str, env: str = "local", **overrides: object) -> dict[str, Any]:
    return MACHINES[machine](load_settings(env, **overrides))


def successors(state: dict[str, Any]) -> list[str]:
    """Every state ``state`` can go to: Next, each choice, the default, each catcher."""
    targets = [state["Next"]] if "Next" in state else []
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [state["Default"]] if "Default" in state else []
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def reachable(states: dict[str, Any], start: str) -> set[str]:
    """The states reachable from ``start`` among ``states`` (others are not gone through)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen and name in states:
            seen.add(name)
            todo += successors(states[name])
    return seen


def endings(states: dict[str, Any], start: str) -> set[str]:
    """How the paths from ``start`` can end: the types of the terminal states reached."""
    return {
        states[name]["Type"] for name in reachable(states, start) if not successors(states[name])
    }


def tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((name, state) for name, state in states.items() if state["Type"] == "Task")


def retrier(state: dict[str, Any], error: str) -> dict[str, Any]:
    (found,) = (retry for retry in state["Retry"] if error in retry["ErrorEquals"])
    return found


@pytest.mark.parametrize(("machine", "env"), CASES)
def test_definition_is_one_connected_graph(machine: str, env: str) -> None:
    states = definition(machine, env)["States"]
    start = definition(machine, env)["StartAt"]
    assert start in states
    for name, state in states.items():
        assert set(successors(state)) <= states.keys(), name
    assert reachable(states, start) == states.keys(), "unreachable states"


@pytest.mark.parametrize(("machine", "env"), CASES)
def test_definition_parses_as_the_asl_the_local_twin_executes(machine: str, env: str) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    text = workflow.render(definition(machine, env))
    filled = workflow.substitute(text, {name: f"x-{name}" for name in workflow.PLACEHOLDERS})
    AmazonStateLanguageParser.parse(filled)


@pytest.mark.parametrize("machine", MACHINES)
def test_every_task_retries_transient_errors_and_catches_everything_else(machine: str) -> None:
    for name, state in tasks(definition(machine)["States"]):
        assert state["Retry"], name
        for retry in state["Retry"]:
            assert retry["JitterStrategy"] == "FULL", name
            assert retry["MaxDelaySeconds"] >= retry["IntervalSeconds"], name
            assert not {"States.ALL", "States.TaskFailed"} & set(retry["ErrorEquals"]), name
        assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name


# What each task's resource calls: the botocore service, its operations, its errors' prefix.
INTEGRATIONS = {
    "arn:aws:states:::glue:startJobRun.sync": ("glue", ("StartJobRun", "GetJobRun")),
    "arn:aws:states:::sns:publish": ("sns", ("Publish",)),
    "arn:aws:states:::states:startExecution": ("stepfunctions", ("StartExecution",)),
}
PREFIXES = {
    "glue": "Glue",
    "sns": "SNS",
    "stepfunctions": "StepFunctions",
    "redshift-data": "RedshiftData",
    "s3": "S3",
}
# Raised, though in no API model, each with its source (the comments in pipeline/workflow.py).
OUTSIDE_THE_MODELS = {"Glue.AWSGlueException", "StepFunctions.ThrottlingException"}


def integration(resource: str) -> tuple[str, tuple[str, ...]]:
    if resource in INTEGRATIONS:
        return INTEGRATIONS[resource]
    service, action = resource.removeprefix("arn:aws:states:::aws-sdk:").split(":")
    return {"redshiftdata": "redshift-data"}.get(service, service), (
        action[0].upper() + action[1:],
    )


@pytest.mark.parametrize("machine", MACHINES)
def test_every_retried_or_caught_error_is_one_the_integration_raises(machine: str) -> None:
    """Each name is ``Service.Error`` of an exception in the service's API model (botocore's),
    the name Step Functions gives it, or one of the few cited outside the models; a name no
    service raises (RedshiftData.ThrottlingException) would never match."""
    import botocore.session

    session = botocore.session.get_session()
    for name, state in tasks(definition(machine)["States"]):
        service, operations = integration(state["Resource"])
        model = session.get_service_model(service)
        exceptions = {
            shape for shape in model.shape_names if model.shape_for(shape).metadata.get("exception")
        }
        # Redshift's Data API: the errors of the very operation.
        if service == "redshift-data":
            exceptions = {
                e.name for op in operations for e in model.operation_model(op).error_shapes
            }
        handlers = [*state["Retry"], *state.get("Catch", [])]
        for error in {e for handler in handlers for e in handler["ErrorEquals"]}:
            if error.startswith("States.") or error in OUTSIDE_THE_MODELS:
                continue
            prefix, _, exception = error.partition(".")
            assert prefix == PREFIXES[service], (name, error)
            assert exception.removesuffix("Exception") in {
                e.removesuffix("Exception") for e in exceptions
            }, (name, error)


# What the Data API refuses in the request as sent (malformed, a statement it cannot run, a
# statement id it does not know) it refuses again: retrying only delays the alert.
REFUSED_AS_SENT = ("ValidationException", "ExecuteStatementException", "ResourceNotFoundException")


def test_no_data_api_task_retries_what_the_data_api_refuses_as_sent() -> None:
    """Each Redshift Data API task retries the service's own failure, never an error its
    operation (in botocore's model) raises for the request itself, nor a catch-all."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("redshift-data")
    data_api = [
        (name, state)
        for name, state in tasks(definition("main")["States"])
        if integration(state["Resource"])[0] == "redshift-data"
    ]
    assert data_api
    for name, state in data_api:
        _, (operation,) = integration(state["Resource"])
        declared = {e.name for e in model.operation_model(operation).error_shapes}
        refused = {f"RedshiftData.{e}" for e in REFUSED_AS_SENT if e in declared}
        retried = {e for retry in state["Retry"] for e in retry["ErrorEquals"]}
        assert refused, (name, declared)
        assert not retried & (refused | {"States.ALL", "States.TaskFailed"}), name
        assert "RedshiftData.InternalServerException" in retried, name


# The errors a state catches as answers, not failures.
OUTCOMES = {
    ("Start run", "StepFunctions.ExecutionAlreadyExistsException"),  # a duplicate event
    ("Start crawler", "Glue.CrawlerRunningException"),  # join the crawl
    ("Catalog dimension", "Glue.CrawlerRunningException"),  # the crawl in progress will do
    ("Load validated files", "Glue.ConcurrentRunsExceededException"),  # wait for that load
    # wait for the validations in flight, one of which may validate this upload too
    ("Validate upload", "Glue.ConcurrentRunsExceededException"),
    ("Read validation result", "S3.NoSuchKeyException"),  # not validated yet
    ("Read validated copy", "S3.NoSuchKeyException"),  # no copy: a newer upload's was rejected
}


@pytest.mark.parametrize("machine", MACHINES)
def test_every_failure_publishes_an_alert_and_ends_failed(machine: str) -> None:
    states = definition(machine)["States"]
    for name, state in states.items():
        for catcher in state.get("Catch", []):
            if (name, *catcher["ErrorEquals"]) not in OUTCOMES:
                assert endings(states, catcher["Next"]) == {"Fail"}, name
                assert catcher["ResultPath"] in ("$.error", "$.alert_error"), name
                if name != "Publish failure alert":
                    assert "Publish failure alert" in reachable(states, catcher["Next"]), name
    alert = states["Publish failure alert"]
    assert alert["Next"] == "Failed"
    assert [catcher["Next"] for catcher in alert["Catch"]] == ["Failed"]
    assert states["Failed"]["ErrorPath"] == "$.error.Error"


_FORMAT = re.compile(r"States\.Format\('((?:[^'\\]|\\.)*)', (.+)\)", re.DOTALL)


def formats(value: Any) -> list[str]:
    """Every ``States.Format(...)`` in a state's fields, nested ones included."""
    if isinstance(value, dict):
        return [f for item in value.values() for f in formats(item)]
    if isinstance(value, list):
        return [f for item in value for f in formats(item)]
    return [value] if isinstance(value, str) and value.startswith("States.Format(") else []


@pytest.mark.parametrize("machine", MACHINES)
def test_every_formatted_text_is_one_quoted_template_with_an_argument_per_gap(
    machine: str,
) -> None:
    """An unescaped quote in a template ends it early: the task then fails at run time."""
    for name, state in definition(machine)["States"].items():
        for text in formats(state):
            match = _FORMAT.fullmatch(text)
            assert match, (name, text)
            template, arguments = match.groups()
            gaps = len(re.findall(r"(?<!\\)\{\}", template))
            assert gaps == len(top_level(arguments)), (name, text)


def top_level(arguments: str) -> list[str]:
    """An intrinsic function's arguments, split at the commas outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for at, character in enumerate(arguments):
        if character == "'" and (at == 0 or arguments[at - 1] != "\\"):
            quoted = not quoted
        elif not quoted and character in "()":
            depth += 1 if character == "(" else -1
        elif not quoted and depth == 0 and character == ",":
            parts.append(arguments[start:at].strip())
            start = at + 1
    return [*parts, arguments[start:].strip()]


def test_failure_alert_names_file_step_cause_execution_and_report() -> None:
    settings = load_settings("prod")
    alert = workflow.main_definition(settings)["States"]["Publish failure alert"]["Parameters"]
    message = alert["Message.$"]
    for part in ("$.failed_step", "$.bucket", "$.key", "$.version_id", "$.error.Cause"):
        assert part in message
    # The cause ends its line (a cause ending in a period read "to load it.. Execution"); the
    # error's name (States.TaskFailed) says nothing the cause does not.
    assert "): {}\nExecution {}" in message
    assert "$.error.Error" not in message
    assert "$$.Execution.Id" in message
    assert "quality report ${ReportsUrl}" in message
    assert alert["TopicArn"] == "${AlertTopicArn}"


def test_each_step_records_its_name_before_the_alert() -> None:
    states = definition("main")["States"]
    steps = {
        name: states[state["Catch"][-1]["Next"]]["Result"]
        for name, state in tasks(states)
        if name != "Publish failure alert"
    }
    assert steps == {
        "Validate upload": "validation",
        "List running validations": "validation",
        "Read validation result": "validation",
        "List validation runs": "burst wait",
        "Start crawler": "crawl",
        "Get crawler": "crawl",
        "Catalog dimension": "catalog dimension",
        "Load validated files": "load",
        "Count loaded rows": "row count",
        "Describe statement": "row count",
        "Read loaded rows": "row count",
        "List load runs": "load",
        "Read validated copy": "load",
        "Publish success": "success message",
        "Publish superseded": "success message",
        "Publish dimension validated": "success message",
    }
    for failure in ("Crawl timed out", "Crawl unsuccessful"):
        assert states[states[failure]["Next"]]["Result"] == "crawl"
    for failure in ("Statement timed out", "Statement failed", "Statement not finished"):
        assert states[states[failure]["Next"]]["Result"] == "row count"


def test_success_message_carries_the_rows_the_load_audit_holds_for_the_version() -> None:
    states = definition("main")["States"]
    count = states["Count loaded rows"]
    assert count["Parameters"]["Sql"] == workflow.loaded_rows_sql()
    assert count["Parameters"]["Parameters"] == [
        {"Name": "upload_key", "Value.$": "$.key"},
        {"Name": "upload_version", "Value.$": "$.version_id"},
    ]
    assert states["Read loaded rows"]["Next"] == "Rejected at load?"
    assert states["Rejected at load?"]["Default"] == "Loaded yet?"
    loaded = states["Loaded yet?"]["Choices"][0]
    assert loaded == {
        "Variable": "$.count.rows.LongValue",
        "IsPresent": True,
        "Next": "Publish success",
    }
    message = states["Publish success"]["Parameters"]["Message.$"]
    assert "$.count.rows.LongValue" in message
    assert "$.count.load_run.StringValue" in message


def outcome_query() -> str:
    """The state machine's row count and rejection query, its parameters as psycopg's."""
    sql = workflow.loaded_rows_sql()
    return sql.replace(":upload_key", "%(upload_key)s").replace(
        ":upload_version", "%(upload_version)s"
    )


def test_the_row_count_query_reads_the_load_of_the_uploaded_version_and_no_other(
    warehouse: PostgresWarehouse,
) -> None:
    import psycopg

    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        # Two uploads of one day, each loaded; and a later load of the first one's copy again.
        conn.execute(
            "INSERT INTO flight_load_audit (source_key, source_version, sha256, flight_date,"
            " row_count, job_run_id, loaded_at, upload_key, upload_version) VALUES"
            " (%(key)s, 'c1', 'x', '2024-01-01', 7, 'r1', now() - '2 h'::interval, %(up)s, 'u1'),"
            " (%(key)s, 'c2', 'y', '2024-01-01', 9, 'r2', now() - '1 h'::interval, %(up)s, 'u2'),"
            " (%(key)s, 'c1', 'x', '2024-01-01', 8, 'r3', now(), %(up)s, 'u1')",
            {"key": "validated/2024-01-01.csv", "up": "raw/2024-01-01.csv"},
        )
        found = {
            (key, version): conn.execute(
                outcome_query(), {"upload_key": key, "upload_version": version}
            ).fetchone()
            for key, version in (
                ("raw/2024-01-01.csv", "u1"),
                ("raw/2024-01-01.csv", "u2"),
                ("raw/2024-01-01.csv", "u3"),
                ("raw/2024-01-02.csv", "u1"),
            )
        }
    assert found == {
        ("raw/2024-01-01.csv", "u1"): (8, "r3", None),
        ("raw/2024-01-01.csv", "u2"): (9, "r2", None),
        ("raw/2024-01-01.csv", "u3"): (None, None, None),
        ("raw/2024-01-02.csv", "u1"): (None, None, None),
    }


def test_a_rejected_upload_version_is_found_by_its_key_and_version_and_no_other(
    warehouse: PostgresWarehouse,
) -> None:
    import psycopg

    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO flight_load_rejects (upload_key, upload_version, validated_key,"
            " validated_version, sha256, flight_date, reason, job_run_id) VALUES"
            " ('raw/2024-01-01.csv', 'u2', 'validated/2024-01-01.csv', 'c2', 'x', '2024-01-01',"
            " 'line 11, DepDelay: 99999999999 is outside -2147483648..2147483647', 'r1')"
        )
        found = {
            version: conn.execute(
                outcome_query(), {"upload_key": "raw/2024-01-01.csv", "upload_version": version}
            ).fetchone()
            for version in ("u1", "u2")
        }
    assert found == {
        "u1": (None, None, None),
        "u2": (
            None,
            None,
            "the load set aside validated/2024-01-01.csv: "
            "line 11, DepDelay: 99999999999 is outside -2147483648..2147483647",
        ),
    }


def test_a_quarantined_file_fails_the_run_without_retry() -> None:
    states = definition("main")["States"]
    validate = states["Validate upload"]
    assert validate["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    retried = {error for retry in validate["Retry"] for error in retry["ErrorEquals"]}
    assert "States.TaskFailed" not in retried
    assert endings(states, validate["Catch"][-1]["Next"]) == {"Fail"}


def assert_bounded_poll(
    states: dict[str, Any],
    subject: str,
    ask: str,
    seconds: int,
    max_polls: int,
    *,
    goes_on_to: str | None = None,
) -> None:
    """The ``subject`` poll loop: from zero, ask, check; count, wait, ask again; a limit,
    which fails the run or, given ``goes_on_to``, leads there."""
    start, check = states[f"Start {subject} poll count"], f"Check {subject}"
    assert start["Result"] == {"polls": 0}
    assert start["Next"] == ask
    # The states on a cycle through the check that does not start the count again (an outer
    # loop may come round to the start).
    inner = {name: state for name, state in states.items() if name != f"Start {subject} poll count"}
    loop = {
        name
        for name in reachable(inner, check)
        if any(
            target in inner and check in reachable(inner, target)
            for target in successors(states[name])
        )
    }
    count, wait = f"Count {subject} poll", f"Wait for {subject}"
    assert loop == {count, wait, ask, check}
    path = start["ResultPath"]
    assert states[count]["Parameters"] == {"polls.$": f"States.MathAdd({path}.polls, 1)"}
    assert states[wait]["Seconds"] == seconds
    # The first rule leaves the loop for a failure once the count reaches the limit.
    limit = states[check]["Choices"][0]
    counted = [rule for rule in limit["And"] if rule.get("Variable") == f"{path}.polls"]
    assert counted == [{"Variable": f"{path}.polls", "NumericGreaterThanEquals": max_polls}]
    assert limit["Next"] not in loop
    if goes_on_to is None:
        assert endings(states, limit["Next"]) == {"Fail"}
    else:
        assert limit["Next"] == goes_on_to


@pytest.mark.parametrize(
    ("env", "overrides", "max_polls"),
    [
        ("local", {}, 120),
        ("prod", {}, 60),
        ("local", {"workflow": {"crawler_poll_seconds": 10, "crawl_timeout_seconds": 45}}, 5),
    ],
)
def test_crawler_poll_loop_is_bounded_by_settings(
    env: str, overrides: dict[str, Any], max_polls: int
) -> None:
    settings = load_settings(env, **overrides)
    assert settings.workflow.crawler_max_polls == max_polls
    states = workflow.main_definition(settings)["States"]
    assert states["Start crawler"]["Next"] == "Start crawl poll count"
    seconds = settings.workflow.crawler_poll_seconds
    assert_bounded_poll(states, "crawl", "Get crawler", seconds, max_polls)


@pytest.mark.parametrize(
    ("overrides", "max_polls"),
    [
        ({}, 120),
        ({"workflow": {"statement_poll_seconds": 3, "statement_timeout_seconds": 10}}, 4),
    ],
)
def test_the_row_count_polls_its_statement_until_it_ends(
    overrides: dict[str, Any], max_polls: int
) -> None:
    settings = load_settings("local", **overrides)
    assert settings.workflow.statement_max_polls == max_polls
    states = workflow.main_definition(settings)["States"]
    assert states["Count loaded rows"]["Next"] == "Start statement poll count"
    describe = states["Describe statement"]
    assert describe["Resource"] == "arn:aws:states:::aws-sdk:redshiftdata:describeStatement"
    assert describe["Parameters"] == {"Id.$": "$.count.Id"}
    seconds = settings.workflow.statement_poll_seconds
    assert_bounded_poll(states, "statement", "Describe statement", seconds, max_polls)


def test_the_row_count_reads_the_result_only_of_a_finished_statement() -> None:
    states = definition("main")["States"]
    into_read = [name for name, state in states.items() if "Read loaded rows" in successors(state)]
    assert into_read == ["Check statement"]
    check = states["Check statement"]
    assert check["Default"] == "Read loaded rows"
    status = "$.statement.status.Status"
    # While not FINISHED, FAILED or ABORTED, the loop goes round (or times out) ...
    ended = check["Choices"][1]["Not"]["Or"]
    assert {(rule["Variable"], rule["StringEquals"]) for rule in ended} == {
        (status, final) for final in ("FINISHED", "FAILED", "ABORTED")
    }
    # ... and once it ended, every status but FINISHED fails the run.
    assert check["Choices"][-1]["Not"] == {"Variable": status, "StringEquals": "FINISHED"}
    for choice in check["Choices"][2:]:
        assert endings(states, choice["Next"]) == {"Fail"}
    # A finished statement has its result: nothing to retry while it is not ready.
    retried = {e for retry in states["Read loaded rows"]["Retry"] for e in retry["ErrorEquals"]}
    assert "RedshiftData.ValidationException" not in retried


@pytest.mark.parametrize("env", ["local", "prod"])
def test_a_refused_validation_start_waits_then_reads_its_result_from_another_run(
    env: str,
) -> None:
    settings = load_settings(env)
    states = workflow.main_definition(settings)["States"]
    validate = states["Validate upload"]
    # Refused at the job's maximum: not retried, caught, counted, then the wait.
    retried = {error for retry in validate["Retry"] for error in retry["ErrorEquals"]}
    assert "Glue.ConcurrentRunsExceededException" not in retried
    busy = [
        c for c in validate["Catch"] if "Glue.ConcurrentRunsExceededException" in c["ErrorEquals"]
    ]
    assert [c["Next"] for c in busy] == ["Count validation attempt"]
    assert states["Count validation attempt"]["Next"] == "Start running validations poll count"
    assert_bounded_poll(
        states,
        "running validations",
        "List running validations",
        settings.workflow.burst_poll_seconds,
        settings.workflow.burst_max_polls,
        goes_on_to="Read validation result",
    )
    assert states["Check running validations"]["Default"] == "Read validation result"
    read = states["Read validation result"]
    assert read["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
    assert read["Parameters"] == {
        "Bucket.$": "$.bucket",
        "Key.$": "States.Format('validation-results/{}/{}.json', $.key, $.version_id)",
    }
    assert read["ResultSelector"] == {"document.$": "States.StringToJson($.Body)"}
    assert read["Catch"][0]["Next"] == "No validation result"
    # Passed or with warnings: on as after its own validation; refused: the run fails with
    # the result's alert; none yet: start again, a bounded number of times.
    decided = states["Validated yet?"]
    assert states["No validation result"]["Next"] == read["Next"] == "Validated yet?"
    passed, quarantined, refused, exhausted = decided["Choices"]
    assert passed["Next"] == "Validated by another run"
    assert states["Validated by another run"] == {
        "Type": "Pass",
        "Parameters": {"JobRunId.$": "$.validation_result.document.validated_by"},
        "ResultPath": "$.validation",
        "Next": "Airport dimension?",
    }
    assert validate["Next"] == "Airport dimension?"
    outcome = "$.validation_result.document.outcome"
    assert quarantined["And"][1] == {"Variable": outcome, "StringEquals": "quarantined"}
    assert refused == {"Variable": outcome, "IsPresent": True, "Next": "Failed in another run"}
    for name, error in (
        ("Quarantined by another run", "Validation.Quarantined"),
        ("Failed in another run", "Validation.Failed"),
    ):
        assert states[name]["Parameters"] == {
            "Error": error,
            "Cause.$": "$.validation_result.document.alert",
        }
    assert exhausted == {
        "Variable": "$.validation_attempts.count",
        "NumericGreaterThanEquals": settings.workflow.validation_attempts,
        "Next": "Validation attempts exhausted",
    }
    for failed in (
        "Quarantined by another run",
        "Failed in another run",
        "Validation attempts exhausted",
    ):
        assert endings(states, failed) == {"Fail"}
    assert decided["Default"] == "Validate upload"


@pytest.mark.parametrize(
    ("env", "overrides", "max_polls"),
    [
        ("local", {}, 60),
        ("prod", {}, 60),
        ("local", {"workflow": {"burst_poll_seconds": 5, "burst_wait_seconds": 12}}, 3),
    ],
)
def test_after_validation_a_run_waits_for_the_validations_in_flight_then_goes_on(
    env: str, overrides: dict[str, Any], max_polls: int
) -> None:
    settings = load_settings(env, **overrides)
    states = workflow.main_definition(settings)["States"]
    assert states["Validate upload"]["Next"] == "Airport dimension?"
    assert states["Airport dimension?"]["Default"] == "Start validation runs poll count"
    runs = states["List validation runs"]
    assert runs["Resource"] == "arn:aws:states:::aws-sdk:glue:getJobRuns"
    newest = settings.workflow.burst_newest_runs
    assert runs["Parameters"] == {"JobName": "${ValidationJobName}", "MaxResults": newest}
    in_flight = ("STARTING", "RUNNING", "WAITING")
    assert runs["ResultSelector"] == {
        f"{state.lower()}.$": f"States.ArrayContains($.JobRuns[*].JobRunState, '{state}')"
        for state in in_flight
    }
    seconds = settings.workflow.burst_poll_seconds
    assert_bounded_poll(
        states,
        "validation runs",
        "List validation runs",
        seconds,
        max_polls,
        goes_on_to="Start load attempts",
    )
    # Once none is in flight, the load.
    assert states["Check validation runs"]["Default"] == "Start load attempts"


def test_a_crawl_in_progress_is_joined_not_queued_behind() -> None:
    states = definition("main")["States"]
    start = states["Start crawler"]
    assert not any("Glue.CrawlerRunningException" in r["ErrorEquals"] for r in start["Retry"])
    joined = start["Catch"][0]
    assert joined["ErrorEquals"] == ["Glue.CrawlerRunningException"]
    assert joined["Next"] == start["Next"] == "Start crawl poll count"


def test_a_run_waits_while_a_load_runs_then_asks_the_warehouse_for_its_version() -> None:
    settings = load_settings("local")
    states = workflow.main_definition(settings)["States"]
    assert states["Check validation runs"]["Default"] == "Start load attempts"
    assert states["Start load attempts"]["Next"] == "Start load runs poll count"
    runs = states["List load runs"]
    assert runs["Resource"] == "arn:aws:states:::aws-sdk:glue:getJobRuns"
    # One load at a time (MaxConcurrentRuns 1): the newest run is the only one in flight.
    assert runs["Parameters"] == {"JobName": "${EtlJobName}", "MaxResults": 1}
    seconds, polls = settings.workflow.load_poll_seconds, settings.workflow.load_max_polls
    assert_bounded_poll(states, "load runs", "List load runs", seconds, polls)
    assert states["Check load runs"]["Default"] == "Count loaded rows"


def test_a_load_refused_as_busy_waits_for_that_load() -> None:
    states = definition("main")["States"]
    load = states["Load validated files"]
    busy = "Glue.ConcurrentRunsExceededException"
    assert not any(busy in r["ErrorEquals"] for r in load["Retry"])
    assert load["Catch"][0]["ErrorEquals"] == [busy]
    # Refused, the run counts the attempt and waits for the load in flight.
    assert load["Catch"][0]["Next"] == "Count load attempt"
    # Its own load done, it has the files crawled (or joins the crawl), then counts.
    assert load["Next"] == "Start crawler"
    assert states["Check crawl"]["Default"] == "Count load attempt"
    assert states["Count load attempt"]["Next"] == "Start load runs poll count"


@pytest.mark.parametrize("attempts", [3, 5])
def test_a_version_still_not_loaded_after_its_load_attempts_fails_the_run(attempts: int) -> None:
    settings = load_settings("local", workflow={"load_attempts": attempts})
    states = workflow.main_definition(settings)["States"]
    limit = states["Loaded yet?"]["Choices"][1]
    assert limit == {
        "Variable": "$.attempts.count",
        "NumericGreaterThanEquals": attempts,
        "Next": "Load attempts exhausted",
    }
    assert states["Load attempts exhausted"]["Parameters"]["Error"] == "Load.Timeout"
    assert states[states["Load attempts exhausted"]["Next"]]["Result"] == "load"


def test_a_version_whose_copy_a_newer_upload_replaced_succeeds_as_superseded() -> None:
    states = definition("main")["States"]
    assert states["Loaded yet?"]["Default"] == "Read validated copy"
    head = states["Read validated copy"]
    assert head["Resource"] == "arn:aws:states:::aws-sdk:s3:headObject"
    assert head["Parameters"]["Bucket"] == "${RawBucket}"
    assert head["Catch"][0]["ErrorEquals"] == ["S3.NoSuchKeyException"]
    still = states["Still this version's copy?"]
    version = "$.copy.Metadata['source-version']"
    assert still["Choices"] == [
        {
            "And": [
                {"Variable": version, "IsPresent": True},
                {"Variable": version, "StringEqualsPath": "$.version_id"},
            ],
            "Next": "Load validated files",
        }
    ]
    assert still["Default"] == "Publish superseded"
    assert endings(states, "Publish superseded") == {"Succeed", "Fail"}
    assert "Superseded" in states["Publish superseded"]["Parameters"]["Message.$"]


def test_numbers_come_from_the_environment_settings() -> None:
    local, prod = definition("main", "local")["States"], definition("main", "prod")["States"]
    assert local["Wait for crawl"]["Seconds"] < prod["Wait for crawl"]["Seconds"] == 30
    for name in ("Validate upload", "Load validated files", "Get crawler"):
        assert local[name]["TimeoutSeconds"] < prod[name]["TimeoutSeconds"], name
    for wait in ("Wait for load runs", "Wait for validation runs", "Wait for running validations"):
        assert local[wait]["Seconds"] < prod[wait]["Seconds"], wait
    local_throttled = retrier(local["Publish success"], "SNS.ThrottledException")
    prod_throttled = retrier(prod["Publish success"], "SNS.ThrottledException")
    assert local_throttled["MaxAttempts"] < prod_throttled["MaxAttempts"]


def test_workflow_settings_follow_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTPIPE_WORKFLOW__CRAWLER_POLL_SECONDS", "7")
    settings = load_settings("prod")
    assert settings.workflow.crawler_poll_seconds == 7
    # The rest of the section keeps the environment's values.
    assert settings.workflow.crawl_timeout_seconds == 1800
    states = workflow.main_definition(settings)["States"]
    assert states["Wait for crawl"]["Seconds"] == 7


def test_job_arguments_are_the_ones_the_jobs_read() -> None:
    from jobs import flight_etl, validation

    states = definition("main")["States"]
    supplied_by_glue = {"JOB_NAME", "JOB_RUN_ID"}

    # What the job was created with, then what the state machine passes for the run.
    defaults = set(workflow.job_arguments(load_settings("local")))

    def arguments(name: str) -> set[str]:
        passed = {key.removesuffix(".$") for key in states[name]["Parameters"]["Arguments"]}
        return defaults | passed

    assert arguments("Validate upload") == {
        f"--{name}" for name in set(validation.GLUE_ARGUMENTS) - supplied_by_glue
    }
    assert arguments("Load validated files") == {
        f"--{name}" for name in set(flight_etl.GLUE_ARGUMENTS) - supplied_by_glue
    } | {"--job-bookmark-option"}
    load = states["Load validated files"]["Parameters"]["Arguments"]
    assert load["--job-bookmark-option"] == "job-bookmark-enable"


def test_buckets_are_placeholders_and_locations_within_them_come_from_settings() -> None:
    states = definition("main", "prod")["States"]
    validation = states["Validate upload"]["Parameters"]["Arguments"]
    assert validation["--dimension_bucket"] == "${DimensionBucket}"
    assert validation["--reports_bucket"] == "${ReportsBucket}"
    # Pages are linked where on-call opens them (the site's HTTPS address on AWS).
    assert validation["--reports_url"] == "${ReportsUrl}"
    assert "${ReportsUrl}" in states["Publish failure alert"]["Parameters"]["Message.$"]
    load = states["Load validated files"]["Parameters"]["Arguments"]
    assert load["--validated_uri"] == "s3://${RawBucket}/validated/"
    assert load["--dimension_uri"] == "s3://${DimensionBucket}/validated/airport_codes.csv"
    assert load["--staging_uri"] == "s3://${StagingBucket}/staging/"
    # The workgroup and the database too: CDK names them (a workgroup may be deployed elsewhere).
    assert load["--redshift_workgroup"] == "${WorkgroupName}"
    assert load["--redshift_database"] == "${DatabaseName}"


@pytest.mark.parametrize(("machine", "env"), CASES)
def test_no_definition_holds_an_account(machine: str, env: str) -> None:
    """CDK fills the account's resources in at deploy time: the twin's account (in its bucket
    names) never reaches a definition, whatever it is."""
    rendered = workflow.render(definition(machine, env, local={"account": "123456789012"}))
    assert re.search(r"(?<![0-9])[0-9]{12}(?![0-9])", rendered) is None
    assert "account" not in rendered.lower()
    assert rendered == workflow.render(definition(machine, env))


@pytest.mark.parametrize(("machine", "env"), CASES)
def test_every_placeholder_is_documented(machine: str, env: str) -> None:
    found = workflow.placeholders(definition(machine, env))
    assert found <= workflow.PLACEHOLDERS.keys()
    assert "AlertTopicArn" in found
    assert ("MainStateMachineArn" in found) == (machine == "router")


def test_substitute_fills_every_placeholder_and_refuses_a_missing_value() -> None:
    text = workflow.render(definition("main"))
    values = {name: f"arn:aws:test:{name}" for name in workflow.PLACEHOLDERS}
    filled = json.loads(workflow.substitute(text, values))
    assert workflow.placeholders(filled) == set()
    assert filled["States"]["Validate upload"]["Parameters"]["JobName"] == (
        "arn:aws:test:ValidationJobName"
    )
    with pytest.raises(KeyError, match="CrawlerName"):
        workflow.substitute(text, {k: v for k, v in values.items() if k != "CrawlerName"})


def test_router_names_each_run_by_a_hash_of_the_object_version() -> None:
    states = definition("router")["States"]
    read = states["Read upload"]["Parameters"]
    assert read == {
        "bucket.$": "$.detail.bucket.name",
        "key.$": "$.detail.object.key",
        "version_id.$": "$.detail.object['version-id']",
    }
    start = states["Start run"]
    assert start["Resource"] == "arn:aws:states:::states:startExecution"
    assert start["Parameters"]["Name.$"] == (
        "States.Hash(States.Format('{}/{}/{}', $.bucket, $.key, $.version_id), 'SHA-256')"
    )
    duplicate, everything = start["Catch"]
    assert duplicate["ErrorEquals"] == ["StepFunctions.ExecutionAlreadyExistsException"]
    assert states[duplicate["Next"]]["Type"] == "Succeed"
    assert everything["ErrorEquals"] == ["States.ALL"]


@pytest.mark.parametrize(("machine", "env"), CASES)
def test_rendered_definition_matches_reviewed_snapshot(machine: str, env: str) -> None:
    rendered = workflow.render(definition(machine, env)) + "\n"
    snapshot = SNAPSHOTS / f"workflow-{machine}-{env}.json"
    if os.environ.get(UPDATE_SNAPSHOTS) == "1":
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"no snapshot {snapshot}: run with {UPDATE_SNAPSHOTS}=1"
    assert rendered == snapshot.read_text(), (
        f"The {machine} state machine for {env} differs from {snapshot}. If the change is "
        f"intended, run `{UPDATE_SNAPSHOTS}=1 uv run pytest tests/test_workflow.py`, then "
        "review the snapshot's diff and commit it with the change."
    )


def test_flightpipe_definition_prints_the_snapshot_as_valid_json() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "pipeline", "definition", "--env", "prod", "--machine", "router"],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLIGHTPIPE_")},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    assert printed.stdout == (SNAPSHOTS / "workflow-router-prod.json").read_text()
    assert json.loads(printed.stdout)["StartAt"]
