"""The emulator fixes of ``pipeline.local.emulator``, checked against the moto they patch.

Each fix has one scenario, run twice:

- on moto as installed, in this process (never patched), where it must still show the gap the
  fix closes: once it does not, upstream fixed the gap and the fix is to be deleted;
- in a fresh process that called ``emulator.apply`` (the fixes patch moto's classes for the
  whole process), where it must behave as AWS does.

Also: every fix ``apply`` makes has a scenario, and ``check_version`` refuses any moto but the
one the fixes were written against.
"""

from __future__ import annotations

import ast
import datetime as dt
import gc
import inspect
import json
import subprocess
import sys
import time
import traceback
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import boto3
import moto
import pytest
from moto import mock_aws
from moto.moto_api import state_manager

from pipeline.local import emulator

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"
ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/r"
TIMEOUT_SECONDS: Final = 30.0
PASS_MACHINE: Final = {"StartAt": "Pass", "States": {"Pass": {"Type": "Pass", "End": True}}}

Observation = dict[str, Any]
T = TypeVar("T")


def _until(probe: Callable[[], T | None], what: str) -> T:
    """Poll ``probe`` until it returns something other than None."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still waiting after {TIMEOUT_SECONDS} s")
        time.sleep(0.1)
    return found


def _task_machine(resource: str, parameters: Observation, **task: Any) -> Observation:
    """A state machine of one Task state; its Catch, if any, goes to the state "Caught"."""
    states: Observation = {
        "Task": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True} | task
    }
    if "Catch" in task:
        states["Caught"] = {"Type": "Succeed"}
    return {"StartAt": "Task", "States": states}


class Aws:
    """boto3 clients on moto under ``mock_aws``, and the events delivered to state machines."""

    def __init__(self, delivered: list[Observation]) -> None:
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.glue = boto3.client("glue", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events = boto3.client("events", region_name=REGION)
        self.delivered = delivered

    def state_machine(self, name: str, definition: Observation) -> str:
        return str(
            self.sfn.create_state_machine(
                name=name, definition=json.dumps(definition), roleArn=ROLE
            )["stateMachineArn"]
        )

    def start(self, name: str, definition: Observation, execution_input: Any = None) -> str:
        """Create a state machine and start it; returns the execution's ARN."""
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.state_machine(name, definition),
                name=name,
                input=json.dumps(execution_input or {}),
            )["executionArn"]
        )

    def outcome(self, execution_arn: str) -> Observation:
        """How the execution ended, or why it cannot be described."""

        def ended() -> Observation | None:
            try:
                described = self.sfn.describe_execution(executionArn=execution_arn)
            except Exception as exc:  # in-process, moto's own failure reaches the client
                return {"describe_error": f"{type(exc).__name__}: {exc}"}
            if described["status"] == "RUNNING":
                return None
            return {
                "status": described["status"],
                "error": described.get("error"),
                "cause": described.get("cause"),
                "output": json.loads(described.get("output", "null")),
            }

        return _until(ended, f"execution {execution_arn}")

    def run(self, name: str, definition: Observation, execution_input: Any = None) -> Observation:
        """Create a state machine, run it to its end, and return how it ended."""
        return self.outcome(self.start(name, definition, execution_input))

    def job(self) -> str:
        self.glue.create_job(
            Name="job", Role=ROLE, Command={"Name": "glueetl", "ScriptLocation": "s3://b/x.py"}
        )
        return "job"

    def job_run(self, job_name: str) -> Any:
        """moto's FakeJobRun of the job's latest run, once it has one."""
        from moto.glue.models import glue_backends

        job = glue_backends[ACCOUNT][REGION].jobs[job_name]
        return _until(lambda: job.job_runs[-1] if job.job_runs else None, f"a run of {job_name}")

    def running_crawler(self) -> str:
        self.glue.create_crawler(
            Name="crawler", Role=ROLE, Targets={"S3Targets": [{"Path": "s3://b/p"}]}
        )
        self.glue.start_crawler(Name="crawler")
        return "crawler"


