"""The data-quality report: a GX Data Docs page and a record per validation, and an index.

Everything lives under one root folder (locally the state folder's ``reports/``, on AWS a
prefix of the reports bucket):

- ``summaries/<month>/<file>@<version>/<validated at>.json``: the record of one validation,
  written once and never changed: the validation result as a plain document (the same one kept
  beside a quarantined file), when it ran and, when GX saw the file, its Data Docs page. Files
  GX never saw, such as unreadable ones, have a record too. ``<month>`` is the validation's
  (``2026-12``): an index is built from one month's records, so publishing costs what this
  month holds, never the whole history;
- ``uncommitted/validations/``: GX's validation results store;
- ``uncommitted/data_docs/local_site/``: the Data Docs site: each validation's page, written by
  the validation; ``index.html``, the current month's validations with links to the earlier
  months' indexes (``months/<month>.html``), which only ``build`` writes, from the records
  alone; and the static files. The site loads no script, stylesheet, font or image from
  elsewhere (``quality.site_assets``): on AWS its static files are deployed with the
  environment (``make package`` writes them), so a validation job uploads none.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.uploads import S3_REQUESTS_AT_ONCE
from quality.site_assets import copy_assets, localize

if TYPE_CHECKING:  # the gate imports GX, which takes seconds: only validations need it
    from quality.gate import Verdict

SITE = "local_site"
SITE_FOLDER = f"uncommitted/data_docs/{SITE}"
"""The Data Docs site, under the root."""
RESULTS_FOLDER = "uncommitted/validations"
"""GX's validation results store, under the root."""
RECORDS = "summaries"
MONTHS = "months"
"""Where in the site each month's index is, ``<month>.html``."""
BATCH = "upload"
"""GX's batch identifier of every validation: one uploaded file version is the whole batch."""


def result_document(uri: str, version: str, verdict: Verdict, report: str | None) -> dict[str, Any]:
    """A validation result as JSON: beside a quarantined file, in the records, in the CLI."""
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


