"""The pull request's deployment review (``python -m cdk.review``) on real cloud assemblies: the
base is dev and staging as they are, the head the same with acknowledgments added and changed
on dev's buckets and dev's load job and warehouse made larger. Two syntheses for the session.

Slow (marked ``slow``): the syntheses deploy the session's Glue artifact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline import packaging
from pipeline.costs import DAILY_FILE, estimate
from pipeline.settings import load_settings
from tests.test_cdk import synthesize

if TYPE_CHECKING:
    from aws_cdk import Stack

pytestmark = pytest.mark.slow

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ENVIRONMENTS = ("dev", "staging")
REASON = "Raw uploads are written by the account's own producers, which sign every request."
LARGER = {"load_job": {"workers": 6}, "redshift_base_capacity": 16}
"""What the head changes in dev's settings: a larger load job and warehouse."""


@pytest.fixture(scope="session")
def base(artifact: packaging.Artifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base.out")
    synthesize([load_settings(env) for env in ENVIRONMENTS], artifact.out, out)
    return out


def _acknowledge(stacks: dict[str, Stack]) -> None:
    """On dev's buckets: a new acknowledgment with its reason, one without, and one whose
    reason the head shortens (on the bucket itself, nearer than the base's on its construct)."""
    from aws_cdk import CfnResource

    from cdk.nag import suppress

    storage = stacks["dev"].node.find_child("Storage")

    def bucket(name: str) -> CfnResource:
        cfn = storage.node.find_child(name).node.default_child
        assert isinstance(cfn, CfnResource)
        return cfn

    suppress(bucket("Raw"), "AwsSolutions-S2", REASON)
    suppress(bucket("Dim"), "AwsSolutions-S5", "")
    suppress(bucket("AccessLogs"), "AwsSolutions-S1", "It loops.")


@pytest.fixture(scope="session")
def head(artifact: packaging.Artifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("head.out")
    environments = [load_settings("dev", aws=LARGER), load_settings("staging")]
    synthesize(environments, artifact.out, out, amend=_acknowledge)
    return out


def review(tmp_path: Path, *args: str) -> tuple[int, str]:
    """The exit status of ``python -m cdk.review`` with ``args``, and the report it wrote."""
    from cdk.review import main

    out = tmp_path / "review.md"
    status = main([*args, "--out", str(out)])
    return status, out.read_text()


def section(report: str, env: str) -> str:
    """The report's section on ``env``."""
    return report.split(f"\n## {env}\n", 1)[1].split("\n## ", 1)[0]


def row(text: str, *cells: str) -> str:
    """The one table row of ``text`` holding every one of ``cells``."""
    (found,) = [line for line in text.splitlines() if all(cell in line for cell in cells)]
    return found


@pytest.fixture(scope="session")
def forward(base: Path, head: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """The review of the head against the base, with no diff (a fork's pull request)."""
    return review(tmp_path_factory.mktemp("forward"), "--base", str(base), "--head", str(head))


def test_an_acknowledgment_added_with_its_reason_is_listed_as_added(
    forward: tuple[int, str],
) -> None:
    _, report = forward
    assert report.startswith("<!-- flightpipe-review -->\n")
    dev = section(report, "dev")
    added = dev.split("Added (2):", 1)[1].split("\n\n", 2)[1]
    assert row(added, "`AwsSolutions-S2`", "`flightpipe-dev/Storage/Raw/Resource`", REASON)
    assert "None added, removed or changed" in section(report, "staging")
    assert "Removed" not in dev


def test_an_acknowledgment_without_a_reason_fails_naming_it_and_how_to_fix_it(
    forward: tuple[int, str],
    base: Path,
    head: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, report = review(tmp_path, "--base", str(base), "--head", str(head))
    assert status == 1
    problems = capsys.readouterr().err.splitlines()
    assert problems == [
        "review: dev: flightpipe-dev/Storage/Dim/Resource acknowledges AwsSolutions-S5 with the "
        "reason '' (0 words): say why it is acknowledged in 8 words or more, in the "
        "suppress(...) call (cdk/nag.py) that acknowledges it",
        "review: dev: flightpipe-dev/Storage/AccessLogs/Resource acknowledges AwsSolutions-S1 "
        "with the reason 'It loops.' (2 words): say why it is acknowledged in 8 words or more, "
        "in the suppress(...) call (cdk/nag.py) that acknowledges it",
    ]
    # New ones first, then changed ones. The report is written all the same, the problems at
    # its top, the empty reason in its row.
    fix = report.split("**To fix before merging:**", 1)[1].split("\n## ", 1)[0]
    assert "flightpipe-dev/Storage/Dim/Resource acknowledges AwsSolutions-S5" in fix
    assert row(section(report, "dev"), "`AwsSolutions-S5`", "`flightpipe-dev/Storage/Dim/Resource`")
    assert report == forward[1]


def test_a_removed_acknowledgment_is_listed_as_removed_and_a_changed_reason_beside_the_old(
    base: Path, head: Path, tmp_path: Path
) -> None:
    # The head's assembly as the base: its acknowledgments are gone from the other.
    status, report = review(tmp_path, "--base", str(head), "--head", str(base))
    assert status == 0, "a removed acknowledgment needs no reason"
    dev = section(report, "dev")
    removed = dev.split("Removed (2):", 1)[1].split("\n\n", 2)[1]
    assert row(removed, "`AwsSolutions-S2`", "`flightpipe-dev/Storage/Raw/Resource`", REASON)
    assert row(removed, "`AwsSolutions-S5`", "`flightpipe-dev/Storage/Dim/Resource`")
    changed = dev.split("Reason changed (1):", 1)[1]
    assert row(changed, "`AwsSolutions-S1`", "`flightpipe-dev/Storage/AccessLogs/Resource`")
    assert "| It loops. | This is the access-log bucket of the others" in changed


def test_the_cost_of_a_day_follows_what_each_assembly_deploys(forward: tuple[int, str]) -> None:
    _, report = forward

    def total(**aws: object) -> float:
        settings = load_settings("dev", aws=aws)
        return sum(cost.usd for cost in estimate(DAILY_FILE, settings.prices, settings.aws))

    before, after = total(), total(**LARGER)
    assert after > before
    dev = section(report, "dev").split("### Cost of one daily file", 1)[1]
    assert row(dev, "**total**") == (
        f"| **total** |  | {before:.4f} | {after:.4f} | **{after - before:+.4f}** |"
    )
    assert row(dev, "Glue load job runs", "6 x G.1X")
    assert row(dev, "Redshift Serverless", "16 RPU")
    staging = section(report, "staging").split("### Cost of one daily file", 1)[1]
    assert row(staging, "**total**").endswith("| **+0.0000** |")


def test_without_diffs_the_report_says_a_fork_gets_no_aws_access(
    forward: tuple[int, str],
) -> None:
    _, report = forward
    for env in ENVIRONMENTS:
        diff = section(report, env).split("### cdk diff", 1)[1].split("###", 1)[0]
        assert f"No `cdk diff` of `flightpipe-{env}`" in diff
        assert "a pull request from a fork gets no AWS access" in diff
        assert row(report, f"| {env} | needs AWS access |")


def test_the_report_stays_under_githubs_limit_cutting_only_the_long_diff(
    base: Path, tmp_path: Path
) -> None:
    from cdk.review import COMMENT_LIMIT

    diffs = tmp_path / "diffs"
    diffs.mkdir()
    long = [
        f"[~] AWS::IAM::Policy Policy{n:05} changed, line {n:05} of the long diff"
        for n in range(5000)
    ]
    short = ["Stack flightpipe-staging", "There were no differences"]
    (diffs / "diff-dev.txt").write_text("\n".join(long) + "\n")
    (diffs / "diff-staging.txt").write_text("\n".join(short) + "\n")
    status, report = review(
        tmp_path, "--base", str(base), "--head", str(base), "--diffs", str(diffs)
    )
    assert status == 0
    assert len(report) <= COMMENT_LIMIT
    # Only the room for the notes of sections that might have been cut is kept back.
    assert len(report) > COMMENT_LIMIT - 1_000, "the room left is used"
    dev = section(report, "dev")
    kept = [line for line in dev.splitlines() if line.startswith("[~]")]
    assert kept == long[: len(kept)]
    assert f"_{len(long) - len(kept):,} of 5,000 lines of the diff cut here" in dev
    assert "the whole diff is `diff-dev.txt`" in dev
    staging = section(report, "staging")
    assert "\n".join(short) in staging
    assert "cut here" not in staging
