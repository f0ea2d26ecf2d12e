"""The smoke test, the health check and the word to operations (``pipeline.smoke``), on the
twin, through the ``flightpipe`` command; and the smoke role's policy (``cdk/smoke.py``)
held to every call they make."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from typer.testing import CliRunner

from pipeline import cli
from pipeline.core.warehouse import day_rows_sql
from pipeline.deployment import Names
from pipeline.local.aws import read_alerts
from pipeline.local.twin import LocalTwin
from pipeline.settings import REPO_ROOT, Settings, load_settings
from pipeline.smoke import (
    NEWEST_RUNS,
    SMOKE_DATE,
    SMOKE_FLIGHTS,
    PublishedReports,
    RunStillGoingError,
    Target,
    health,
    remove_traces,
)
from quality.reports import published
from tests.conftest import settings_env
from tests.test_cdk import synthesize
from tests.test_cli_end_to_end import flightpipe
from tests.test_quality_reports import GOOD, check

REAL_DAY = dt.date(2024, 3, 1)


def cli_target(settings: Settings) -> Target:
    """The target the command makes of the twin, with these settings."""
    cli._state.settings = settings
    return cli._target()


def run_cli(settings: Settings, *args: str) -> Any:
    """The command in this process (so its AWS calls can be recorded), with these settings."""
    env = settings_env(settings, spark_master=settings.spark.master)
    # The test's timing too: the command's twin is then the test's, resources and all.
    env["FLIGHTPIPE_TIMING__POLL_INTERVAL_SECONDS"] = str(settings.timing.poll_interval_seconds)
    return CliRunner().invoke(cli.app, list(args), env=env)


@pytest.fixture
def in_use(settings: Settings, tmp_path: Path) -> Settings:
    """A twin with a dimension in use and one real day loaded, through `flightpipe ingest`."""
    sample = tmp_path / "sample"
    made = flightpipe(
        settings,
        "sample",
        "--days=1",
        "--flights-per-day=40",
        f"--start={REAL_DAY}",
        f"--out={sample}",
    )
    assert made.returncode == 0, made.stderr
    ingested = flightpipe(settings, "ingest", str(sample))
    assert ingested.returncode == 0, ingested.stderr
    return settings


class Calls:
    """Every AWS call the twin's clients make from now on, by botocore's own events: the
    service's signing name, the operation and its parameters."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, client: Any) -> Any:
        def seen(params: dict[str, Any], model: Any, **_: Any) -> None:
            signing = model.service_model.signing_name
            self.made.append((signing, model.name, dict(params)))

        client.meta.events.register("provide-client-params", seen)
        return client


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorded = Calls()
    original = LocalTwin.client

    def recording(twin: LocalTwin, service: str) -> Any:
        return recorded.record(original(twin, service))

    monkeypatch.setattr(LocalTwin, "client", recording)
    return recorded


def smoke_objects(twin: LocalTwin) -> list[str]:
    """Every object version and delete marker of the reserved day in the raw bucket."""
    found = []
    pages = twin.s3.get_paginator("list_object_versions").paginate(Bucket=twin.settings.raw_bucket)
    for page in pages:
        for item in (*page.get("Versions", []), *page.get("DeleteMarkers", [])):
            if SMOKE_DATE.isoformat() in item["Key"]:
                found.append(item["Key"])
    return found


def site_files(twin: LocalTwin) -> list[str]:
    """The report's files that name the reserved day, and the index's mentions of it."""
    root = twin.reports.root
    named = [p.relative_to(root).as_posix() for p in root.rglob(f"*{SMOKE_DATE}*")]
    mentions = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if "index" in p.name or "months" in p.parts
        if str(SMOKE_DATE) in p.read_text()
    ]
    return named + mentions