def verdict_of(name: str, document: dict[str, Any]) -> Verdict:
    """The verdict of file ``name`` that a result document (``result_document``) holds: all
    of it but what no document keeps, the normalized bytes (a quarantined file has none) and
    GX's own result."""
    from quality.gate import Finding, Outcome, Verdict  # GX: only where a verdict is rebuilt

    return Verdict(
        name,
        Outcome(document["outcome"]),
        tuple(Finding(**finding) for finding in document["findings"]),
        sha256=document["sha256"],
        rows=document["rows"],
        details={"quirks": list(document["normalized"])},
    )


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
    """The report under ``root``: record validations, build the index, list the latest ones.

    Any number of these, in threads or processes, may record into one root at once: a
    validation writes only files of its own, each whole (readers never see part of one).

    ``published_at`` is where ``root`` is served from, when that is elsewhere (the reports
    bucket on AWS); locations handed out then point there instead of at local files.
    """

    def __init__(self, root: Path, published_at: str | None = None) -> None:
        self.root = root
        self.published_at = published_at

    def _location(self, path: Path) -> str:
        url = path.as_uri()
        if self.published_at is None:
            return url
        return url.replace(self.root.as_uri(), self.published_at.rstrip("/"), 1)

    @property
    def site(self) -> Path:
        """The Data Docs site's folder."""
        return self.root / SITE_FOLDER

    @property
    def index(self) -> Path:
        """The Data Docs site's index page."""
        return self.site / "index.html"

    @cached_property
    def _context(self) -> Any:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            FilesystemStoreBackendDefaults,
        )

        # The store's layout under the root is GX's own: RESULTS_FOLDER names it.
        config = DataContextConfig(
            store_backend_defaults=FilesystemStoreBackendDefaults(root_directory=str(self.root)),
            analytics_enabled=False,
        )
        return gx.get_context(mode="ephemeral", project_config=config)

    def record(self, uri: str, version: str, verdict: Verdict) -> str:
        """Store one validation, its page and its record; returns where to look.

        That is the Data Docs page when GX validated the file, else the record (an unreadable
        file has findings but no GX result). The index lists it once ``build`` ran.
        """
        now = dt.datetime.now(dt.UTC)
        run_name = _run_name(uri, version)
        record = self.root / RECORDS / _month(now) / run_name / f"{now:%Y%m%dT%H%M%S.%fZ}.json"
        page = None if verdict.validation is None else self._page(verdict, run_name, now)
        where = self._location(record if page is None else self.site / page["page"])
        document = result_document(uri, version, verdict, where)
        document["validated_at"] = now.isoformat()
        document["data_docs"] = page
        _write_whole(record, json.dumps(document, indent=2))
        return where

    def _page(self, verdict: Verdict, run_name: str, run_time: dt.datetime) -> dict[str, Any]:
        """Store GX's result and write the page GX renders of it; what the index needs of it."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        result = verdict.validation
        run_id = RunIdentifier(run_name=run_name, run_time=run_time)
        # The page names the run from the result itself.
        result.meta["run_id"] = run_id
        key: Any = ValidationResultIdentifier(  # GX's classes are untyped: Any, for mypy
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
            run_id=run_id,
            batch_identifier=BATCH,
        )
        self._context.validation_results_store.set(key, result)
        # Where GX's site builder would put it. Rendering it here instead spares a validation
        # the builder's index rebuild and its copy of the static folder.
        page = "/".join(("validations", *key.to_tuple())) + ".html"
        renderer: Any = ValidationResultsPageRenderer()
        html = _view(DefaultJinjaPageView).render(renderer.render(result))
        _write_whole(self.site / page, localize(html, depth=page.count("/")))
        return {
            "page": page,
            "suite": result.suite_name,
            "asset": result.asset_name,
            "success": bool(result.success),
        }

    def build(self) -> None:
        """Write the site's static files and this month's index: once per burst.

        Validations never write the index, so none can drop another's entry; builders need no
        lock between them either (``_until_stable``).
        """
        copy_assets(self.site)
        self._index(_month(dt.datetime.now(dt.UTC)))

    def _index(self, month: str) -> None:
        months = sorted(p.name for p in (self.root / RECORDS).glob("*") if p.is_dir())
        _until_stable(
            lambda: self._record_names(month), lambda names: self.write_index(month, names, months)
        )

    def remove(self, uri: str, versions: Iterable[str]) -> list[str]:
        """Remove every validation of these versions of one file: records, pages and GX's
        results, then rebuild the indexes that listed them. Returns the names removed."""

        def records() -> Iterator[tuple[str, str, bytes]]:
            for version in versions:
                for path in sorted(
                    (self.root / RECORDS).glob(f"*/{_run_name(uri, version)}/*.json")
                ):
                    name = path.relative_to(self.root).as_posix()
                    yield path.parent.parent.name, name, path.read_bytes()

        def delete(name: str) -> None:
            path = self.root / name
            path.unlink(missing_ok=True)
            # An empty folder would still list its month, or its file version.
            for folder in path.parents:
                if folder == self.root or any(folder.iterdir()):
                    break
                folder.rmdir()

        def rebuild(month: str) -> None:
            if self.index.exists():
                self._index(month)

        return _remove(records(), delete, rebuild)

    def _record_names(self, month: str) -> frozenset[str]:
        records = (self.root / RECORDS / month).glob("*/*.json")
        return frozenset(path.relative_to(self.root).as_posix() for path in records)

    def write_index(self, month: str, records: Iterable[str], months: Iterable[str]) -> list[Path]:
        """Write GX's index page of ``month``'s records (paths under ``root``), as GX renders
        it, as the site's index and as that month's; the other ``months`` are linked from the
        site's index. Returns the pages written."""
        from great_expectations.render.renderer import SiteIndexPageRenderer
        from great_expectations.render.view import DefaultJinjaIndexPageView

        renderer: Any = SiteIndexPageRenderer  # GX's classes are untyped: Any, for mypy
        view = _view(DefaultJinjaIndexPageView)
        # A record removed since it was listed (``remove``) is left out; the listing that
        # follows sees it gone, so ``_until_stable`` publishes again.
        names = sorted(n for n in records if (self.root / n).exists())
        earlier = sorted((m for m in months if m != month), reverse=True)
        pages = []
        for page, depth in ((self.index, 0), (self.site / MONTHS / f"{month}.html", 1)):
            to_root = "../" * (len(self.site.relative_to(self.root).parts) + depth)
            rows = [_index_row(json.loads((self.root / n).read_text()), to_root + n) for n in names]
            rendered = renderer.render({"site_name": SITE, "validations_links": rows})
            links = [(f"{'../' * depth}{MONTHS}/{m}.html", m) for m in earlier]
            _write_whole(page, localize(_with_months(view.render(rendered), links), depth=depth))
            pages.append(page)
        return pages

    def summary(self, uri: str, version: str) -> Summary | None:
        """The latest validation of one file version, if it was recorded here."""
        records = sorted(
            (self.root / RECORDS).glob(f"*/{_run_name(uri, version)}/*.json"),
            key=lambda path: path.name,
        )
        return Summary.of(json.loads(records[-1].read_text())) if records else None

    def latest(self) -> list[Summary]:
        """The latest validation of every file, by file name."""
        latest: dict[str, dict[str, Any]] = {}
        for path in (self.root / RECORDS).glob("*/*/*.json"):
            document = json.loads(path.read_text())
            current = latest.get(document["file"])
            if current is None or document["validated_at"] > current["validated_at"]:
                latest[document["file"]] = document
        return [Summary.of(d) for _, d in sorted(latest.items())]


