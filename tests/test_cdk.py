"""The CDK app: every environment synthesized once for the session, checked by cdk-nag (in the
app), cfn-lint and asl-validator, asserted on (``aws_cdk.assertions``) and kept as a reviewed
snapshot. Nothing here deploys: synthesis needs no AWS account.

Slow (marked ``slow``): the session builds the Glue artifact the stacks deploy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipeline import packaging, workflow
from pipeline.deployment import Names
from pipeline.settings import REPO_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from aws_cdk import Stack

pytestmark = pytest.mark.slow

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ENVIRONMENTS = ("dev", "staging", "prod")
STACKS = (*ENVIRONMENTS, *(f"{env}-delivery" for env in ENVIRONMENTS))
"""Every stack of the app, as ``cdk.app.build`` names them: pipeline, then delivery."""
SNAPSHOTS = Path(__file__).parent / "snapshots"
_HASH = re.compile(r"[0-9a-f]{64}")


def synthesize(
    environments: list[Settings],
    artifact: Path,
    outdir: Path,
    amend: Callable[[dict[str, Stack]], None] | None = None,
) -> dict[str, Any]:
    """The templates of ``environments``' stacks as ``cdk synth`` writes them (into
    ``outdir``), by the names ``cdk.app.build`` gives them (an environment's pipeline stack by
    the environment's name), the stacks first changed by ``amend`` if given.

    No acknowledgment of cdk-nag's may sit on a stack (it would cover every resource in it):
    each is on the node it concerns."""
    from aws_cdk import App, Validations

    from cdk.app import CONTEXT, build

    app = App(context=CONTEXT, outdir=str(outdir))
    stacks = build(app, environments, artifact)
    if amend:
        amend(stacks)
    assembly = app.synth()
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    for stack in stacks.values():
        on_stack = [entry.data for entry in stack.node.metadata if entry.type == key]
        assert not on_stack, f"acknowledged on the stack {stack.stack_name}: {on_stack}"
    return {
        name: assembly.get_stack_by_name(stack.stack_name).template
        for name, stack in stacks.items()
    }


@pytest.fixture(scope="session")
def templates(
    artifact: packaging.Artifact, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("cdk.out")
    return synthesize([load_settings(env) for env in ENVIRONMENTS], artifact.out, out)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def bucket_name(template: dict[str, Any], ref: dict[str, str]) -> str:
    """The name of the bucket ``ref`` refers to, its account left as CloudFormation's."""
    return json.dumps(template["Resources"][ref["Ref"]]["Properties"]["BucketName"])


def properties(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in resources(template, kind).values()]


@pytest.mark.parametrize("env", STACKS)
def test_every_template_passes_cfn_lint_with_no_error(
    templates: dict[str, Any], env: str, tmp_path: Path
) -> None:
    from cdk.review import cfn_lint

    path = tmp_path / f"{env}.json"
    path.write_text(json.dumps(templates[env]))
    errors = [finding for finding in cfn_lint(path) if finding.error]
    assert not errors, "\n".join(map(str, errors))


def _filled(definition: str) -> str:
    """A definition with every ``${Name}`` filled as CloudFormation fills it: ARNs for the
    ARN placeholders, names for the others."""
    return re.sub(
        r"\$\{([A-Za-z0-9]+)\}",
        lambda m: (
            f"arn:aws:sns:us-east-1:123456789012:{m.group(1)}"
            if m.group(1).endswith("Arn")
            else m.group(1).lower()
        ),
        definition,
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_state_machine_validates_with_asl_validator_after_substitution(
    templates: dict[str, Any], env: str, tmp_path: Path
) -> None:
    machines = properties(templates[env], "AWS::StepFunctions::StateMachine")
    assert len(machines) == 2
    for index, machine in enumerate(machines):
        definition = machine["DefinitionString"]
        assert isinstance(definition, str), "a definition holds no intrinsic: only placeholders"
        assert "AWS::AccountId" not in definition
        assert not re.search(r"\d{12}", definition)
        path = tmp_path / f"machine{index}.json"
        path.write_text(_filled(definition))
        checked = subprocess.run(
            [str(REPO_ROOT / "node_modules/.bin/asl-validator"), "--json-path", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_finding_nobody_acknowledged_fails_synthesis(
    artifact: packaging.Artifact, tmp_path: Path
) -> None:
    """cdk-nag runs in the app: a bucket that accepts plain HTTP makes synthesis fail."""
    from aws_cdk import App
    from aws_cdk import aws_s3 as s3

    from cdk.app import CONTEXT, build

    app = App(context=CONTEXT, outdir=str(tmp_path))
    stack = build(app, [load_settings("dev")], artifact.out)["dev"]
    s3.Bucket(stack, "Careless")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    violations = [v for p in report["pluginReports"] for v in p["violations"]]
    careless = {
        v["ruleName"]
        for v in violations
        if any("Careless" in c["constructPath"] for c in v["violatingConstructs"])
    }
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= careless
    assert all(
        any("Careless" in c["constructPath"] for c in v["violatingConstructs"])
        for v in violations
        if v["severity"] == "error"
    ), "only the careless bucket is unacknowledged"


@pytest.mark.parametrize("env", STACKS)
def test_each_acknowledgment_names_its_finding_and_says_why(
    templates: dict[str, Any], env: str
) -> None:
    """Every acknowledgment is written into its resource's metadata (none on a stack: see
    ``synthesize``): each wildcard finding by itself, each with a reason in words."""
    from cdk.nag import explains
    from cdk.review import acknowledgments

    template = templates[env]
    acknowledged = list(acknowledgments(template))
    assert acknowledged
    for ack in acknowledged:
        assert explains(ack.reason), ack
        if ack.rule == "AwsSolutions-IAM5":
            assert ack.finding, f"{ack.resource}: every IAM5 wildcard is acknowledged by itself"
    assert "cdk_nag" not in template.get("Metadata", {}), "an acknowledgment on the stack"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_jobs_run_the_artifact_under_its_own_names(templates: dict[str, Any], env: str) -> None:
    from aws_cdk.assertions import Match, Template

    settings = load_settings(env)
    names = Names.of(settings)
    template = Template.from_json(templates[env])
    template.resource_count_is("AWS::Glue::Job", 2)
    template.has_resource_properties(
        "AWS::Glue::Job",
        {
            "Name": names.load_job,
            "GlueVersion": "5.1",
            "Command": Match.object_like({"Name": "glueetl", "PythonVersion": "3"}),
            "DefaultArguments": Match.object_like(
                {
                    "--job-bookmark-option": "job-bookmark-enable",
                    "--python-modules-installer-option": "--no-index",
                }
            ),
            "ExecutionProperty": {"MaxConcurrentRuns": 1},
            "Connections": {"Connections": [names.connection]},
            "SecurityConfiguration": names.security_configuration,
        },
    )
    jobs = {p["Name"]: p for p in properties(templates[env], "AWS::Glue::Job")}
    assert set(jobs) == {names.validation_job, names.load_job}
    artifacts = f"flightpipe-artifacts-{env}-"
    for name, script in (
        (names.validation_job, workflow.VALIDATION_SCRIPT),
        (names.load_job, workflow.LOAD_SCRIPT),
    ):
        job = jobs[name]
        location = job["Command"]["ScriptLocation"]["Fn::Join"][1]
        assert artifacts in bucket_name(templates[env], location[1])
        assert location[::2] == ["s3://", f"/glue/{script}"]
        arguments = job["DefaultArguments"]
        modules = arguments["--additional-python-modules"]["Fn::Join"][1]
        assert artifacts in bucket_name(templates[env], modules[1])
        assert modules[::2] == ["s3://", f"/glue/{packaging.ZIP_NAME}"]
        assert arguments["--python-modules-installer-option"] == "--no-index"
        assert arguments["--enable-continuous-cloudwatch-log"] == "true"
        assert arguments["--enable-metrics"] == "true"
        assert job["GlueVersion"] == "5.1"
        assert json.loads(arguments["--settings"])["env"] == env
    load = jobs[names.load_job]
    assert load["DefaultArguments"]["--job-bookmark-option"] == "job-bookmark-enable"
    assert load["ExecutionProperty"]["MaxConcurrentRuns"] == 1
    assert jobs[names.validation_job]["ExecutionProperty"]["MaxConcurrentRuns"] == (
        settings.workflow.validation_max_concurrent_runs
    )
    assert load["Timeout"] * 60 >= settings.workflow.job_timeout_seconds
    # A start beyond the maximum is refused, never queued: the runs wait for results instead.
    assert {job["JobRunQueuingEnabled"] for job in jobs.values()} == {False}
    assert load["NumberOfWorkers"] == settings.aws.load_job.workers
    assert load["ExecutionClass"] == ("FLEX" if settings.aws.load_job.flex else "STANDARD")
    # The artifact's files keep their names: a deployment copies them under glue/.
    (deployment,) = [
        p
        for p in properties(templates[env], "Custom::CDKBucketDeployment")
        if p["DestinationBucketKeyPrefix"] == "glue/"
    ]
    assert deployment["DestinationBucketKeyPrefix"] == "glue/"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_bucket_is_private_encrypted_and_tls_only(
    templates: dict[str, Any], env: str
) -> None:
    from aws_cdk.assertions import Match, Template

    Template.from_json(templates[env]).all_resources_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": Match.object_like(
                {"ServerSideEncryptionConfiguration": Match.any_value()}
            ),
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        },
    )
    template = templates[env]
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 6
    policies = {
        json.dumps(p["Bucket"]): json.dumps(p["PolicyDocument"])
        for p in properties(template, "AWS::S3::BucketPolicy")
    }
    retained = load_settings(env).aws.retain_data
    for logical, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert "aws:SecureTransport" in policies[json.dumps({"Ref": logical})]
        assert props["LifecycleConfiguration"]["Rules"]
        name = json.dumps(props["BucketName"])
        if f"flightpipe-raw-{env}-" in name or f"flightpipe-dim-{env}-" in name:
            assert props["VersioningConfiguration"] == {"Status": "Enabled"}
            assert props["NotificationConfiguration"] == {
                "EventBridgeConfiguration": {"EventBridgeEnabled": True}
            }
            assert any(
                "NoncurrentVersionExpiration" in r for r in props["LifecycleConfiguration"]["Rules"]
            )
            assert bucket["DeletionPolicy"] == ("Retain" if retained else "Delete")
        if f"flightpipe-staging-{env}-" in name:
            (expiring,) = [
                r for r in props["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r
            ]
            assert expiring["Prefix"] == "staging/"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_uploads_reach_the_router_with_retries_and_a_dead_letter_queue(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    settings = load_settings(env)
    names = Names.of(settings)
    rules = {p["Name"]: p for p in properties(template, "AWS::Events::Rule")}
    assert set(rules) == {names.upload_rule, names.dimension_rule}
    upload = rules[names.upload_rule]["EventPattern"]
    assert upload["detail"]["object"]["key"] == [{"prefix": "raw/"}]
    assert rules[names.dimension_rule]["EventPattern"]["detail"]["object"]["key"] == [
        "airport_codes.csv"
    ]
    machines = resources(template, "AWS::StepFunctions::StateMachine")
    router = next(
        k for k, r in machines.items() if r["Properties"]["StateMachineType"] == "EXPRESS"
    )
    for rule in rules.values():
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Ref": router}
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400
        assert "DeadLetterConfig" in target
    for machine in machines.values():
        props = machine["Properties"]
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert set(props["DefinitionSubstitutions"]) >= workflow.placeholders(
            workflow.main_definition(settings)
        )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_failed_runs_and_dead_letters_alarm_the_operations_topic_not_on_call(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    topics = {
        p["TopicName"]: k
        for k, p in (
            (k, r["Properties"]) for k, r in resources(template, "AWS::SNS::Topic").items()
        )
    }
    names = Names.of(load_settings(env))
    assert set(topics) == {names.topic, names.operations_topic}
    for props in properties(template, "AWS::SNS::Topic"):
        assert "KmsMasterKeyId" in props
    alarms = properties(template, "AWS::CloudWatch::Alarm")
    # Failed runs, dead-lettered events, a validated version that waited too long.
    assert len(alarms) == 3
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topics[names.operations_topic]}]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_redshift_serverless_spans_three_zones_with_a_generated_admin_secret(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    settings = load_settings(env)
    (workgroup,) = properties(template, "AWS::RedshiftServerless::Workgroup")
    assert len(workgroup["SubnetIds"]) == 3
    assert workgroup["PubliclyAccessible"] is False
    assert workgroup["BaseCapacity"] == settings.aws.redshift_base_capacity
    (namespace,) = properties(template, "AWS::RedshiftServerless::Namespace")
    assert "resolve:secretsmanager" in json.dumps(namespace["AdminUserPassword"])
    (kept,) = resources(template, "AWS::RedshiftServerless::Namespace").values()
    assert kept["DeletionPolicy"] == ("Retain" if settings.aws.retain_data else "Delete")
    subnets = properties(template, "AWS::EC2::Subnet")
    assert {s["AvailabilityZone"] for s in subnets} == set(settings.aws.availability_zones)
    endpoints = properties(template, "AWS::EC2::VPCEndpoint")
    interface = [e for e in endpoints if e.get("VpcEndpointType") == "Interface"]
    nats = resources(template, "AWS::EC2::NatGateway")
    if settings.aws.egress == "nat":
        assert len(nats) == 1
        assert not interface
    else:
        assert not nats
        assert len(interface) == 8
    assert any(e.get("VpcEndpointType") == "Gateway" for e in endpoints)


def _normalized(template: dict[str, Any]) -> str:
    """The template with the asset hashes (which change with any Glue-side code) masked."""
    return _HASH.sub("<hash>", json.dumps(template, indent=1, sort_keys=True)) + "\n"


@pytest.mark.parametrize("env", STACKS)
def test_each_template_matches_its_reviewed_snapshot(templates: dict[str, Any], env: str) -> None:
    path = SNAPSHOTS / f"cdk-{env}.json"
    rendered = _normalized(templates[env])
    if os.environ.get("FLIGHTPIPE_UPDATE_SNAPSHOTS"):
        path.write_text(rendered)
    assert path.read_text() == rendered, (
        f"the {env} template changed: review it, then FLIGHTPIPE_UPDATE_SNAPSHOTS=1 pytest "
        "tests/test_cdk.py -k snapshot"
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_migrations_run_at_deploy_time_as_the_callers_database_users(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    (schema,) = resources(template, "Custom::FlightpipeMigrations").values()
    props = schema["Properties"]
    workgroup = next(iter(resources(template, "AWS::RedshiftServerless::Workgroup")))
    assert workgroup in schema["DependsOn"]
    assert props["WorkgroupName"] == load_settings(env).warehouse.workgroup
    (first, *_) = json.loads(props["Migrations"])
    assert first["version"] == 1
    assert any("SORTKEY (flight_date)" in sql for sql in first["statements"])
    grants = json.dumps(props["Grants"])
    roles = resources(template, "AWS::IAM::Role")
    load = next(k for k in roles if k.startswith("JobsLoadRole"))
    machine = next(k for k in roles if k.startswith("OrchestrationMainRole"))
    for role in (load, machine):
        assert json.dumps({"Ref": role}) in grants, f"no grant to {role}'s database user"
    crawler = next(
        iter(
            p["Name"]
            for p in properties(template, "AWS::Glue::Crawler")
            if "JdbcTargets" in p["Targets"]
        )
    )
    assert props["CrawlerName"] == crawler


def _viewer(code: str, ip: str, tmp_path: Path) -> Any:
    """What the site's viewer-request function answers ``ip``, run by Node as CloudFront runs
    it (a ``handler(event)`` on the viewer's address)."""
    script = tmp_path / "function.js"
    event = {"viewer": {"ip": ip}, "request": {"uri": "/index.html"}}
    script.write_text(f"{code}\nconsole.log(JSON.stringify(handler({json.dumps(event)})));\n")
    ran = subprocess.run(["node", str(script)], capture_output=True, text=True, check=True)
    return json.loads(ran.stdout)


def test_the_report_site_lets_only_the_allow_listed_networks_in(tmp_path: Path) -> None:
    from cdk.reports import allow_list_code

    code = allow_list_code(("203.0.113.0/24", "198.51.100.7/32", "10.0.0.0/8"))
    for inside in ("203.0.113.0", "203.0.113.255", "198.51.100.7", "10.200.3.4"):
        assert _viewer(code, inside, tmp_path) == {"uri": "/index.html"}, inside
    for outside in ("203.0.114.1", "198.51.100.8", "11.0.0.1", "2001:db8::1"):
        assert _viewer(code, outside, tmp_path)["statusCode"] == 403, outside
    assert _viewer(allow_list_code(()), "203.0.113.9", tmp_path)["statusCode"] == 403
    assert _viewer(allow_list_code(("0.0.0.0/0",)), "255.255.255.255", tmp_path) == {
        "uri": "/index.html"
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alerts_link_the_report_site_over_https(templates: dict[str, Any], env: str) -> None:
    template = templates[env]
    (distribution,) = resources(template, "AWS::CloudFront::Distribution")
    config = template["Resources"][distribution]["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["OriginPath"] == "/quality"
    assert "OriginAccessControlId" in origin
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["FunctionAssociations"][0]["EventType"] == "viewer-request"
    main = next(
        p
        for p in properties(template, "AWS::StepFunctions::StateMachine")
        if p["StateMachineType"] == "STANDARD"
    )
    url = main["DefinitionSubstitutions"]["ReportsUrl"]
    assert url == {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution, "DomainName"]}, "/"]]
    }
    (site,) = [
        p
        for p in properties(template, "Custom::CDKBucketDeployment")
        if p["DestinationBucketKeyPrefix"] == "quality/"
    ]
    assert site["Prune"] is False, "the static files would delete the validation runs' pages"


def test_an_existing_workgroup_is_used_by_name_and_nothing_of_a_warehouse_is_deployed(
    artifact: packaging.Artifact, tmp_path: Path
) -> None:
    settings = load_settings(
        "staging",
        warehouse={"workgroup": "shared"},
        aws={"existing_workgroup": True, "availability_zones": ("us-east-1a",)},
    )
    template = synthesize([settings], artifact.out, tmp_path)["staging"]
    for absent in ("AWS::RedshiftServerless::Workgroup", "AWS::EC2::VPC", "AWS::Glue::Connection"):
        assert not resources(template, absent), absent
    crawlers = properties(template, "AWS::Glue::Crawler")
    assert all("S3Targets" in c["Targets"] for c in crawlers)
    assert len(crawlers) == 2
    (schema,) = properties(template, "Custom::FlightpipeMigrations")
    assert schema["WorkgroupName"] == "shared"
    assert schema["SecretArn"] == ""
    assert schema["CrawlerName"] == ""
    main = next(
        p
        for p in properties(template, "AWS::StepFunctions::StateMachine")
        if p["StateMachineType"] == "STANDARD"
    )
    assert main["DefinitionSubstitutions"]["WorkgroupName"] == "shared"


_SERVICE_PREFIXES = {"redshiftdata": "redshift-data"}
_SYNC = {"glue:startJobRun.sync": ("glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns")}
_AUTHORIZED_AS = {"s3:HeadObject": "s3:GetObject"}
"""API calls IAM authorizes under another action's name (HeadObject needs s3:GetObject,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html)."""


def _task_actions(definition: str) -> set[str]:
    """The IAM actions a definition's Task states call (an aws-sdk task, an optimized
    integration, a .sync one with the calls Step Functions makes for it)."""
    found = set()
    for state in json.loads(_filled(definition))["States"].values():
        if state["Type"] != "Task":
            continue
        resource = state["Resource"].removeprefix("arn:aws:states:::").removeprefix("aws-sdk:")
        if resource in _SYNC:
            found |= set(_SYNC[resource])
            continue
        service, action = resource.split(":")
        called = f"{_SERVICE_PREFIXES.get(service, service)}:{action[0].upper()}{action[1:]}"
        found.add(_AUTHORIZED_AS.get(called, called))
    return found


def _role_actions(template: dict[str, Any], role: str) -> set[str]:
    actions: set[str] = set()
    for policy in properties(template, "AWS::IAM::Policy"):
        if {"Ref": role} in policy["Roles"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                listed = statement["Action"]
                actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_state_machine_may_call_what_its_tasks_call(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    for machine in properties(template, "AWS::StepFunctions::StateMachine"):
        role = machine["RoleArn"]["Fn::GetAtt"][0]
        missing = _task_actions(machine["DefinitionString"]) - _role_actions(template, role)
        assert not missing, f"{machine['StateMachineName']} may not call {sorted(missing)}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_operations_see_runs_files_rows_and_durations_and_a_long_wait_alarms(
    templates: dict[str, Any], env: str
) -> None:
    from pipeline.core import metrics

    settings = load_settings(env)
    template = templates[env]
    (dashboard,) = properties(template, "AWS::CloudWatch::Dashboard")
    assert dashboard["DashboardName"] == f"flightpipe-{env}"
    body = json.dumps(dashboard["DashboardBody"])
    for shown in (
        metrics.FILES_VALIDATED,
        metrics.FILES_QUARANTINED,
        metrics.FILES_LOADED,
        metrics.ROWS_LOADED,
        "ExecutionsFailed",
        "ExecutionsStarted",
        "glue.driver.aggregate.elapsedTime",
    ):
        assert shown in body, shown
    (waited,) = [
        a
        for a in properties(template, "AWS::CloudWatch::Alarm")
        if metrics.VALIDATED_TO_LOADED_SECONDS in json.dumps(a.get("Metrics"))
    ]
    (stat,) = [m["MetricStat"] for m in waited["Metrics"]]
    assert stat["Metric"] == {
        "Namespace": metrics.NAMESPACE,
        "MetricName": metrics.VALIDATED_TO_LOADED_SECONDS,
        "Dimensions": [{"Name": metrics.ENVIRONMENT, "Value": env}],
    }
    assert stat["Stat"] == "Maximum"
    assert waited["Threshold"] == settings.aws.alarms.unloaded_minutes * 60