def assert_passed_and_gone(twin: LocalTwin, result: Any) -> None:
    """The smoke test passed, then left none of its objects, report files or rows."""
    assert result.exit_code == 0, result.output
    assert f"{SMOKE_FLIGHTS} rows of {SMOKE_DATE} queryable" in result.output
    assert smoke_objects(twin) == []
    assert site_files(twin) == []
    assert twin.warehouse.query(day_rows_sql(SMOKE_DATE))[1] == [(0, 0)]


def test_smoke_sends_a_day_through_then_leaves_no_trace_and_the_real_day_alone(
    in_use: Settings, calls: Calls
) -> None:
    twin = LocalTwin(in_use)
    before = twin.loaded()

    result = run_cli(in_use, "smoke")

    assert_passed_and_gone(twin, result)
    assert twin.loaded() == before  # the real day's rows and audit as they were
    # Its run really went through: it is among the main state machine's executions.
    run = next(line for line in result.output.splitlines() if line.startswith("uploaded"))
    name = run.rsplit(" ", 1)[-1]
    assert twin.runs.get(name).status == "SUCCEEDED"
    # It uploaded one file and no dimension.
    puts = [p for service, op, p in calls.made if op == "PutObject"]
    assert [(p["Bucket"], p["Key"]) for p in puts] == [
        (twin.settings.raw_bucket, f"raw/{SMOKE_DATE}.csv")
    ]


def test_a_run_still_going_at_the_timeout_is_left_to_end_and_the_next_test_removes_it(
    in_use: Settings,
) -> None:
    twin = LocalTwin(in_use)

    late = run_cli(in_use, "smoke", "--timeout=1")

    assert late.exit_code == 1
    assert "it is left to end, and nothing was removed while it runs" in late.output
    name = next(line for line in late.output.splitlines() if line.startswith("uploaded"))
    name = name.rsplit(" ", 1)[-1]
    # Its validation, crawl and load take seconds: it still runs, and nothing is removed under it.
    assert twin.runs.get(name).status == "RUNNING"
    with pytest.raises(RunStillGoingError, match=f"an earlier smoke test's run {name}"):
        remove_traces(cli_target(in_use))
    [run] = twin.runs.follow([name], 600, in_use.timing.poll_interval_seconds)
    assert run.status == "SUCCEEDED"  # not stopped: it may carry real files' load
    assert twin.warehouse.query(day_rows_sql(SMOKE_DATE))[1] == [(SMOKE_FLIGHTS, SMOKE_FLIGHTS)]

    result = run_cli(in_use, "smoke")

    # The day left behind was removed first: its audit rows are not counted again.
    assert_passed_and_gone(twin, result)


def test_with_no_dimension_in_use_the_smoke_test_fails_saying_so_and_uploads_nothing(
    settings: Settings, calls: Calls
) -> None:
    result = run_cli(settings, "smoke")

    assert result.exit_code == 1
    assert "no airport dimension is in use in local" in result.output
    assert "it never uploads a dimension itself" in result.output
    assert [op for _, op, _ in calls.made if op == "PutObject"] == []


