"""The pull request's deployment review: one Markdown report of what a pull request changes in
each environment's deployment, for its comment (updated in place) or the job's summary.

``python -m cdk.review --base BASE --head HEAD [--diffs DIR] [--out FILE]`` reads two cloud
assemblies as ``cdk synth`` writes them, the base branch's and the pull request's (a failed
synthesis still writes its templates and ``validation-report.json``; a base that wrote no
assembly at all is said to be missing), and reports per environment:

- the ``cdk diff`` of its stacks, ``DIR/diff-<env>.txt`` (written with the read-only role);
  without ``--diffs`` (a fork's pull request, which gets no AWS access) the report says so;
- the cdk-nag acknowledgments added, removed or changed between base and head (rule, finding,
  resource, reason), as each template's metadata holds them, and the validation report's
  findings;
- cfn-lint's findings on the head templates;
- the estimated cost of one daily file (``pipeline.costs.DAILY_FILE``), base and head.

Its first line is ``MARKER``, by which ``cdk.review_comment`` finds its comment to update. The
report stays within GitHub's limit for a comment (``COMMENT_LIMIT``): long sections are cut,
each fairly and saying so. Both are defined there, so that posting needs neither CDK nor
cfn-lint. The report is written first; then the exit status is 1 when the head
breaks a rule (a new or changed acknowledgment that does not say why, a cfn-lint error, an
unacknowledged finding, no head assembly), each problem also on stderr; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cfnlint.api import lint_file

from cdk.app import DEPLOYED, stack_name
from cdk.nag import REASON_MIN_WORDS, explains
from cdk.review_comment import COMMENT_LIMIT, MARKER
from pipeline.costs import DAILY_FILE, Cost, estimate
from pipeline.settings import AwsSettings, GlueJobSettings, Settings, load_settings
from pipeline.workflow import LOAD_SCRIPT, VALIDATION_SCRIPT

_VALIDATION_REPORT: Final = "validation-report.json"
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")
"""The CDK CLI colours its diff where it thinks a terminal reads it."""


# -- what an assembly holds -------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledgment:
    """One acknowledged cdk-nag finding on one resource, as the template's metadata holds it."""

    resource: str
    """The resource's construct path (``flightpipe-dev/Storage/Raw/Resource``), or its logical
    id when the assembly does not say its path."""
    id: str
    """The acknowledged finding: a rule (``AwsSolutions-S1``) or one finding of it
    (``AwsSolutions-IAM5[Resource::*]``)."""
    reason: str

    @property
    def rule(self) -> str:
        return self.id.split("[", 1)[0]

    @property
    def finding(self) -> str:
        return self.id[len(self.rule) :].removeprefix("[").removesuffix("]")


def acknowledgments(
    template: Mapping[str, Any], paths: Mapping[str, str] | None = None
) -> Iterator[Acknowledgment]:
    """Every acknowledgment written into ``template``'s resources (cdk-nag's
    ``write_suppressions_to_cloud_formation``: one on a construct is written on each resource
    under it), each resource named by its path in ``paths`` (logical id to construct path)."""
    for logical, resource in template["Resources"].items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            yield Acknowledgment((paths or {}).get(logical, logical), rule["id"], rule["reason"])


@dataclass(frozen=True)
class LintFinding:
    rule: str
    line: int
    message: str

    @property
    def error(self) -> bool:
        """cfn-lint's errors (``E...``) are what CloudFormation would refuse; warnings and
        informational findings (``W...``, ``I...``) are advice."""
        return self.rule.startswith("E")


def cfn_lint(template: Path) -> list[LintFinding]:
    """cfn-lint's findings on a template file, as its command line (``cfn-lint FILE``) finds
    them: its own defaults (the region us-east-1) and any configuration the template holds."""
    return [LintFinding(m.rule.id, m.linenumber, m.message) for m in lint_file(template)]


@dataclass(frozen=True)
class Finding:
    """A finding of a validation plugin (cdk-nag's AwsSolutions pack, CDK's CloudFormation
    validation) that no acknowledgment covers: synthesis fails on one of severity error."""

    plugin: str
    rule: str
    severity: str
    resource: str
    description: str


@dataclass(frozen=True)
class Stack:
    name: str
    template: dict[str, Any]
    template_file: Path
    paths: dict[str, str]
    """Each resource's construct path, by logical id."""