@contextmanager
def emulated_aws(delivered: list[Observation] | None = None) -> Iterator[Aws]:
    """Fresh moto services that execute state machines; job runs end only when told to."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        state_manager.set_transition("glue::job_run", {"progression": "manual", "times": 10**9})
        try:
            yield Aws([] if delivered is None else delivered)
        finally:
            state_manager.unset_transition("glue::job_run")


# The scenarios: each returns what it saw, as JSON-ready data.


def glue_sync(aws: Aws) -> Observation:
    """A glue:startJobRun.sync task whose job run ends SUCCEEDED."""
    job = aws.job()
    # Only the state, as the project's machines keep it: the whole JobRun would keep its
    # datetimes even with the fixes (a .sync result never reaches _normalise_response).
    machine = _task_machine(
        "arn:aws:states:::glue:startJobRun.sync",
        {"JobName": job},
        ResultSelector={"JobRunState.$": "$.JobRunState"},
    )
    execution = aws.start("sync", machine)
    aws.job_run(job).status = "SUCCEEDED"
    return aws.outcome(execution)


def aws_sdk_service_names(aws: Aws) -> Observation:
    """aws-sdk:glue:startCrawler on a running crawler, caught by the error's AWS name."""
    catch = {"ErrorEquals": ["Glue.CrawlerRunningException"], "ResultPath": "$.error"}
    machine = _task_machine(
        "arn:aws:states:::aws-sdk:glue:startCrawler",
        {"Name": aws.running_crawler()},
        Catch=[catch | {"Next": "Caught"}],
    )
    return aws.run("start-crawler", machine)


def missing_object_errors(aws: Aws) -> Observation:
    """aws-sdk:s3:headObject of a key that is not there, caught by the error's AWS name."""
    aws.s3.create_bucket(Bucket="missing-objects")
    catch = {"ErrorEquals": ["S3.NoSuchKeyException"], "ResultPath": "$.error"}
    machine = _task_machine(
        "arn:aws:states:::aws-sdk:s3:headObject",
        {"Bucket": "missing-objects", "Key": "missing.csv"},
        Catch=[catch | {"Next": "Caught"}],
    )
    return aws.run("head-missing", machine)


def job_runs_newest_first(aws: Aws) -> Observation:
    """GetJobRuns after three runs of a job: their order, and the first page of one."""
    aws.glue.create_job(
        Name="three-at-once",
        Role=ROLE,
        Command={"Name": "glueetl", "ScriptLocation": "s3://b/x.py"},
        ExecutionProperty={"MaxConcurrentRuns": 3},
    )
    job = "three-at-once"
    started = [aws.glue.start_job_run(JobName=job)["JobRunId"] for _ in range(3)]
    listed = [run["Id"] for run in aws.glue.get_job_runs(JobName=job)["JobRuns"]]
    first = [run["Id"] for run in aws.glue.get_job_runs(JobName=job, MaxResults=1)["JobRuns"]]
    return {"started": started, "listed": listed, "first_page": first}


def pascal_case_members(aws: Aws) -> Observation:
    """states:startExecution and a Redshift Data API query, spelled as on AWS (PascalCase)."""
    child = aws.state_machine("child", PASS_MACHINE)
    parameters = {"StateMachineArn": child, "Name": "child-run", "Input": {"from": "parent"}}
    parent = aws.run("parent", _task_machine("arn:aws:states:::states:startExecution", parameters))
    children = [
        aws.sfn.describe_execution(executionArn=execution["executionArn"])
        for execution in aws.sfn.list_executions(stateMachineArn=child)["executions"]
    ]
    started = [{"name": run["name"], "input": json.loads(run["input"])} for run in children]
    query = {
        "WorkgroupName": "w",
        "Database": "d",
        "Sql": "SELECT :n",
        "Parameters": [{"Name": "n", "Value": "1"}],
    }
    execute = {
        "StartAt": "Execute",
        "States": {
            "Execute": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:redshiftdata:executeStatement",
                "Parameters": query,
                "ResultSelector": {"Id.$": "$.Id"},
                "Next": "Result",
            },
            "Result": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:redshiftdata:getStatementResult",
                "Parameters": {"Id.$": "$.Id"},
                # moto's canned result: the first record's first field is the number 10.
                "ResultSelector": {"first.$": "$.Records[0][0]"},
                "End": True,
            },
        },
    }
    # S3's GetObject result spelled as AWS hands it over: its body as text.
    aws.s3.create_bucket(Bucket="documents")
    aws.s3.put_object(Bucket="documents", Key="result.json", Body=b'{"outcome": "passed"}')
    read = _task_machine(
        "arn:aws:states:::aws-sdk:s3:getObject",
        {"Bucket": "documents", "Key": "result.json"},
        ResultSelector={"document.$": "States.StringToJson($.Body)"},
    )
    return parent | {
        "children": started,
        "query": aws.run("query", execute),
        "object": aws.run("get-object", read),
    }


