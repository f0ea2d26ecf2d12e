"""The data-quality report: GX Data Docs over every validation, and a summary per file version.

Everything lives under one root folder (locally the state folder's ``reports/``):

- ``uncommitted/validations/`` and ``uncommitted/data_docs/local_site/``: the GX validation
  results store and the Data Docs site built from it, one page per validated file version and
  an index across runs;
- ``summaries/<file>@<version>.json``: the validation result as a plain document (the same one
  kept beside a quarantined file), for files GX never saw too, such as unreadable ones.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the gate imports GX, which takes seconds: only validations need it
    from quality.gate import Verdict

SITE = "local_site"


def result_document(uri: str, version: str, verdict: Verdict, report: str | None) -> dict[str, Any]:
    """A validation result as JSON: beside a quarantined file, in the summaries, in the CLI."""
    return {
        "file": uri,
        "version": version,
        "outcome": str(verdict.outcome),
        "rows": verdict.rows,
        "sha256": verdict.sha256,
        "findings": [
            {"rule": f.rule, "observed": f.observed, "blocking": f.blocking}
            for f in verdict.findings
        ],
        "normalized": verdict.details.get("quirks", []),
        "report": report,
    }


@dataclass(frozen=True)
class Summary:
    """One validated file version, as ``flightpipe report`` lists it."""

    file: str
    version: str
    outcome: str
    validated_at: str
    failed: tuple[str, ...]
    report: str | None
    reason: str
    """Every finding with what was observed, blocking first, in one line."""

    @classmethod
    def of(cls, document: dict[str, Any]) -> Summary:
        findings = sorted(document["findings"], key=lambda f: not f["blocking"])
        return cls(
            file=document["file"],
            version=document["version"],
            outcome=document["outcome"],
            validated_at=document["validated_at"],
            failed=tuple(f["rule"] for f in findings if f["blocking"]),
            report=document["report"],
            reason="; ".join(f"{f['rule']}: {f['observed']}" for f in findings),
        )


class QualityReports:
    """The report under ``root``: record validations, build pages, list the latest ones.

    ``published_at`` is where ``root`` is served from, when that is elsewhere (the reports
    bucket on AWS); locations handed out then point there instead of at local files.
    """

    def __init__(self, root: Path, published_at: str | None = None) -> None:
        self.root = root
        self.published_at = published_at
        self._unbuilt: list[Any] = []

    def _location(self, path_or_url: Path | str) -> str:
        url = path_or_url.as_uri() if isinstance(path_or_url, Path) else path_or_url
        if self.published_at is None:
            return url
        return url.replace(self.root.as_uri(), self.published_at.rstrip("/"), 1)

    @property
    def index(self) -> Path:
        """The Data Docs site's index page."""
        return self.root / "uncommitted" / "data_docs" / SITE / "index.html"

    @cached_property
    def _context(self) -> Any:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            FilesystemStoreBackendDefaults,
        )

        config = DataContextConfig(
            store_backend_defaults=FilesystemStoreBackendDefaults(root_directory=str(self.root)),
            analytics_enabled=False,
        )
        return gx.get_context(mode="ephemeral", project_config=config)

    def record(self, uri: str, version: str, verdict: Verdict) -> str:
        """Store one file version's validation; returns where to look once ``build`` ran.

        That is the Data Docs page when GX validated the file, else the summary document
        (an unreadable file has findings but no GX result).
        """
        now = dt.datetime.now(dt.UTC)
        run_name = _run_name(uri, version)
        report = self._store(verdict, run_name, now) if verdict.validation is not None else None
        summary = self._summary_path(run_name)
        summary.parent.mkdir(parents=True, exist_ok=True)
        where = report or self._location(summary)
        document = result_document(uri, version, verdict, where)
        document["validated_at"] = now.isoformat()
        summary.write_text(json.dumps(document, indent=2))
        return where

    def _store(self, verdict: Verdict, run_name: str, run_time: dt.datetime) -> str:
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        result = verdict.validation
        run_id = RunIdentifier(run_name=run_name, run_time=run_time)
        # The page's "Run Name" comes from the result itself, the breadcrumb from the key.
        result.meta["run_id"] = run_id
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
            run_id=run_id,
            batch_identifier="upload",
        )
        self._context.validation_results_store.set(key, result)
        self._unbuilt.append(key)
        page: str = self._context.get_docs_sites_urls(
            resource_identifier=key, only_if_exists=False
        )[0]["site_url"]
        return self._location(page)

    def build(self) -> None:
        """Render the pages of the validations recorded since the last build, and the index.

        Once per batch, not per file: the index is rebuilt from every stored result.
        """
        if self._unbuilt:
            self._context.build_data_docs(resource_identifiers=self._unbuilt)
            self._unbuilt = []

    def _summary_path(self, run_name: str) -> Path:
        return self.root / "summaries" / f"{run_name}.json"

    def summary(self, uri: str, version: str) -> Summary | None:
        """The validation of one file version, if it was recorded here."""
        path = self._summary_path(_run_name(uri, version))
        return Summary.of(json.loads(path.read_text())) if path.exists() else None

    def latest(self) -> list[Summary]:
        """The latest validation of every file, by file name."""
        latest: dict[str, dict[str, Any]] = {}
        for path in (self.root / "summaries").glob("*.json"):
            document = json.loads(path.read_text())
            current = latest.get(document["file"])
            if current is None or document["validated_at"] > current["validated_at"]:
                latest[document["file"]] = document
        return [Summary.of(d) for _, d in sorted(latest.items())]


def _run_name(uri: str, version: str) -> str:
    """What names one file version's validation: its page, result and summary."""
    return f"{uri.rsplit('/', 1)[-1]}@{version}"


# Read back before a validation: the results and summaries, and the result pages, which the
# index lists (it links the pages it finds, not the results). Fonts and styles are not needed.
_STORED = ("uncommitted/validations/", f"uncommitted/data_docs/{SITE}/validations/", "summaries/")


@contextmanager
def published(s3: Any, bucket: str, prefix: str, workspace: Path) -> Iterator[QualityReports]:
    """A report that lives in a bucket, worked on in ``workspace`` (on AWS, a job's disk).

    The stored results, pages and summaries are fetched first, so the rebuilt index lists
    every run;
    every file the block writes or changes is uploaded back when it ends. Two validations
    finishing at once can each upload an index missing the other's run; the next validation
    rebuilds it whole.
    """
    for stored in _STORED:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + stored)
        for item in (i for page in pages for i in page.get("Contents", [])):
            target = workspace / item["Key"].removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
    before = {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file()}
    reports = QualityReports(workspace, published_at=f"s3://{bucket}/{prefix}")
    yield reports
    reports.build()
    for path in sorted(p for p in workspace.rglob("*") if p.is_file()):
        if before.get(path) != path.stat().st_mtime_ns:
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            key = prefix + path.relative_to(workspace).as_posix()
            s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": kind})
