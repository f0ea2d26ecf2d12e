"""The GitHub Actions workflow files, checked offline: GitHub's workflow schema
(``check-jsonschema --builtin-schema vendor.github-workflows``), zizmor's audits
(``zizmor --offline``), and what the project requires of every workflow: each action pinned
to a full commit with the release it is named beside it, read-only default permissions, a
timeout on every job, artifact uploads a re-run can repeat, and only the Makefile's targets
run. Each check is also run on a careless workflow, to see it fail.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.settings import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((REPO_ROOT / ".github" / "actions").glob("*/action.yml"))
"""The repository's own composite actions, which the workflows use by path."""
_PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s+v\d+\.\d+\.\d+\s*$"
)
# A path into this repository is the workflow's own commit: nothing to pin.
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+(?!\./)(\S+)")

CARELESS = """\
name: careless
on: [pull_request]
jobs:
  test:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def _tool(name: str) -> str:
    """A tool of the virtual environment the tests run in (the checkout's ``.venv`` under
    ``make test``; another checkout's when a worktree without one is tested)."""
    return str(Path(sys.executable).parent / name)


def schema_errors(path: Path) -> str | None:
    schema = "vendor.github-actions" if path.name == "action.yml" else "vendor.github-workflows"
    checked = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if checked.returncode == 0 else checked.stdout + checked.stderr


def zizmor_findings(path: Path) -> list[dict[str, Any]]:
    audited = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings: list[dict[str, Any]] = json.loads(audited.stdout or "[]")
    return findings


def unpinned(path: Path) -> list[str]:
    """Every ``uses:`` not pinned to a full commit with its release (``# v1.2.3``) beside it."""
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if _USES.match(line) and not _PINNED.match(line)
    ]


def policy_breaches(path: Path) -> list[str]:
    """What a workflow lacks of the project's rules: read-only default permissions, a timeout
    on every job (a job that calls a workflow takes the called jobs' timeouts: GitHub allows
    it none of its own)."""
    workflow = yaml.safe_load(path.read_text())
    breaches = []
    if workflow.get("permissions") != {"contents": "read"}:
        breaches.append("default permissions are not contents: read")
    for name, job in workflow["jobs"].items():
        if "timeout-minutes" not in job and "uses" not in job:
            breaches.append(f"job {name} has no timeout-minutes")
    return breaches


def steps(path: Path) -> list[dict[str, Any]]:
    """Every step of a workflow's jobs, or of a composite action."""
    document = yaml.safe_load(path.read_text())
    if path.name == "action.yml":
        return list(document["runs"]["steps"])
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def not_overwriting(path: Path) -> list[str]:
    """Each artifact upload that fails on a re-run of its job: a re-run is the same workflow
    run, which already holds the artifact of that name (upload-artifact's ``overwrite``)."""
    return [
        str(step["with"]["name"])
        for step in steps(path)
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
        and step["with"].get("overwrite") is not True
    ]


_RULE = re.compile(r"^(\w[\w./-]*(?:[ \t]+\w[\w./-]*)*)[ \t]*:(?!=)")
_CASE = re.compile(r"\bcase\s+\"?\$\{?(\w+)\}?\"?\s+in\b(.*?)\besac\b", re.DOTALL)
_BRANCH = re.compile(r"^\s*\(?([^()\n]*?)\s*\)(.*?)(?:;;|\Z)", re.DOTALL | re.MULTILINE)
_WITH_VALUE = {"-C", "-f", "-I", "-o", "-W", "--directory", "--file", "--makefile"}
"""make's options that take the next word as their value."""


def makefile_targets() -> set[str]:
    """Every target a rule of the Makefile names (``target:`` at the start of a line)."""
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    return {target for line in lines if (rule := _RULE.match(line)) for target in rule[1].split()}