def timestamps_in_results(aws: Aws) -> Observation:
    """aws-sdk:glue:getCrawler, its result (with the crawler's times) kept in the state."""
    machine = _task_machine(
        "arn:aws:states:::aws-sdk:glue:getCrawler", {"Name": aws.running_crawler()}
    )
    return aws.run("get-crawler", machine)


def cached_clients(aws: Aws) -> Observation:
    """Two tasks' clients for the same service: the one the interpreter builds each time."""
    from moto.stepfunctions.parser.asl.utils import boto_client

    first, second = (boto_client.boto_client_for(REGION, "glue") for _ in range(2))
    return {"same": first is second, "pool": first.meta.config.max_pool_connections}


def parsed_once(aws: Aws) -> Observation:
    """One state machine run three times (a parameter's path, a ResultPath, a Choice on it),
    counting the definitions parsed and the JSONPath parsers built by each run."""
    from jsonpath_ng import parser
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = {
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Pass",
                "Parameters": {"state.$": "$.run.state"},
                "ResultPath": "$.picked",
                "Next": "Running?",
            },
            "Running?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.picked.state", "StringEquals": "RUNNING", "Next": "Yes"}
                ],
                "Default": "No",
            },
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Fail"},
        },
    }
    built = definitions = 0
    init = parser.JsonPathParser.__init__
    parse = AmazonStateLanguageParser.parse

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal built
        built += 1
        init(self, *args, **kwargs)

    def counted_parse(definition: str) -> Any:
        nonlocal definitions
        definitions += 1
        return parse(definition)

    per_run, parsed, outputs = [], [], []
    arn = aws.state_machine("paths", definition)
    parser.JsonPathParser.__init__ = counted  # type: ignore[method-assign]
    AmazonStateLanguageParser.parse = staticmethod(counted_parse)  # type: ignore[method-assign]
    try:
        for n in range(3):
            before, parsed_before = built, definitions
            execution = aws.sfn.start_execution(
                stateMachineArn=arn,
                name=f"run-{n}",
                input=json.dumps({"run": {"state": "RUNNING"}}),
            )
            outputs.append(aws.outcome(execution["executionArn"]))
            per_run.append(built - before)
            parsed.append(definitions - parsed_before)
    finally:
        parser.JsonPathParser.__init__ = init  # type: ignore[method-assign]
        AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    return {"parsers_built": per_run, "definitions_parsed": parsed, "outputs": outputs}