@cache
def _view(kind: type) -> Any:
    """One GX page view of ``kind`` per process.

    Each view builds a Jinja environment of its own, and Jinja compiles a template once per
    environment: a view made per page compiled some thirty templates for every page.
    """
    return kind()


def _month(moment: dt.datetime) -> str:
    """The month a validation is filed under: its records and its index page."""
    return f"{moment:%Y-%m}"


def _with_months(html: str, links: Iterable[tuple[str, str]]) -> str:
    """The index page with a list of the earlier months' indexes before its end."""
    items = "".join(f'<li><a href="{href}">{month}</a></li>' for href, month in links)
    if not items:
        return html
    section = f'<div class="container"><h5>Earlier months</h5><ul>{items}</ul></div>'
    return html.replace("</body>", section + "</body>", 1)


def _run_name(uri: str, version: str) -> str:
    """What names one file version's validations: their pages, results and records."""
    return f"{uri.rsplit('/', 1)[-1]}@{version}"


def traces(record: str, document: dict[str, Any]) -> list[str]:
    """What one validation left under the root: its record (``record``, its name there) and,
    when GX saw the file, its page and GX's result, which ``_page`` stored under the same
    identifier (``validations/<suite>/<run>/<time>/<batch>``)."""
    found = [record]
    docs = document.get("data_docs")
    if docs:
        identifier = docs["page"].removeprefix("validations/").removesuffix(".html")
        found += [f"{SITE_FOLDER}/{docs['page']}", f"{RESULTS_FOLDER}/{identifier}.json"]
    return found


def _index_row(record: dict[str, Any], record_link: str) -> dict[str, Any]:
    """One validation as GX's index builder describes it to the index renderer, from its record.

    The keys are those of ``DefaultSiteIndexBuilder.add_resource_info_to_index_links_dict``. A
    file GX never saw links to its record. No suite pages are built: the suite links to the
    row's page too, not to a missing page.
    """
    docs = record["data_docs"] or {
        "page": record_link,
        "suite": "(unreadable file)",
        "asset": None,
        "success": False,
    }
    link = urllib.parse.quote(docs["page"])
    return {
        "expectation_suite_name": docs["suite"],
        "expectation_suite_filepath": link,
        "filepath": link,
        "run_name": _run_name(record["file"], record["version"]),
        "run_time": record["validated_at"],
        "validation_success": docs["success"],
        "asset_name": docs["asset"],
        "batch_identifier": BATCH,
    }