def make_targets(script: str) -> list[str]:
    """Each target a shell script gives ``make`` (``make -s X``, ``make -C dir X``). For
    ``make "$V"`` in a branch of ``case "$V"``, the words of the branch's pattern
    (``smoke | health)``); a variable no pattern bounds stays ``$V``."""
    scripts: list[tuple[str, dict[str, list[str]]]] = [(_CASE.sub("", script), {})]
    for variable, body in _CASE.findall(script):
        for pattern, commands in _BRANCH.findall(body):
            words = [word.strip() for word in pattern.split("|")]
            globbed = any(set(word) & set("*?[") for word in words)
            scripts.append((commands, {} if globbed else {variable: words}))
    targets = []
    for text, bound in scripts:
        for line in text.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = list(lexer)
            for start in (i for i, word in enumerate(words) if word == "make"):
                value = False
                for word in words[start + 1 :]:
                    if set(word) <= set("();<>|&"):
                        break
                    if value or word.startswith("-") or "=" in word:
                        value = word in _WITH_VALUE
                        continue
                    name = word.removeprefix("$").strip("{}")
                    targets.extend(bound.get(name, [word]) if word.startswith("$") else [word])
    return targets


def undefined_make_targets(path: Path) -> list[str]:
    """Each ``make <target>`` of a ``run:`` step that the Makefile does not define."""
    defined = makefile_targets()
    return [
        f"make {target}"
        for step in steps(path)
        for target in make_targets(str(step.get("run", "")))
        if target not in defined
    ]


def test_there_are_workflows_to_check() -> None:
    assert WORKFLOWS


def _name(path: Path) -> str:
    return path.parent.name if path.name == "action.yml" else path.name


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=_name)
def test_each_workflow_and_action_matches_githubs_schema(path: Path) -> None:
    assert schema_errors(path) is None


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=_name)
def test_zizmor_finds_nothing_in_each_workflow_and_action(path: Path) -> None:
    assert zizmor_findings(path) == []


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=_name)
def test_each_action_is_pinned_to_a_commit_with_its_release_named(path: Path) -> None:
    assert unpinned(path) == []


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=_name)
def test_each_artifact_upload_survives_a_rerun_of_its_job(path: Path) -> None:
    assert not_overwriting(path) == []


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=_name)
def test_each_make_target_a_step_runs_is_the_makefiles(path: Path) -> None:
    assert undefined_make_targets(path) == []


def test_a_make_target_the_makefile_lacks_is_refused(tmp_path: Path) -> None:
    careless = tmp_path / "careless.yml"
    careless.write_text(
        "jobs:\n"
        "  test:\n"
        "    steps:\n"
        "      - run: make -s nonesuch ENV=dev && make -C base synth\n"
        "      - run: |\n"
        '          case "$CHECK" in\n'
        '            smoke | sonar) make "$CHECK" ENV="$ENVIRONMENT" ;;\n'
        '            *) make "$CHECK" ;;\n'
        "          esac\n"
        '      - run: make "${TARGET}" -f Makefile\n'
    )
    assert undefined_make_targets(careless) == [
        "make nonesuch",
        "make sonar",
        "make $CHECK",
        "make ${TARGET}",
    ]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_reads_only_by_default_and_every_job_times_out(path: Path) -> None:
    assert policy_breaches(path) == []


def test_the_checks_refuse_a_careless_workflow(tmp_path: Path) -> None:
    careless = tmp_path / "careless.yml"
    careless.write_text(CARELESS)
    assert schema_errors(careless) is None, "the careless workflow is valid YAML for GitHub"
    audits = {finding["ident"] for finding in zizmor_findings(careless)}
    assert {"unpinned-uses", "template-injection"} <= audits
    assert unpinned(careless) == ["- uses: actions/checkout@v4"]
    assert set(policy_breaches(careless)) == {
        "default permissions are not contents: read",
        "job test has no timeout-minutes",
    }
    jobless = tmp_path / "jobless.yml"
    jobless.write_text("name: jobless\non: [push]\n")
    assert schema_errors(jobless) is not None, "a workflow without jobs is refused"