def test_a_failed_smoke_run_fails_the_test_and_still_removes_everything(
    in_use: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file the gate refuses: the destination and delay columns are missing.
    import pipeline.smoke

    def refused(airports: list[int]) -> bytes:
        return f"Carrier,OriginAirportID\nZZ,{airports[0]}\n".encode()

    monkeypatch.setattr(pipeline.smoke, "smoke_file", refused)
    twin = LocalTwin(in_use)

    result = run_cli(in_use, "smoke")

    assert result.exit_code == 1
    assert "smoke test failed" in result.output
    assert "ended FAILED" in result.output
    assert smoke_objects(twin) == []
    assert site_files(twin) == []


def test_health_reports_each_resource_and_fails_naming_a_missing_one(in_use: Settings) -> None:
    healthy = run_cli(in_use, "health", "--format=json")

    assert healthy.exit_code == 0, healthy.output
    checks = {c["check"]: c for c in json.loads(healthy.output[healthy.output.index("[") :])}
    names = Names.of(in_use)
    assert checks[f"state machine {names.main}"]["result"] == "ok"
    assert checks[f"glue job {names.load_job}"]["result"] == "ok"
    assert "succeeded" in checks["newest 20 runs"]["detail"]

    twin = LocalTwin(in_use)
    twin.client("stepfunctions").delete_state_machine(stateMachineArn=twin.resources.router_arn)
    broken = run_cli(in_use, "health", "--format=json")

    assert broken.exit_code == 1
    failed = [
        c for c in json.loads(broken.output[broken.output.index("[") :]) if c["result"] != "ok"
    ]
    assert [c["check"] for c in failed] == [f"state machine {names.router}"]


def test_health_with_the_main_state_machine_gone_says_so_and_reads_no_runs(
    in_use: Settings,
) -> None:
    target = cli_target(in_use)
    gone = replace(target, main_arn=target.main_arn + "-gone")

    checks = {c.what: c for c in health(gone)}

    names = Names.of(in_use)
    assert not checks[f"state machine {names.main}-gone"].healthy
    assert checks[f"newest {NEWEST_RUNS} runs"].detail == "not readable"
    assert checks[f"state machine {names.router}"].healthy


def test_production_runs_no_smoke_test_its_role_only_reads_and_cd_checks_its_health() -> None:
    prod = load_settings("prod")
    refused = CliRunner().invoke(cli.app, ["--env", "prod", "smoke"])

    assert refused.exit_code == 1
    assert "prod runs no smoke test (aws.smoke_test is false there)" in refused.output
    template = json.loads((REPO_ROOT / "tests" / "snapshots" / "cdk-prod.json").read_text())
    smoke_role = Names.of(prod).smoke_role
    role = next(
        logical
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"].get("RoleName") == smoke_role
    )
    actions = {
        action
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert actions == {
        "s3:ListBucket",
        "states:DescribeStateMachine",
        "states:ListExecutions",
        "glue:GetJob",
        "glue:GetCrawler",
    }
    [schema] = [
        r for r in template["Resources"].values() if r["Type"] == "Custom::FlightpipeMigrations"
    ]
    assert "smoke" not in json.dumps(schema["Properties"]["Grants"])
    # CD smoke-tests exactly the environments that run smoke tests, and checks the others.
    deploy = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    checks = {
        job["with"]["environment"]: job["with"]["check"]
        for job in deploy["jobs"].values()
        if "with" in job
    }
    assert checks == {
        env: "smoke" if load_settings(env).aws.smoke_test else "health"
        for env in ("dev", "staging", "prod")
    }


def test_a_failed_deployment_is_told_to_operations_with_the_run(settings: Settings) -> None:
    url = "https://github.com/flightpipe/flightpipe/actions/runs/42"

    result = run_cli(settings, "deployment-failed", f"--run-url={url}")

    assert result.exit_code == 0, result.output
    twin = LocalTwin(settings)
    told = read_alerts(settings.local.state_dir / "alerts", twin.resources.operations_topic_arn)
    assert [m["subject"] for m in told] == ["flightpipe local: deployment failed"]
    assert url in told[0]["message"]


# The smoke role allows what the commands call, and nothing they do not.


def _pseudo(twin: LocalTwin) -> dict[str, str]:
    """CloudFormation's pseudo parameters, as the twin's endpoint has them."""
    _, partition, _, region, account, *_ = twin.resources.main_arn.split(":")
    return {"AWS::AccountId": account, "AWS::Partition": partition, "AWS::Region": region}


def _resolve(value: Any, template: dict[str, Any], pseudo: dict[str, str]) -> Any:
    """A policy value with CloudFormation's functions worked out for the twin: ``Ref``,
    ``Fn::GetAtt`` of a bucket's or a state machine's ARN, ``Fn::Join``, ``Fn::Sub``. The
    workgroup's ARN, which holds an id, stands as ``workgroup``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_resolve(v, template, pseudo) for v in value]
    (function, argument), *_ = value.items()
    if function == "Fn::Join":
        separator, parts = argument
        return separator.join(_resolve(p, template, pseudo) for p in parts)
    if function == "Fn::Sub":
        for name, resolved in pseudo.items():
            argument = argument.replace(f"${{{name}}}", resolved)
        return argument
    if function == "Ref" and argument in pseudo:
        return pseudo[argument]
    return _physical(argument if function == "Ref" else argument[0], function, template, pseudo)


def _physical(logical: str, function: str, template: dict[str, Any], pseudo: dict[str, str]) -> str:
    """A resource's name (``Ref``) or ARN (``Fn::GetAtt``): a state machine's ARN either way."""
    resource = template["Resources"][logical]
    properties = resource["Properties"]
    if resource["Type"] == "AWS::StepFunctions::StateMachine":
        region, account = pseudo["AWS::Region"], pseudo["AWS::AccountId"]
        name = _resolve(properties["StateMachineName"], template, pseudo)
        return f"arn:aws:states:{region}:{account}:stateMachine:{name}"
    if resource["Type"] == "AWS::RedshiftServerless::Workgroup":
        return "workgroup"
    # The twin names its buckets after the settings' account, not its endpoint's.
    named = {**pseudo, "AWS::AccountId": pseudo["bucket account"]}
    name = _resolve(properties["BucketName"], template, named)
    return str(name) if function == "Ref" else f"arn:aws:s3:::{name}"


def _requested(
    service: str, operation: str, params: dict[str, Any], twin: LocalTwin
) -> tuple[str, str]:
    """The IAM action and resource of one recorded call, as the service authorizes it
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
    and the pages of Step Functions, Glue and the Redshift Data API beside it)."""
    pseudo = _pseudo(twin)
    region, account = pseudo["AWS::Region"], pseudo["AWS::AccountId"]
    if service == "s3":
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        on_bucket = {
            "ListObjectVersions": "s3:ListBucketVersions",
            "ListObjectsV2": "s3:ListBucket",
            "HeadBucket": "s3:ListBucket",
        }
        if operation in on_bucket:
            return on_bucket[operation], bucket
        versioned = "Version" if params.get("VersionId") else ""
        action = {"HeadObject": "GetObject"}.get(operation, operation)
        return f"s3:{action}{versioned}", f"{bucket}/{params['Key']}"
    if service == "states":
        arn = params.get("executionArn") or params["stateMachineArn"]
        return f"states:{operation}", arn
    if service == "glue":
        kind, name = (
            ("job", params["JobName"]) if operation == "GetJob" else ("crawler", params["Name"])
        )
        return f"glue:{operation}", f"arn:aws:glue:{region}:{account}:{kind}/{name}"
    if service == "redshift-data":
        on_workgroup = operation in ("ExecuteStatement", "BatchExecuteStatement")
        return f"redshift-data:{operation}", "workgroup" if on_workgroup else "*"
    raise AssertionError(f"a call the smoke role was not made for: {service} {operation}")


def _allowed(policy: list[dict[str, Any]], action: str, resource: str) -> bool:
    def listed(field: Any) -> list[str]:
        return field if isinstance(field, list) else [field]

    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, a) for a in listed(statement["Action"]))
        and any(fnmatch.fnmatchcase(resource, r) for r in listed(statement["Resource"]))
        for statement in policy
    )


def test_the_smoke_role_allows_every_call_of_the_smoke_test_and_the_health_check(
    in_use: Settings, calls: Calls, artifact: Any, tmp_path: Path
) -> None:
    twin = LocalTwin(in_use)
    pseudo = {**_pseudo(twin), "bucket account": twin.settings.local.account}
    templates = synthesize([twin.settings], artifact.out, tmp_path / "cdk.out")
    template = templates["local"]
    role = next(
        logical
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"].get("RoleName") == Names.of(twin.settings).smoke_role
    )
    policy = [
        {**s, "Resource": _resolve(s["Resource"], template, pseudo)}
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]

    # Only the deploy role may assume it, and the deploy role may.
    names = Names.of(twin.settings)
    [trust] = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    deploy_role = f"arn:aws:iam::{pseudo['AWS::AccountId']}:role/{names.deploy_role}"
    assert _resolve(trust["Principal"]["AWS"], template, pseudo).endswith(":root")
    assert trust["Action"] == "sts:AssumeRole"
    [(test, condition)] = trust["Condition"].items()
    assert test == "ArnEquals"
    assert {k: _resolve(v, template, pseudo) for k, v in condition.items()} == {
        "aws:PrincipalArn": deploy_role
    }
    smoke_role = f"arn:aws:iam::{pseudo['AWS::AccountId']}:role/{names.smoke_role}"
    delivery = templates["local-delivery"]
    deploy_policy = [
        {**s, "Resource": _resolve(s["Resource"], delivery, pseudo)}
        for r in delivery["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert _allowed(deploy_policy, "sts:AssumeRole", smoke_role)

    # On AWS the report lives in the reports bucket: its removal runs on the twin's S3 here.
    reports = twin.settings.bucket("reports")
    twin.s3.create_bucket(Bucket=reports)
    prefix = twin.settings.storage.reports_prefix
    uri = f"s3://{twin.settings.raw_bucket}/raw/{SMOKE_DATE}.csv"
    with published(twin.s3, reports, prefix, tmp_path / "validation") as site:
        site.record(uri, "v1", check(f"{SMOKE_DATE}.csv", GOOD))

    assert run_cli(in_use, "smoke").exit_code == 0
    assert run_cli(in_use, "health").exit_code == 0
    assert len(PublishedReports(twin.client("s3"), reports, prefix).remove(uri, ["v1"])) == 3

    requested = {_requested(*call, twin=twin) for call in calls.made}
    refused = sorted(r for r in requested if not _allowed(policy, *r))
    assert refused == []
    # It would see a call it may not make: not the load's, nor another key's.
    assert not _allowed(
        policy, "s3:PutObject", f"arn:aws:s3:::{twin.settings.raw_bucket}/raw/2024-03-01.csv"
    )
    assert not _allowed(
        policy, "s3:PutObject", f"arn:aws:s3:::{twin.settings.dimension_bucket}/airport_codes.csv"
    )
    assert not _allowed(policy, "states:StartExecution", twin.resources.main_arn)


def test_on_aws_the_target_names_what_the_cdk_app_deploys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names the smoke test reaches an environment by are the reviewed template's."""
    template = json.loads((REPO_ROOT / "tests" / "snapshots" / "cdk-dev.json").read_text())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = load_settings("dev")
    with mock_aws():
        target = Target.on_aws(settings, boto3.Session(region_name=settings.aws.region))
    account = target.main_arn.split(":")[4]
    pseudo = {
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::Region": settings.aws.region,
        "bucket account": account,
    }
    deployed = {
        r["Properties"]["BucketName"]["Fn::Join"][1][0].split("-")[1]: _physical(
            logical, "Ref", template, pseudo
        )
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket"
    }
    assert dict(target.buckets) == {p: deployed[p] for p in target.buckets}
    machines = {
        _physical(logical, "Ref", template, pseudo)
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }
    assert {target.main_arn, target.router_arn} == machines
    topics = {
        f"arn:aws:sns:{settings.aws.region}:{account}:{r['Properties']['TopicName']}"
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SNS::Topic"
    }
    assert target.operations_topic_arn in topics
    assert isinstance(target.reports, PublishedReports)
    assert (target.reports.bucket, target.reports.prefix) == (deployed["reports"], "quality/")
