"""Delivery: the workflows promote one cloud assembly through dev, staging and prod with the
rights they need and no more, and the delivery stacks' roles trust exactly the tokens those
workflows' jobs get.

The workflows are read as GitHub reads them (``on``, ``needs``, ``environment``,
``permissions``, the calls of ``deploy-environment.yml``); the roles from the delivery stacks
as synthesized (``cdk/delivery.py``, no account needed). A token's subject follows from its
job: a job in an environment gets ``environment:<name>`` as its context, a pull request's job
without one ``pull_request``
(https://docs.github.com/en/actions/reference/security/oidc#example-subject-claims). Each
check is also run on a careless variant, to see it fail.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.deployment import Names
from pipeline.settings import REPO_ROOT, load_settings

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
DEPLOYED = ("dev", "staging", "prod")
CALLED = "./.github/workflows/deploy-environment.yml"
CONFIGURE = "aws-actions/configure-aws-credentials@"
ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
ONE_AT_A_TIME = {"group": "deploy-${{ inputs.environment }}", "cancel-in-progress": False}
"""The deploy job's concurrency: one deployment per environment, never cancelled halfway."""
IN_ORDER = {"group": "deploy-build", "cancel-in-progress": False}
"""The build's concurrency: one at a time, so the environments get the merges in order."""