@dataclass(frozen=True)
class Assembly:
    """A cloud assembly directory: its stacks and its validation report's findings."""

    root: Path
    stacks: tuple[Stack, ...]
    findings: tuple[Finding, ...]

    @classmethod
    def read(cls, root: Path) -> Assembly | None:
        """The assembly in ``root``, or None when there is none (no ``manifest.json``)."""
        manifest = root / "manifest.json"
        if not manifest.is_file():
            return None
        stacks = []
        for name, artifact in json.loads(manifest.read_text())["artifacts"].items():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            template_file = root / artifact["properties"]["templateFile"]
            metadata = root / artifact.get("additionalMetadataFile", "")
            entries = json.loads(metadata.read_text()) if metadata.is_file() else {}
            paths = {
                entry["data"]: path.removeprefix("/")
                for path, listed in entries.items()
                for entry in listed
                if entry["type"] == "aws:cdk:logicalId"
            }
            template = json.loads(template_file.read_text())
            stacks.append(Stack(name, template, template_file, paths))
        report = root / _VALIDATION_REPORT
        plugins = json.loads(report.read_text())["pluginReports"] if report.is_file() else []
        findings = tuple(
            Finding(
                plugin["pluginName"],
                violation["ruleName"],
                violation["severity"],
                construct["constructPath"],
                violation["description"],
            )
            for plugin in plugins
            for violation in plugin["violations"]
            for construct in violation["violatingConstructs"]
        )
        return cls(root, tuple(stacks), findings)

    def of(self, settings: Settings) -> list[Stack]:
        """The environment's stacks: its pipeline stack (``cdk.app.stack_name``) and any
        named after it (``flightpipe-dev-...``)."""
        name = stack_name(settings)
        return [s for s in self.stacks if s.name == name or s.name.startswith(f"{name}-")]


# -- what one environment's review finds --------------------------------------------------------


def deployed(aws: AwsSettings, stacks: Iterable[Stack]) -> AwsSettings:
    """``aws`` with what ``stacks`` deploy in its place, the figures a cost depends on: each
    Glue job's workers (found by its script), the workgroup's base capacity (a workgroup
    deployed elsewhere keeps the settings')."""
    resources = [r for s in stacks for r in s.template["Resources"].values()]
    changed: dict[str, object] = {}
    for field, script in (("validation_job", VALIDATION_SCRIPT), ("load_job", LOAD_SCRIPT)):
        for resource in resources:
            props = resource.get("Properties", {})
            location = json.dumps(props.get("Command", {}).get("ScriptLocation"))
            if resource["Type"] == "AWS::Glue::Job" and f"/glue/{script}" in location:
                changed[field] = GlueJobSettings(
                    worker_type=props["WorkerType"],
                    workers=props["NumberOfWorkers"],
                    flex=props.get("ExecutionClass") == "FLEX",
                )
    for resource in resources:
        if resource["Type"] == "AWS::RedshiftServerless::Workgroup":
            changed["redshift_base_capacity"] = resource["Properties"]["BaseCapacity"]
    return aws.model_copy(update=changed)


def daily_cost(settings: Settings, stacks: Sequence[Stack]) -> list[Cost]:
    """One daily file's cost (``DAILY_FILE``) at the settings' prices, on what ``stacks``
    deploy."""
    return estimate(DAILY_FILE, settings.prices, deployed(settings.aws, stacks))


@dataclass(frozen=True)
class Changes:
    added: list[Acknowledgment]
    removed: list[Acknowledgment]
    changed: list[tuple[Acknowledgment, Acknowledgment]]
    """Each acknowledgment whose reason changed: the base's, then the head's."""


def compare(base: Iterable[Acknowledgment], head: Iterable[Acknowledgment]) -> Changes:
    """What the head acknowledges that the base did not, what it no longer acknowledges, and
    where it gives another reason; by resource and finding."""
    before = {(a.resource, a.id): a for a in base}
    after = {(a.resource, a.id): a for a in head}
    return Changes(
        added=[a for key, a in sorted(after.items()) if key not in before],
        removed=[a for key, a in sorted(before.items()) if key not in after],
        changed=[
            (before[key], a)
            for key, a in sorted(after.items())
            if key in before and before[key].reason != a.reason
        ],
    )


def _stack_acknowledgments(stacks: Iterable[Stack]) -> Iterator[Acknowledgment]:
    for stack in stacks:
        yield from acknowledgments(stack.template, stack.paths)