def listing_without_copies(aws: Aws) -> Observation:
    """ListObjectVersions of a versioned bucket holding two versions of an 8 MB object."""
    size = 8 << 20
    aws.s3.create_bucket(Bucket="listed")
    aws.s3.put_bucket_versioning(Bucket="listed", VersioningConfiguration={"Status": "Enabled"})
    for fill in (b"a", b"b"):
        aws.s3.put_object(Bucket="listed", Key="big", Body=fill * size)
    tracemalloc.start()
    try:
        listed = aws.s3.list_object_versions(Bucket="listed")["Versions"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    gc.collect()  # whatever the listing copied is gone: the stored object must not be
    return {
        "peak_mb": round(peak / (1 << 20), 1),
        "versions": [(v["Key"], v["Size"], v["IsLatest"]) for v in listed],
        "object_mb": size >> 20,
        "readable_after": aws.s3.get_object(Bucket="listed", Key="big")["Body"].read()
        == b"b" * size,
    }


def fail_error_paths(aws: Aws) -> Observation:
    """A Fail state passing on a caught States.TaskFailed, as the project's machines do."""
    fail = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    caught = {"error": {"Error": "States.TaskFailed", "Cause": "the job run failed"}}
    return aws.run("fail", {"StartAt": "Fail", "States": {"Fail": fail}}, caught)


def job_run_outcomes(aws: Aws) -> Observation:
    """GetJobRun of a run that recorded its error, completion and duration (as the twin's do)."""
    job = aws.job()
    run_id = aws.glue.start_job_run(JobName=job)["JobRunId"]
    run = aws.job_run(job)
    run.status = "FAILED"
    run.error_message = "boom"
    run.completed_on = run.started_on + dt.timedelta(seconds=42)
    run.execution_seconds = 42
    got = aws.glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
    return {
        "ErrorMessage": got.get("ErrorMessage"),
        "ExecutionTime": got["ExecutionTime"],
        "CompletedAfter": (got["CompletedOn"] - got["StartedOn"]).total_seconds(),
    }


def events_to_state_machines(aws: Aws) -> Observation:
    """An S3 upload to a bucket sending its events to EventBridge, a rule on it."""
    machine = aws.state_machine("on-upload", PASS_MACHINE)
    queue = aws.sqs.create_queue(QueueName="uploads")["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    aws.s3.create_bucket(Bucket="uploads")
    aws.s3.put_bucket_notification_configuration(
        Bucket="uploads", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
    aws.events.put_rule(Name="uploads", EventPattern=json.dumps(pattern))
    # The queue first: it shows the rule matched, as moto gives up at the state machine.
    targets = [
        {"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]},
        {"Id": "machine", "Arn": machine, "RoleArn": ROLE},
    ]
    aws.events.put_targets(Rule="uploads", Targets=targets)
    aws.s3.put_object(Bucket="uploads", Key="daily.csv", Body=b"x")
    messages = aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    assert messages.get("Messages"), "the S3 event never reached the rule: the scenario is wrong"
    started = [
        json.loads(aws.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
        for execution in aws.sfn.list_executions(stateMachineArn=machine)["executions"]
    ]
    return {"machine": machine, "delivered": list(aws.delivered), "started": started}


def _is_iso_8601(value: Any) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _events_started_the_machine(seen: Observation) -> bool:
    delivered = seen["delivered"]
    return (
        [item["arn"] for item in delivered] == [seen["machine"]]
        and _is_iso_8601(delivered[0]["event"]["time"])
        and delivered[0]["event"]["detail"]["object"]["key"] == "daily.csv"
        and seen["started"] == [delivered[0]["event"]]
    )


@dataclass(frozen=True)
class Fix:
    scenario: Callable[[Aws], Observation]
    gap: Callable[[Observation], bool]
    """True while the scenario, on moto as installed, still shows the gap."""
    fixed: Callable[[Observation], bool]
    """True when the scenario, with the fixes applied, behaves as on AWS."""


FIXES: Final = {
    "glue_sync": Fix(
        glue_sync,
        gap=lambda seen: seen["status"] == "FAILED" and "interrupt_all" in seen["cause"],
        fixed=lambda seen: seen["output"] == {"JobRunState": "SUCCEEDED"},
    ),
    "aws_sdk_service_names": Fix(
        aws_sdk_service_names,
        gap=lambda seen: seen["error"] == "glue.CrawlerRunningException",
        fixed=lambda seen: (
            seen["status"] == "SUCCEEDED"
            and seen["output"]["error"]["Error"] == "Glue.CrawlerRunningException"
        ),
    ),
    "pascal_case_members": Fix(
        pascal_case_members,
        gap=lambda seen: (
            seen["error"] == "States.Runtime"
            and not seen["children"]
            and seen["query"]["error"] == "States.Runtime"
        ),
        fixed=lambda seen: (
            seen["status"] == "SUCCEEDED"
            and seen["output"]["ExecutionArn"].endswith(":child-run")
            and _is_iso_8601(seen["output"]["StartDate"])
            and seen["children"] == [{"name": "child-run", "input": {"from": "parent"}}]
            and seen["query"]["output"] == {"first": {"LongValue": 10}}
            and seen["object"]["output"] == {"document": {"outcome": "passed"}}
        ),
    ),
    "timestamps_in_results": Fix(
        timestamps_in_results,
        gap=lambda seen: "datetime is not JSON serializable" in seen.get("describe_error", ""),
        fixed=lambda seen: (
            seen.get("status") == "SUCCEEDED"
            and _is_iso_8601(seen["output"]["Crawler"]["CreationTime"])
        ),
    ),
    "cached_clients": Fix(
        cached_clients,
        gap=lambda seen: not seen["same"] and seen["pool"] == 10,
        fixed=lambda seen: seen["same"] and seen["pool"] >= 365,
    ),
    "parsed_once": Fix(
        parsed_once,
        # Each run parses its definition and paths again; fixed, only the first run does.
        gap=lambda seen: (
            seen["definitions_parsed"] == [1, 1, 1]
            and seen["parsers_built"][0] > 0
            and seen["parsers_built"][1:] == seen["parsers_built"][:1] * 2
        ),
        fixed=lambda seen: (
            seen["definitions_parsed"][1:] == [0, 0]
            and seen["parsers_built"][0] > 0
            and seen["parsers_built"][1:] == [0, 0]
            and all(
                o["status"] == "SUCCEEDED"
                and o["output"] == {"run": {"state": "RUNNING"}, "picked": {"state": "RUNNING"}}
                for o in seen["outputs"]
            )
        ),
    ),
    "listing_without_copies": Fix(
        listing_without_copies,
        gap=lambda seen: seen["peak_mb"] >= seen["object_mb"],
        # The same listing, without ever holding a version's content in memory.
        fixed=lambda seen: (
            seen["peak_mb"] < 1
            and seen["versions"] == [["big", 8 << 20, True], ["big", 8 << 20, False]]
            and seen["readable_after"]
        ),
    ),
    "fail_error_paths": Fix(
        fail_error_paths,
        gap=lambda seen: (
            seen["error"] == "States.Runtime" and "Custom Error Names" in seen["cause"]
        ),
        fixed=lambda seen: (
            seen["status"] == "FAILED"
            and seen["error"] == "States.TaskFailed"
            and seen["cause"] == "the job run failed"
        ),
    ),
    "job_run_outcomes": Fix(
        job_run_outcomes,
        gap=lambda seen: seen["ErrorMessage"] is None and seen["ExecutionTime"] == 123,
        fixed=lambda seen: (
            seen == {"ErrorMessage": "boom", "ExecutionTime": 42, "CompletedAfter": 42}
        ),
    ),
    "missing_object_errors": Fix(
        missing_object_errors,
        gap=lambda seen: seen["status"] == "FAILED" and seen["error"] != "S3.NoSuchKeyException",
        fixed=lambda seen: (
            seen["status"] == "SUCCEEDED"
            and seen["output"]["error"]["Error"] == "S3.NoSuchKeyException"
        ),
    ),
    "job_runs_newest_first": Fix(
        job_runs_newest_first,
        gap=lambda seen: seen["listed"] == seen["started"],
        fixed=lambda seen: (
            seen["listed"] == seen["started"][::-1] and seen["first_page"] == seen["started"][-1:]
        ),
    ),
    "events_to_state_machines": Fix(
        events_to_state_machines,
        gap=lambda seen: not seen["started"],
        fixed=_events_started_the_machine,
    ),
}


def test_every_fix_has_a_scenario() -> None:
    calls = ast.walk(ast.parse(inspect.getsource(emulator.apply)))
    applied = {c.func.id for c in calls if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    assert applied - {"check_version"} == set(FIXES)


@pytest.mark.parametrize("name", FIXES)
def test_moto_still_has_the_gap(name: str) -> None:
    with emulated_aws() as aws:
        seen = FIXES[name].scenario(aws)
    assert FIXES[name].gap(seen), (
        f"upstream moto fixed this gap, delete the fix `{name}` from "
        f"pipeline/local/emulator.py (the scenario saw {seen})"
    )


@pytest.fixture(scope="module")
def fixed_observations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Observation]:
    """What each scenario saw in a process with the fixes applied."""
    out = tmp_path_factory.mktemp("emulator") / "observations.json"
    # `-m` from the repository root: site-packages has a `tests` package too (smdebug's).
    done = subprocess.run(
        [sys.executable, "-m", __name__, str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    observations: dict[str, Observation] = json.loads(out.read_text(encoding="utf-8"))
    return observations


@pytest.mark.parametrize("name", FIXES)
def test_fix_makes_moto_behave_like_aws(
    name: str, fixed_observations: dict[str, Observation]
) -> None:
    seen = fixed_observations[name]
    assert "scenario_error" not in seen, seen["scenario_error"]
    assert FIXES[name].fixed(seen), f"with the fix `{name}`, the scenario saw {seen}"


@pytest.mark.parametrize("version", ["5.2.6", "5.3.0", "6.0.0"])
def test_check_version_refuses_another_moto(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", version)
    with pytest.raises(emulator.EmulatorVersionError, match=f"moto {version} is installed"):
        emulator.check_version()


def test_check_version_accepts_the_pinned_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.2.5")
    emulator.check_version()


def _observe_with_fixes(out: Path) -> None:
    """Apply the fixes to this process, run every scenario, write what each saw to ``out``."""
    delivered: list[Observation] = []

    def start_execution(state_machine_arn: str, event: str) -> None:
        delivered.append({"arn": state_machine_arn, "event": json.loads(event)})
        # As the twin does: EventBridge names each execution it starts with a fresh id.
        boto3.client("stepfunctions", region_name=REGION).start_execution(
            stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=event
        )

    emulator.apply(start_execution)
    observations: dict[str, Observation] = {}
    for name, fix in FIXES.items():
        delivered.clear()
        with emulated_aws(delivered) as aws:
            try:
                observations[name] = fix.scenario(aws)
            except Exception:
                observations[name] = {"scenario_error": traceback.format_exc()}
    out.write_text(json.dumps(observations), encoding="utf-8")


if __name__ == "__main__":
    _observe_with_fixes(Path(sys.argv[1]))