def read(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key ``on`` as true.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's steps, or for a job that calls ``deploy-environment.yml`` the called job's."""
    if job.get("uses") == CALLED:
        return [
            s for called in read("deploy-environment.yml")["jobs"].values() for s in called["steps"]
        ]
    return list(job.get("steps", []))


def assumes_a_role(job: dict[str, Any]) -> bool:
    return any(str(step.get("uses", "")).startswith(CONFIGURE) for step in steps(job))


def comments(job: dict[str, Any]) -> bool:
    return any("review-comment" in str(step.get("run", "")) for step in steps(job))


def permission_breaches(workflow: dict[str, Any]) -> list[str]:
    """Each job's rights beyond what its steps need: ``id-token: write`` only where a role is
    assumed (and always there: without it no token), ``pull-requests: write`` only where the
    review is commented, nothing else written."""
    breaches = []
    default = workflow.get("permissions", {})
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", default)
        needed = {"contents": "read"}
        if assumes_a_role(job):
            needed["id-token"] = "write"
        if comments(job):
            needed["pull-requests"] = "write"
        if granted != needed:
            breaches.append(f"job {name} has {granted}, needs {needed}")
    return breaches


def chain_breaches(workflow: dict[str, Any], called: dict[str, Any] | None = None) -> list[str]:
    """What deploy.yml (calling ``called``, by default ``deploy-environment.yml``) lacks of
    the promotion: on pushes to main only, one build, then each environment after the one
    before it, each through ``deploy-environment.yml`` in the GitHub environment of its name,
    smoke-tested but prod, which is health-checked; one build at a time, and one deployment
    of an environment at a time, in a group of its own, never cancelled halfway."""
    breaches = []
    if workflow["on"] != {"push": {"branches": ["main"]}}:
        breaches.append(f"deploy.yml runs on {workflow['on']}, not pushes to main")
    jobs = workflow["jobs"]
    before = "build"
    for env in DEPLOYED:
        job = jobs.get(env, {})
        if job.get("needs") != before:
            breaches.append(f"{env} needs {job.get('needs')!r}, not {before!r}")
        if job.get("uses") != CALLED:
            breaches.append(f"{env} does not call {CALLED}")
        check = "health" if env == "prod" else "smoke"
        if job.get("with") != {"environment": env, "check": check}:
            breaches.append(f"{env} passes {job.get('with')}, not environment {env}, {check}")
        before = env
    if set(jobs) != {"build", *DEPLOYED}:
        breaches.append(f"deploy.yml has jobs {sorted(jobs)}")
    if jobs.get("build", {}).get("concurrency") != IN_ORDER:
        breaches.append(
            "builds may run side by side: an older assembly may be deployed after a newer one"
        )
    if "concurrency" in workflow:
        breaches.append(
            "deploy.yml holds every environment in one concurrency group: prod waiting for "
            "its reviewers holds dev and staging"
        )
    called = read("deploy-environment.yml") if called is None else called
    if set(triggers(called)) != {"workflow_call"}:
        breaches.append("deploy-environment.yml runs on more than a call")
    for name, job in called["jobs"].items():
        if job.get("environment") != "${{ inputs.environment }}":
            breaches.append(f"deploy-environment.yml job {name} is in no GitHub environment")
        if job.get("concurrency") != ONE_AT_A_TIME:
            breaches.append(
                f"deploy-environment.yml job {name} has concurrency {job.get('concurrency')}: "
                "deployments of an environment may overlap or be cancelled halfway"
            )
    return breaches


def all_workflows() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        yield path.name, read(path.name)


def test_the_deployment_promotes_dev_then_staging_then_prod() -> None:
    assert chain_breaches(read("deploy.yml")) == []


def test_a_careless_promotion_is_refused() -> None:
    careless = copy.deepcopy(read("deploy.yml"))
    careless["jobs"]["prod"]["needs"] = "build"
    careless["jobs"]["staging"]["with"] = {"environment": "staging", "check": "health"}
    careless["on"] = {"push": {}}
    assert chain_breaches(careless) == [
        "deploy.yml runs on {'push': {}}, not pushes to main",
        "staging passes {'environment': 'staging', 'check': 'health'}, not environment "
        "staging, smoke",
        "prod needs 'build', not 'staging'",
    ]


@pytest.mark.parametrize(
    ("workflow_group", "build_group", "job_group", "breaches"),
    [
        pytest.param(
            {"group": "deploy", "cancel-in-progress": False},
            None,
            None,
            [
                "builds may run side by side: an older assembly may be deployed after a newer one",
                "deploy.yml holds every environment in one concurrency group: prod waiting "
                "for its reviewers holds dev and staging",
                "deploy-environment.yml job deploy has concurrency None: deployments of an "
                "environment may overlap or be cancelled halfway",
            ],
            id="one group for the whole workflow",
        ),
        pytest.param(
            None,
            IN_ORDER,
            {"group": "deploy-${{ inputs.environment }}", "cancel-in-progress": True},
            [
                "deploy-environment.yml job deploy has concurrency {'group': "
                "'deploy-${{ inputs.environment }}', 'cancel-in-progress': True}: deployments "
                "of an environment may overlap or be cancelled halfway",
            ],
            id="cancelling",
        ),
        pytest.param(
            None,
            IN_ORDER,
            {"group": "deploy", "cancel-in-progress": False},
            [
                "deploy-environment.yml job deploy has concurrency {'group': 'deploy', "
                "'cancel-in-progress': False}: deployments of an environment may overlap or "
                "be cancelled halfway",
            ],
            id="one group for every environment's job",
        ),
        pytest.param(
            None,
            None,
            ONE_AT_A_TIME,
            ["builds may run side by side: an older assembly may be deployed after a newer one"],
            id="builds side by side",
        ),
    ],
)
def test_a_deployment_that_may_overlap_be_cancelled_or_hold_other_environments_is_refused(
    workflow_group: dict[str, Any] | None,
    build_group: dict[str, Any] | None,
    job_group: dict[str, Any] | None,
    breaches: list[str],
) -> None:
    careless = copy.deepcopy(read("deploy.yml"))
    called = copy.deepcopy(read("deploy-environment.yml"))
    (job,) = called["jobs"].values()
    for owner, group in (
        (careless, workflow_group),
        (careless["jobs"]["build"], build_group),
        (job, job_group),
    ):
        owner.pop("concurrency", None)
        if group is not None:
            owner["concurrency"] = group
    assert chain_breaches(careless, called) == breaches


def recipe(target: str) -> str:
    """What the Makefile runs for ``target``: the tab-indented lines after its rule."""
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        body.append(line.strip())
    return " ".join(body)


def test_a_failed_diff_still_reaches_the_review() -> None:
    """``make review-diff`` writes all ``cdk diff`` says into the environment's file, and fails
    only on an error (differences exit 0 without ``--fail``): its upload runs unless the run
    is cancelled, so the review shows the error rather than no diff."""
    assert "--fail" not in recipe("review-diff")
    assert recipe("review-diff").endswith("2>&1")
    (upload,) = [
        step
        for step in read("ci.yml")["jobs"]["diff"]["steps"]
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert upload.get("if") == "${{ !cancelled() }}"


@pytest.mark.parametrize("name", [name for name, _ in all_workflows()])
def test_each_job_has_only_the_rights_its_steps_need(name: str) -> None:
    assert permission_breaches(read(name)) == []


def test_a_job_with_rights_it_does_not_need_is_refused() -> None:
    careless = copy.deepcopy(read("ci.yml"))
    careless["jobs"]["test"]["permissions"] = {"contents": "read", "id-token": "write"}
    careless["jobs"]["diff"]["permissions"] = {"contents": "read"}
    assert permission_breaches(careless) == [
        "job test has {'contents': 'read', 'id-token': 'write'}, needs {'contents': 'read'}",
        "job diff has {'contents': 'read'}, needs {'contents': 'read', 'id-token': 'write'}",
    ]


@pytest.mark.parametrize("name", [name for name, _ in all_workflows()])
def test_aws_is_reached_only_through_oidc_and_no_workflow_runs_untrusted_code_with_rights(
    name: str,
) -> None:
    """No stored key: every credential step assumes a role named by a variable, and no
    secret is read at all. Nothing is triggered by ``pull_request_target`` or
    ``workflow_run``, which run a fork's changes with the base repository's rights."""
    text = (WORKFLOWS / name).read_text()
    assert "secrets." not in text
    assert not triggers(read(name)) & {"pull_request_target", "workflow_run"}
    for job in read(name)["jobs"].values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith(CONFIGURE):
                given = step["with"]
                assert given["role-to-assume"].startswith("${{ vars"), given
                assert not {"aws-access-key-id", "aws-secret-access-key"} & set(given), given


FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
"""True only for a pull request from a branch of this repository, not from a fork."""


def required(condition: str) -> list[str] | None:
    """The terms an ``if`` requires all of (``a && b``, ``${{ }}`` or not), or None when an
    ``||`` could let it through without one of them."""
    expression = " ".join(condition.split())
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2].strip()
    if "||" in expression:
        return None
    return [term.strip() for term in expression.split("&&")]


def fork_guard_breaches(ci: dict[str, Any]) -> list[str]:
    """Where ci.yml lets a fork's pull request reach what only this repository's may: the
    ``diff`` job, which assumes the review roles, and the review's comment, which needs a
    token that writes. Each must require ``FORK_GUARD`` (``if``, the terms joined by ``&&``)."""
    guarded = {"job diff": ci["jobs"]["diff"].get("if", "")}
    for step in ci["jobs"]["review"]["steps"]:
        if "review-comment" in str(step.get("run", "")):
            guarded[f"step {step.get('name')!r} of job review"] = step.get("if", "")
    breaches = [] if len(guarded) > 1 else ["no step of job review comments the review"]
    for where, condition in guarded.items():
        terms = required(str(condition))
        if terms is None or FORK_GUARD not in terms:
            breaches.append(f"{where} may run for a fork's pull request: if {condition!r}")
    return breaches


def test_a_forks_pull_request_gets_no_review_role_and_no_comment() -> None:
    assert fork_guard_breaches(read("ci.yml")) == []


@pytest.mark.parametrize(
    ("job", "condition", "breach"),
    [
        pytest.param(
            "diff",
            "github.event_name == 'pull_request'",
            "job diff may run for a fork's pull request: if \"github.event_name == "
            "'pull_request'\"",
            id="diff without the guard",
        ),
        pytest.param(
            "review",
            f"${{{{ !cancelled() || {FORK_GUARD} }}}}",
            "step 'Comment on the pull request' of job review may run for a fork's pull "
            f"request: if '${{{{ !cancelled() || {FORK_GUARD} }}}}'",
            id="comment with the guard or'ed away",
        ),
        pytest.param(
            "review",
            f"${{{{ !cancelled() && {FORK_GUARD.replace('==', '!=')} }}}}",
            "step 'Comment on the pull request' of job review may run for a fork's pull "
            f"request: if '${{{{ !cancelled() && {FORK_GUARD.replace('==', '!=')} }}}}'",
            id="comment for forks only",
        ),
        pytest.param(
            "review",
            None,
            "step 'Comment on the pull request' of job review may run for a fork's pull "
            "request: if ''",
            id="comment unguarded",
        ),
    ],
)
def test_a_missing_or_weakened_fork_guard_is_refused(
    job: str, condition: str | None, breach: str
) -> None:
    careless = copy.deepcopy(read("ci.yml"))
    if job == "diff":
        where = careless["jobs"]["diff"]
    else:
        (where,) = [
            s for s in careless["jobs"]["review"]["steps"] if "review-comment" in s.get("run", "")
        ]
    where.pop("if")
    if condition is not None:
        where["if"] = condition
    assert fork_guard_breaches(careless) == [breach]


def token_contexts() -> dict[str, set[str]]:
    """Each role's name, and the contexts of the tokens the workflows' jobs assume it with."""
    contexts: dict[str, set[str]] = {}
    called = read("deploy-environment.yml")["jobs"]
    for name, job in read("deploy.yml")["jobs"].items():
        if job.get("uses") != CALLED:
            assert not assumes_a_role(job), f"deploy.yml job {name} assumes a role itself"
            continue
        env = job["with"]["environment"]
        (deploy,) = called.values()
        assert deploy["environment"] == "${{ inputs.environment }}"
        for step in deploy["steps"]:
            if str(step.get("uses", "")).startswith(CONFIGURE):
                role = step["with"]["role-to-assume"]
                if role == "${{ vars.AWS_DEPLOY_ROLE_ARN }}":
                    contexts.setdefault(Names.of(load_settings(env)).deploy_role, set()).add(
                        f"environment:{env}"
                    )
    ci = read("ci.yml")
    diff = ci["jobs"]["diff"]
    assert "environment" not in diff
    assert triggers(ci) >= {"pull_request"}
    assert "github.event_name == 'pull_request'" in diff["if"]
    for env in diff["strategy"]["matrix"]["environment"]:
        contexts.setdefault(Names.of(load_settings(env)).review_role, set()).add("pull_request")
    return contexts


@pytest.fixture(scope="module")
def delivery_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The delivery stacks alone, synthesized without the pipeline stacks (which need the
    Glue artifact); cdk-nag checks them with the rest in tests/test_cdk.py."""
    from aws_cdk import App, Environment

    from cdk.app import CONTEXT
    from cdk.delivery import DeliveryStack, delivery_stack_name

    app = App(context=CONTEXT, outdir=str(tmp_path_factory.mktemp("delivery")))
    for env in DEPLOYED:
        settings = load_settings(env)
        where = Environment(region=settings.aws.region)
        DeliveryStack(app, delivery_stack_name(settings), settings=settings, env=where)
    assembly = app.synth()
    return {
        env: assembly.get_stack_by_name(delivery_stack_name(load_settings(env))).template
        for env in DEPLOYED
    }


def trusted_subjects(templates: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Each GitHub role's name and the token subjects its trust policy accepts."""
    trusted: dict[str, set[str]] = {}
    for template in templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                if statement["Action"] != "sts:AssumeRoleWithWebIdentity":
                    continue
                equals = statement["Condition"]["StringEquals"]
                assert equals[f"{ISSUER}:aud"] == "sts.amazonaws.com"
                subject = equals[f"{ISSUER}:sub"]
                assert isinstance(subject, str), "one subject, no list, no wildcard"
                trusted.setdefault(resource["Properties"]["RoleName"], set()).add(subject)
    return trusted


def rendered(value: Any) -> Any:
    """A template value with ``Ref``, ``Fn::Join`` and ``Fn::Sub`` written out as the string
    they make (``arn:aws:sns:us-east-1:${AWS::AccountId}:...``), to compare with a policy's."""
    if isinstance(value, list):
        return [rendered(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return f"${{{value['Ref']}}}"
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(str(rendered(part)) for part in parts)
    return {key: rendered(item) for key, item in value.items()}


def github_provider(template: dict[str, Any]) -> str:
    """GitHub's OIDC provider as the stack's trust policies name it: the provider the stack
    creates, or the account's (``aws.github.oidc_provider: existing``)."""
    created = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::OIDCProvider"
    }
    if not created:
        return f"arn:aws:iam::${{AWS::AccountId}}:oidc-provider/{ISSUER}"
    ((name, provider),) = created.items()
    assert provider["Url"] == f"https://{ISSUER}"
    assert provider["ClientIdList"] == [AUDIENCE]
    return f"${{{name}}}"


def trust_breaches(template: dict[str, Any], subjects: dict[str, str]) -> list[str]:
    """How the trust policies of the stack's roles differ from trusting exactly the token
    subject of the job that assumes each (``subjects``, by role name): one statement, allowing
    ``sts:AssumeRoleWithWebIdentity`` to GitHub's provider, on the condition that the
    audience and the subject equal AWS's and that one (no ``StringLike``, no list, no other
    key). A role not in ``subjects`` trusts no GitHub token at all."""
    provider = github_provider(template)
    breaches = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        name = resource["Properties"]["RoleName"]
        statements = rendered(resource["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        if name not in subjects:
            if "Federated" in json.dumps(statements) or "WebIdentity" in json.dumps(statements):
                breaches.append(f"role {name} trusts GitHub's tokens, but no job assumes it")
            continue
        expected = {
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {f"{ISSUER}:aud": AUDIENCE, f"{ISSUER}:sub": subjects[name]}
            },
            "Effect": "Allow",
            "Principal": {"Federated": provider},
        }
        if len(statements) != 1:
            breaches.append(f"role {name} has {len(statements)} trust statements, not one")
        for number, statement in enumerate(statements, 1):
            for key in sorted(expected.keys() | statement.keys()):
                given = statement.get(key)
                if given != expected.get(key):
                    breaches.append(
                        f"role {name}, statement {number}: {key} is {json.dumps(given)}"
                    )
    return breaches


def github_subjects() -> dict[str, str]:
    """Each GitHub role's name, and the one token subject its job's token has."""
    github = load_settings("dev").aws.github
    subjects = {}
    for role, contexts in token_contexts().items():
        (context,) = contexts
        subjects[role] = github.subject(context)
    return subjects


def test_the_roles_trust_exactly_the_tokens_of_the_jobs_that_assume_them(
    delivery_templates: dict[str, dict[str, Any]],
) -> None:
    github = load_settings("dev").aws.github
    expected = {
        role: {github.subject(context) for context in contexts}
        for role, contexts in token_contexts().items()
    }
    assert trusted_subjects(delivery_templates) == expected
    assert expected["flightpipe-deploy-prod"] == {"repo:flightpipe/flightpipe:environment:prod"}
    assert expected["flightpipe-review-dev"] == {"repo:flightpipe/flightpipe:pull_request"}
    for template in delivery_templates.values():
        assert trust_breaches(template, github_subjects()) == []


def test_a_careless_trust_is_refused(delivery_templates: dict[str, dict[str, Any]]) -> None:
    """Another statement beside the web identity one, a subject matched with ``StringLike``
    (``*`` would then be every branch's and pull request's), no audience condition."""
    careless = copy.deepcopy(delivery_templates["dev"])
    roles = {
        r["Properties"]["RoleName"]: r["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        for r in careless["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
    }
    roles["flightpipe-deploy-dev"].append(
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"AWS": "123456789012"}}
    )
    (review,) = roles["flightpipe-review-dev"]
    review["Condition"] = {"StringLike": review["Condition"]["StringEquals"]}
    review["Condition"]["StringLike"][f"{ISSUER}:sub"] = "repo:flightpipe/flightpipe:*"
    careless_staging = copy.deepcopy(delivery_templates["staging"])
    for resource in careless_staging["Resources"].values():
        if resource["Properties"].get("RoleName") == "flightpipe-deploy-staging":
            (deploy,) = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            del deploy["Condition"]["StringEquals"][f"{ISSUER}:aud"]
    assert trust_breaches(careless, github_subjects()) == [
        "role flightpipe-deploy-dev has 2 trust statements, not one",
        'role flightpipe-deploy-dev, statement 2: Action is "sts:AssumeRole"',
        "role flightpipe-deploy-dev, statement 2: Condition is null",
        'role flightpipe-deploy-dev, statement 2: Principal is {"AWS": "123456789012"}',
        'role flightpipe-review-dev, statement 1: Condition is {"StringLike": '
        f'{{"{ISSUER}:aud": "sts.amazonaws.com", "{ISSUER}:sub": '
        '"repo:flightpipe/flightpipe:*"}}',
    ]
    assert trust_breaches(careless_staging, github_subjects()) == [
        'role flightpipe-deploy-staging, statement 1: Condition is {"StringEquals": '
        f'{{"{ISSUER}:sub": "repo:flightpipe/flightpipe:environment:staging"}}}}',
    ]


def test_a_customized_subject_with_immutable_ids_is_what_the_roles_trust(
    tmp_path: Path,
) -> None:
    """A repository whose OIDC customization puts the ids first: the settings say so, and
    the trust follows them."""
    from aws_cdk import App, Environment

    from cdk.app import CONTEXT
    from cdk.delivery import DeliveryStack

    settings = load_settings(
        "staging",
        aws={
            "github": {
                "subject_claims": ["repository_owner_id", "repository_id", "context"],
                "repository_owner_id": 4711,
                "repository_id": 815,
                "oidc_provider": "existing",
            }
        },
    )
    app = App(context=CONTEXT, outdir=str(tmp_path))
    DeliveryStack(app, "Delivery", settings=settings, env=Environment(region=settings.aws.region))
    template = app.synth().get_stack_by_name("Delivery").template
    ids = "repository_owner_id:4711:repository_id:815"
    subjects = {
        "flightpipe-deploy-staging": f"{ids}:environment:staging",
        "flightpipe-review-staging": f"{ids}:pull_request",
    }
    assert trusted_subjects({"staging": template}) == {
        role: {subject} for role, subject in subjects.items()
    }
    assert trust_breaches(template, subjects) == []
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::IAM::OIDCProvider" not in kinds, "another stack made the account's provider"


def test_the_deploy_role_may_only_assume_cdks_deploying_roles_and_the_smoke_role(
    delivery_templates: dict[str, dict[str, Any]],
) -> None:
    for env, template in delivery_templates.items():
        (policy,) = [
            r["Properties"]["PolicyDocument"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and "Deploy" in r["Properties"]["PolicyName"]
        ]
        actions = {
            s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"])
            for s in policy["Statement"]
        }
        assert actions == {"sts:AssumeRole", "sns:Publish", ("kms:Decrypt", "kms:GenerateDataKey")}
        (assume,) = [s for s in policy["Statement"] if s["Action"] == "sts:AssumeRole"]
        roles = sorted(r["Fn::Sub"].rsplit("/", 1)[1] for r in assume["Resource"])
        assert roles == [
            "cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}",
            "cdk-hnb659fds-file-publishing-role-${AWS::AccountId}-${AWS::Region}",
            "cdk-hnb659fds-lookup-role-${AWS::AccountId}-${AWS::Region}",
            f"flightpipe-smoke-{env}",
        ]


def deploy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = [
        r["Properties"]["PolicyDocument"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and "Deploy" in r["Properties"]["PolicyName"]
    ]
    statements: list[dict[str, Any]] = policy["Statement"]
    return statements


def kms_breaches(statements: list[dict[str, Any]], env: str) -> list[str]:
    """How the deploy role's KMS rights differ from what publishing to the encrypted
    operations topic needs: a data key and decryption, of a key SNS uses (``kms:ViaService``)
    for that topic alone (its ARN the encryption context), in one statement."""
    settings = load_settings(env)
    region = settings.aws.region
    topic = f"arn:aws:sns:{region}:${{AWS::AccountId}}:{Names.of(settings).operations_topic}"
    expected = {
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Condition": {
            "StringEquals": {
                "kms:EncryptionContext:aws:sns:topicArn": topic,
                "kms:ViaService": "sns.${AWS::Region}.amazonaws.com",
            }
        },
        "Effect": "Allow",
        "Resource": f"arn:aws:kms:{region}:${{AWS::AccountId}}:key/*",
    }
    kms = [
        rendered(s)
        for s in statements
        if any(
            a == "*" or a.startswith("kms:")
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
    ]
    breaches = [] if len(kms) == 1 else [f"the deploy role has {len(kms)} KMS statements"]
    for statement in kms:
        for key in sorted(expected.keys() | statement.keys()):
            given = statement.get(key)
            if given != expected.get(key):
                breaches.append(f"the deploy role's KMS {key} is {json.dumps(given)}")
    return breaches


def test_the_deploy_role_may_use_only_the_operations_topics_key_through_sns(
    delivery_templates: dict[str, dict[str, Any]],
) -> None:
    for env, template in delivery_templates.items():
        assert kms_breaches(deploy_statements(template), env) == []


def test_a_deploy_role_using_any_key_is_refused(
    delivery_templates: dict[str, dict[str, Any]],
) -> None:
    """Without the conditions the role could decrypt with every key its account lets it use;
    with ``kms:*`` also administer them."""
    statements = copy.deepcopy(deploy_statements(delivery_templates["dev"]))
    (kms,) = [s for s in statements if "kms:Decrypt" in s["Action"]]
    unconditional = [s for s in statements if s is not kms] + [
        {k: v for k, v in kms.items() if k != "Condition"}
    ]
    assert kms_breaches(unconditional, "dev") == ["the deploy role's KMS Condition is null"]
    del kms["Condition"]["StringEquals"]["kms:ViaService"]
    kms["Action"] = "kms:*"
    topic = "arn:aws:sns:us-east-1:${AWS::AccountId}:flightpipe-operations-dev"
    assert kms_breaches(statements, "dev") == [
        'the deploy role\'s KMS Action is "kms:*"',
        "the deploy role's KMS Condition is "
        f'{{"StringEquals": {{"kms:EncryptionContext:aws:sns:topicArn": "{topic}"}}}}',
    ]
    assert kms_breaches([*statements, {**kms, "Action": "*"}], "dev")[0] == (
        "the deploy role has 2 KMS statements"
    )


def test_the_review_role_may_only_read_its_environments_stack(
    delivery_templates: dict[str, dict[str, Any]],
) -> None:
    """Any branch's pull request gets the review role: it must not read the data (CDK's lookup
    role would: ReadOnlyAccess)."""
    for env, template in delivery_templates.items():
        (policy,) = [
            r["Properties"]["PolicyDocument"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and "Review" in r["Properties"]["PolicyName"]
        ]
        (statement,) = policy["Statement"]
        assert statement["Action"] == [
            "cloudformation:DescribeStacks",
            "cloudformation:GetTemplate",
        ]
        assert json.dumps(statement["Resource"]).endswith(f':stack/flightpipe-{env}/*"]]}}')


def test_every_job_runs_in_the_debian_and_python_of_the_local_machines() -> None:
    """The image's Python is the one ``pyproject.toml`` requires (Glue 5's), its Debian this
    machine's release: system packages and root behave as here."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    python = project["requires-python"].split(",")[0].removeprefix(">=")
    release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    codename = release["VERSION_CODENAME"].strip('"')
    images = {
        job["container"]["image"] if isinstance(job["container"], dict) else job["container"]
        for _, workflow in all_workflows()
        for job in workflow["jobs"].values()
        if "uses" not in job
    }
    assert images == {f"python:{python}-{codename}"}


def test_the_caches_are_keyed_on_the_lock_files() -> None:
    setup = yaml.safe_load((REPO_ROOT / ".github/actions/setup/action.yml").read_text())
    keys = {
        step["with"]["path"]: step["with"]["key"]
        for step in setup["runs"]["steps"]
        if str(step.get("uses", "")).startswith("actions/cache@")
    }
    assert keys == {
        "~/.cache/uv": "uv-${{ runner.os }}-${{ hashFiles('uv.lock') }}",
        "~/.npm": "npm-${{ runner.os }}-${{ hashFiles('package-lock.json') }}",
    }