def _findings(assembly: Assembly | None, stacks: Sequence[Stack]) -> list[Finding]:
    names = {s.name for s in stacks}
    found = assembly.findings if assembly else ()
    return [f for f in found if f.resource.split("/", 1)[0] in names]


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cuttable:
    """Lines the report may cut from their end, to stay under ``COMMENT_LIMIT``, saying so."""

    lines: tuple[str, ...]
    unit: str
    """What a line is (``lines of the diff``, ``rows``), for the note saying how many were cut."""
    whole: str
    """Where the reader finds them all."""
    closing: str = ""
    """What must follow the lines kept (a code fence's end)."""

    def size(self) -> int:
        return sum(len(line) + 1 for line in self.lines)

    def note(self, cut: int) -> str:
        return (
            f"\n_{cut:,} of {len(self.lines):,} {self.unit} cut here to keep this report under "
            f"GitHub's limit of {COMMENT_LIMIT:,} characters for a comment; {self.whole}._\n"
        )

    def render(self, allowance: int) -> str:
        kept, used = 0, 0
        for line in self.lines:
            if used + len(line) + 1 > allowance:
                break
            kept, used = kept + 1, used + len(line) + 1
        text = "".join(f"{line}\n" for line in self.lines[:kept]) + self.closing
        return text + (self.note(len(self.lines) - kept) if kept < len(self.lines) else "")


Part = str | Cuttable


def fair_shares(budget: int, sizes: Sequence[int]) -> list[int]:
    """Each section's share of ``budget`` characters: an equal share each, and what a short
    section leaves of its share goes to the longer ones, so none is cut for another's length."""
    shares = [0] * len(sizes)
    left = max(budget, 0)
    for done, index in enumerate(sorted(range(len(sizes)), key=sizes.__getitem__)):
        shares[index] = min(sizes[index], left // (len(sizes) - done))
        left -= shares[index]
    return shares


def render(parts: Sequence[Part], limit: int = COMMENT_LIMIT) -> str:
    """The report in at most ``limit`` characters: the fixed parts whole, the cuttable ones
    each cut to its fair share of what is left (room kept for the note saying so)."""
    cuttable = [p for p in parts if isinstance(p, Cuttable)]
    fixed = sum(
        len(p) if isinstance(p, str) else len(p.closing) + len(p.note(len(p.lines))) for p in parts
    )
    shares = iter(fair_shares(limit - fixed, [c.size() for c in cuttable]))
    return "".join(p if isinstance(p, str) else p.render(next(shares)) for p in parts)


def _text(value: object) -> str:
    """``value`` as text in a table cell: on one line, its pipes escaped, no HTML (cdk-nag's
    findings hold ``<AWS::AccountId>``, which GitHub would drop as a tag)."""
    return " ".join(str(value).split()).replace("|", "\\|").replace("<", "&lt;")


def _code(value: object) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return f"`{text}`" if text else ""


_WHOLE_TABLE: Final = "run `python -m cdk.review` on the two assemblies for the whole table"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], whole: str | None = _WHOLE_TABLE
) -> list[Part]:
    """A Markdown table whose rows may be cut (saying where the ``whole`` is), or, with
    ``whole`` None, a table kept whole."""
    lines = tuple(f"| {' | '.join(row)} |" for row in rows)
    body: Part = Cuttable(lines, "rows", whole) if whole else "".join(f"{x}\n" for x in lines)
    return [f"| {' | '.join(header)} |\n|{'---|' * len(header)}\n", body, "\n"]


def _usd(value: float) -> str:
    return f"{value:.4f}"


def _change(base: float | None, head: float | None) -> str:
    """How much more (or less) the head costs, in USD; ``-`` when either has no cost."""
    return "-" if base is None or head is None else f"{head - base:+.4f}"


@dataclass
class Review:
    """The report's parts and the rules the head breaks, each in words naming what to fix."""

    parts: list[Part]
    problems: list[str]


def review(
    base: Assembly | None, head: Assembly | None, *, base_dir: Path, diffs: Path | None
) -> Review:
    """The report on ``head`` against ``base`` (None: that assembly is missing), with the
    ``cdk diff`` of each environment from ``diffs`` (None: the pull request has no AWS access)."""
    parts: list[Part] = [f"{MARKER}\n# Deployment review\n\n"]
    problems: list[str] = []
    if base is None:
        parts.append(
            f"**The base branch did not synthesize** (no cloud assembly in `{base_dir}`): "
            "everything below compares the pull request with nothing, so every acknowledgment "
            "shows as added and no cost has a base.\n\n"
        )
    if head is None:
        problems.append("the pull request did not synthesize: no cloud assembly to review")
        parts.append("**The pull request did not synthesize:** there is nothing to review.\n\n")
        return Review(parts, problems)
    summary: list[str] = []
    sections: list[Part] = []
    for env in DEPLOYED:
        settings = load_settings(env)
        head_stacks, base_stacks = head.of(settings), base.of(settings) if base else []
        if not head_stacks and not base_stacks:
            continue
        line, section = _environment(settings, base, head, (base_stacks, head_stacks), diffs)
        summary.append(line)
        sections.extend(section.parts)
        problems.extend(f"{env.value}: {p}" for p in section.problems)
    parts.append(
        "| environment | cdk diff | acknowledgments added, removed, changed | unacknowledged "
        "findings | cfn-lint errors, warnings | one daily file, base → head (USD) |\n"
        "|---|---|---|---|---|---|\n" + "".join(summary) + "\n"
    )
    if problems:
        parts.append(
            "**To fix before merging:**\n\n" + "".join(f"- {_text(p)}\n" for p in problems) + "\n"
        )
    parts.extend(sections)
    return Review(parts, problems)