def _write_whole(path: Path, text: str) -> None:
    """Write a file under a temporary name, then rename it: readers see all of it or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=".", suffix=".tmp", delete=False
    ) as file:
        file.write(text)
    os.replace(file.name, path)


def _until_stable(
    listing: Callable[[], frozenset[str]], publish: Callable[[frozenset[str]], object]
) -> None:
    """Publish the index of the records ``listing`` finds, and look again until nothing is new.

    That lets builders run at once without a lock: a record missing from the index published
    last was stored after that builder's last look, so the build that follows the record
    looked later, and published later still, which contradicts "last".
    """
    published: frozenset[str] | None = None
    while (records := listing()) != published:
        publish(records)
        published = records


@dataclass(frozen=True)
class _Bucket:
    """A report's root in a bucket, worked on in ``workspace``: its records listed and fetched,
    and its indexes rebuilt from them."""

    s3: Any
    bucket: str
    prefix: str
    workspace: Path
    reports: QualityReports

    def keys(self, under: str, **listing: str) -> Iterator[dict[str, Any]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}{under}", **listing
        )
        for page in pages:
            yield from page.get("Contents", [])
            yield from page.get("CommonPrefixes", [])

    def months(self) -> list[str]:
        return [
            item["Prefix"].removeprefix(f"{self.prefix}{RECORDS}/").rstrip("/")
            for item in self.keys(f"{RECORDS}/", Delimiter="/")
        ]

    def fetch(self, name: str) -> None:
        """Download a record, unless it was removed since it was listed (a smoke test's)."""
        from botocore.exceptions import ClientError

        target = self.workspace / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.s3.download_file(self.bucket, self.prefix + name, str(target))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise
            target.unlink(missing_ok=True)

    def upload(self, path: Path) -> None:
        _upload(self.s3, self.bucket, self.prefix, self.workspace, path)

    def index(self, month: str) -> None:
        """Rebuild ``month``'s index from the bucket's records of that month alone."""

        def listing() -> frozenset[str]:
            found = (item["Key"] for item in self.keys(f"{RECORDS}/{month}/"))
            names = (key.removeprefix(self.prefix) for key in found)
            return frozenset(name for name in names if name.endswith(".json"))

        months = self.months()

        def publish(records: frozenset[str]) -> None:
            # Records never change: each is fetched once, however often the index is rebuilt.
            missing = [name for name in records if not (self.workspace / name).exists()]
            with ThreadPoolExecutor(S3_REQUESTS_AT_ONCE) as pool:
                list(pool.map(self.fetch, missing))
            for page in self.reports.write_index(month, records, months):
                self.upload(page)

        _until_stable(listing, publish)


@contextmanager
def published(
    s3: Any, bucket: str, prefix: str, workspace: Path, url: str | None = None
) -> Iterator[QualityReports]:
    """A report that lives in a bucket, worked on in an empty ``workspace`` (a job's disk).

    Nothing is read before the block: a validation writes its own page and record only. When
    the block ends, what the block wrote is uploaded and this month's index is rebuilt from the
    bucket's records of this month alone (small documents, each fetched once; no page, no
    result and no earlier month is read). The site's static files are not the job's: they are
    deployed with the environment.
    """
    reports = QualityReports(workspace, published_at=url or f"s3://{bucket}/{prefix}")
    yield reports
    site = _Bucket(s3, bucket, prefix, workspace, reports)
    written = [path for path in workspace.rglob("*") if path.is_file()]
    # Pages before records: the index links a page only once the page is there.
    for path in sorted(written, key=lambda p: p.is_relative_to(workspace / RECORDS)):
        site.upload(path)
    site.index(_month(dt.datetime.now(dt.UTC)))


def remove_published(
    s3: Any, bucket: str, prefix: str, workspace: Path, *, uri: str, versions: Iterable[str]
) -> list[str]:
    """``QualityReports.remove`` for a report that lives in a bucket (not versioned, so a
    deleted object is gone), worked on in an empty ``workspace``: the keys removed. A
    validation publishing at the same time may have listed a removed record: it leaves it out
    of its index once it finds it gone (``_Bucket.fetch``)."""
    site = _Bucket(s3, bucket, prefix, workspace, QualityReports(workspace))
    runs = [_run_name(uri, version) for version in versions]

    def records() -> Iterator[tuple[str, str, bytes]]:
        for month in site.months():
            for run in runs:
                for item in list(site.keys(f"{RECORDS}/{month}/{run}/")):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    yield month, item["Key"].removeprefix(prefix), body

    def delete(name: str) -> None:
        s3.delete_object(Bucket=bucket, Key=prefix + name)

    return [prefix + name for name in _remove(records(), delete, site.index)]


def _remove(
    records: Iterable[tuple[str, str, bytes]],
    delete: Callable[[str], None],
    rebuild: Callable[[str], None],
) -> list[str]:
    """Delete what each of ``records`` (month, name under the root, document) left
    (``traces``), then rebuild the indexes of their months, this month's last: each rebuild
    also writes the site's index page, which must end as this month's. The names removed."""
    removed: list[str] = []
    months = set()
    for month, name, document in records:
        months.add(month)
        for trace in traces(name, json.loads(document)):
            delete(trace)
            removed.append(trace)
    if removed:
        current = _month(dt.datetime.now(dt.UTC))
        for month in [*sorted(months - {current}), current]:
            rebuild(month)
    return removed


def write_static_site(folder: Path) -> None:
    """Write the site's static files into ``folder`` as they are laid out under the reports
    prefix: what is deployed with the environment (``make package`` writes it) for the
    validation jobs' pages to load."""
    copy_assets(QualityReports(folder).site)


def _upload(s3: Any, bucket: str, prefix: str, workspace: Path, path: Path) -> None:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    key = prefix + path.relative_to(workspace).as_posix()
    s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": kind})