def _environment(
    settings: Settings,
    base: Assembly | None,
    head: Assembly,
    stacks: tuple[Sequence[Stack], Sequence[Stack]],
    diffs: Path | None,
) -> tuple[str, Review]:
    """One environment's line of the summary and its section of the report; ``stacks`` are
    its base's and its head's."""
    base_stacks, head_stacks = stacks
    env = settings.env.value
    section = Review([f"## {env}\n\n"], [])
    if not head_stacks:
        section.parts.append("The pull request has no stack for this environment any more.\n\n")
    # The diff comes first: it is what a reviewer reads the report for.
    cells = [
        _diff(env, ", ".join(f"`{s.name}`" for s in head_stacks or base_stacks), diffs, section),
        _acknowledged(base_stacks, head_stacks, section),
        _unacknowledged(base, head, base_stacks, head_stacks, section),
        _linted(head_stacks, section),
        _cost(settings, base_stacks, head_stacks, section),
    ]
    return f"| {env} | {' | '.join(cells)} |\n", section


def _diff(env: str, stacks: str, diffs: Path | None, section: Review) -> str:
    section.parts.append("### cdk diff\n\n")
    diff_file = diffs / f"diff-{env}.txt" if diffs else None
    if diff_file is None:
        section.parts.append(
            f"No `cdk diff` of {stacks}: it reads the deployed stacks with the read-only "
            "role, and a pull request from a fork gets no AWS access. A maintainer's branch "
            "gets the diff.\n\n"
        )
        return "needs AWS access"
    if not diff_file.is_file():
        section.parts.append(
            f"No `cdk diff` of {stacks}: `{diff_file.name}` was not written (its step failed "
            "or did not run; its log says why).\n\n"
        )
        return "missing"
    text = _ANSI.sub("", diff_file.read_text()).rstrip("\n")
    lines = tuple(text.splitlines())
    # A fence longer than any run of backticks in the diff, so none of it closes the block.
    fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`+", text))])
    section.parts += [
        f"<details><summary><code>cdk diff</code> of {stacks} ({len(lines):,} "
        f"lines)</summary>\n\n{fence}text\n",
        Cuttable(lines, "lines of the diff", f"the whole diff is `{diff_file.name}`", f"{fence}\n"),
        "\n</details>\n\n",
    ]
    return f"{len(lines):,} lines"


def _acknowledged(
    base_stacks: Sequence[Stack], head_stacks: Sequence[Stack], section: Review
) -> str:
    head_acks = list(_stack_acknowledgments(head_stacks))
    changes = compare(_stack_acknowledgments(base_stacks), head_acks)
    section.parts.append("### cdk-nag acknowledgments\n\n")
    for ack in [*changes.added, *(after for _, after in changes.changed)]:
        if not explains(ack.reason):
            section.problems.append(
                f"{ack.resource} acknowledges {ack.id} with the reason {ack.reason!r} "
                f"({len(ack.reason.split())} words): say why it is acknowledged in "
                f"{REASON_MIN_WORDS} words or more, in the suppress(...) call (cdk/nag.py) "
                "that acknowledges it"
            )
    if not (changes.added or changes.removed or changes.changed):
        section.parts.append(f"None added, removed or changed ({len(head_acks):,} in all).\n\n")
    header = ("rule", "finding", "resource", "reason")
    for title, listed in (("Added", changes.added), ("Removed", changes.removed)):
        if listed:
            section.parts.append(f"{title} ({len(listed):,}):\n\n")
            section.parts += _table(
                header,
                [
                    (_code(a.rule), _code(a.finding), _code(a.resource), _text(a.reason))
                    for a in listed
                ],
            )
    if changes.changed:
        section.parts.append(f"Reason changed ({len(changes.changed):,}):\n\n")
        section.parts += _table(
            ("rule", "finding", "resource", "base's reason", "head's reason"),
            [
                (
                    _code(a.rule),
                    _code(a.finding),
                    _code(a.resource),
                    _text(b.reason),
                    _text(a.reason),
                )
                for b, a in changes.changed
            ],
        )
    return f"{len(changes.added)}, {len(changes.removed)}, {len(changes.changed)}"


def _unacknowledged(
    base: Assembly | None,
    head: Assembly,
    base_stacks: Sequence[Stack],
    head_stacks: Sequence[Stack],
    section: Review,
) -> str:
    found = _findings(head, head_stacks)
    before = {(f.plugin, f.rule, f.resource) for f in _findings(base, base_stacks)}
    section.parts.append("### Unacknowledged findings (validation report)\n\n")
    if not found:
        section.parts.append("None.\n\n")
    else:
        section.parts += _table(
            ("plugin", "rule", "severity", "resource", "description", "in the base too"),
            [
                (
                    _text(f.plugin),
                    _code(f.rule),
                    f.severity,
                    _code(f.resource),
                    _text(f.description),
                    "yes" if (f.plugin, f.rule, f.resource) in before else "no",
                )
                for f in found
            ],
        )
    section.problems += [
        f"{f.resource}: {f.rule} ({f.plugin}) is unacknowledged: fix the resource, or "
        "acknowledge the finding with a reason where it applies (suppress(...), cdk/nag.py)"
        for f in found
        if f.severity == "error"
    ]
    return str(len(found))


def _linted(head_stacks: Sequence[Stack], section: Review) -> str:
    linted = [(s, finding) for s in head_stacks for finding in cfn_lint(s.template_file)]
    errors = [(s, f) for s, f in linted if f.error]
    section.parts.append("### cfn-lint (the pull request's templates)\n\n")
    if not linted:
        section.parts.append("No finding.\n\n")
    else:
        section.parts += _table(
            ("template", "rule", "line", "message"),
            [
                (_code(s.template_file.name), _code(f.rule), str(f.line), _text(f.message))
                for s, f in [*errors, *(sf for sf in linted if not sf[1].error)]
            ],
        )
    section.problems += [
        f"cfn-lint {f.rule} in {s.template_file.name}, line {f.line}: {f.message}"
        for s, f in errors
    ]
    return f"{len(errors)}, {len(linted) - len(errors)}"


def _cost(
    settings: Settings,
    base_stacks: Sequence[Stack],
    head_stacks: Sequence[Stack],
    section: Review,
) -> str:
    base = {c.item: c for c in daily_cost(settings, base_stacks)} if base_stacks else {}
    head = {c.item: c for c in daily_cost(settings, head_stacks)} if head_stacks else {}
    section.parts.append(
        "### Cost of one daily file\n\n"
        "What one file a day costs on AWS (`pipeline.costs.DAILY_FILE`, the bench's counts for "
        "one file; the head's `PriceSettings`), on what each assembly deploys: its jobs' "
        "workers and its warehouse's base capacity.\n\n"
    )
    rows: list[tuple[str, ...]] = []
    for item in dict.fromkeys([*base, *head]):
        b, h = base.get(item), head.get(item)
        billed = h or b
        rows.append(
            (
                _text(item),
                _text(billed.billed_as if billed else ""),
                _usd(b.usd) if b else "-",
                _usd(h.usd) if h else "-",
                _change(b.usd if b else None, h.usd if h else None),
            )
        )
    base_total = sum(c.usd for c in base.values()) if base else None
    head_total = sum(c.usd for c in head.values()) if head else None
    change = _change(base_total, head_total)
    totals = ["-" if t is None else _usd(t) for t in (base_total, head_total)]
    rows.append(("**total**", "", *totals, f"**{change}**"))
    section.parts += _table(("item", "billed as (head)", "base", "head", "change"), rows, None)
    return f"{' → '.join(totals)} ({change})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cdk.review", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--base",
        type=Path,
        required=True,
        help="the base branch's cloud assembly (may be missing: its synthesis failed)",
    )
    parser.add_argument("--head", type=Path, required=True, help="the pull request's assembly")
    parser.add_argument(
        "--diffs",
        type=Path,
        help="the folder of diff-<env>.txt, each environment's `cdk diff` (leave out for a "
        "fork's pull request: it gets no AWS access)",
    )
    parser.add_argument("--out", type=Path, help="where to write the report (default: stdout)")
    args = parser.parse_args(argv)
    found = review(
        Assembly.read(args.base), Assembly.read(args.head), base_dir=args.base, diffs=args.diffs
    )
    text = render(found.parts)
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    for problem in found.problems:
        print(f"review: {problem}", file=sys.stderr)
    return 1 if found.problems else 0


if __name__ == "__main__":
    sys.exit(main())
