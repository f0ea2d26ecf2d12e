"""The validation job: one uploaded object in, promoted or quarantined out.

The gate (``quality.gate``) decides; this module moves the bytes. A daily file that may load is
promoted to the validated prefix as its normalized copy, where the bookmarked ETL job reads it;
a quarantined one moves to the quarantine prefix with its validation result beside it, and
never reaches the load. The airport dimension goes the same way, so a broken dimension never
replaces the last good one.

It speaks plain S3 through boto3, so the same code runs as a Glue job on AWS (``main``) and
in the local twin against its S3 endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from jobs.quarantine import RESULT_SUFFIX, quarantine
from pipeline.core.contract import (
    AIRPORTS,
    SOURCE_KEY,
    SOURCE_MODIFIED,
    SOURCE_SHA256,
    SOURCE_VERSION,
    header_names,
)
from pipeline.core.logs import configure_logging
from pipeline.core.settings import JobSettings
from pipeline.core.uploads import Upload, version_of
from quality.gate import (
    Outcome,
    Verdict,
    check_daily_file,
    check_dimension,
    refuse_oversized,
)
from quality.reports import published, result_document, verdict_of

log = logging.getLogger(__name__)


class Action(StrEnum):
    PROMOTED = "promoted"
    """Copied, normalized, to the validated location: the next load picks it up."""
    SUPERSEDED = "superseded"
    """Valid, but a newer upload of the same file is already promoted: nothing changes."""
    QUARANTINED = "quarantined"
    """Moved to quarantine with its validation result; nothing of it loads."""


@dataclass(frozen=True)
class Validated:
    """What the validation job did with one upload, and where to look."""

    upload: Upload
    verdict: Verdict
    action: Action
    destination_key: str
    """The promoted copy's key, or the quarantined copy's (its result sits beside it)."""
    report: str | None = None
    """Where the validation's page in the quality report is, when reports are recorded."""

    @property
    def destination(self) -> str:
        return f"s3://{self.upload.bucket}/{self.destination_key}"

    def alert(self) -> str | None:
        """The on-call alert for a quarantined upload: file, broken rules, observed, report."""
        if self.action is not Action.QUARANTINED:
            return None
        lines = [
            f"Quarantined {self.upload.uri} (version {self.upload.version}): nothing of it "
            "was loaded.",
            *(
                f"- {f.rule}: {f.observed}"
                for f in sorted(self.verdict.findings, key=lambda f: not f.blocking)
                if f.blocking
            ),
            f"The file and its validation result: {self.destination}",
        ]
        if self.report:
            lines.append(f"Quality report: {self.report}")
        lines.append("Fix the file and upload it again under the same name to load it.")
        return "\n".join(lines)


class ReportRecorder(Protocol):
    def record(self, uri: str, version: str, verdict: Verdict) -> str:
        """Store the validation result in the quality report; returns its page's location."""
        ...


class NoDimensionError(RuntimeError):
    """Daily files cannot be validated before a valid airport dimension exists."""


def known_airports(s3: Any, settings: JobSettings) -> list[int]:
    """The airport ids of the last valid dimension (its promoted, normalized copy)."""
    bucket, key = settings.dimension_bucket, settings.storage.validated_dimension_key
    try:
        body = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey as exc:
        raise NoDimensionError(
            f"no valid airport dimension at s3://{bucket}/{key}: "
            f"upload {settings.storage.dimension_key} first"
        ) from exc
    lines = body["Body"].read().decode("utf-8").splitlines()
    position = header_names(lines[0]).index(AIRPORTS.columns[0].source)
    return [int(line.split(",")[position]) for line in lines[1:] if line]


def validate_upload(
    s3: Any,
    settings: JobSettings,
    upload: Upload,
    today: dt.date,
    reports: ReportRecorder | None = None,
) -> Validated:
    """Validate one uploaded version, then promote or quarantine it.

    Re-running it for the same version is harmless: a promotion of the same source version is
    idempotent, and a version an earlier run quarantined (so it left the upload location) ends
    as that run did, from the result the quarantine kept beside the file.
    """
    storage = settings.storage
    is_dimension = (upload.bucket, upload.key) == (settings.dimension_bucket, storage.dimension_key)
    promoted_key = (
        storage.validated_dimension_key if is_dimension else storage.validated_prefix + upload.name
    )
    try:
        response = s3.get_object(Bucket=upload.bucket, Key=upload.key, VersionId=upload.version)
    except s3.exceptions.ClientError as exc:
        # S3's answer for a version id that no longer exists (ErrorResponses: NoSuchVersion).
        earlier = None
        if exc.response["Error"]["Code"] == "NoSuchVersion":
            earlier = _quarantined_before(s3, storage.quarantine_prefix + upload.name, upload)
        if earlier is None:
            raise
        return earlier
    modified: dt.datetime = response["LastModified"]
    verdict = refuse_oversized(upload.name, response["ContentLength"], settings.quality)
    if verdict is not None:
        response["Body"].close()  # too large to validate: never downloaded
    elif is_dimension:
        verdict = check_dimension(upload.name, response["Body"].read(), settings.quality)
    else:
        data = response["Body"].read()
        known = known_airports(s3, settings)
        name = upload.key.removeprefix(storage.raw_prefix)  # a sub-folder stays in the name
        verdict = check_daily_file(name, data, known, settings.quality, today)
    report = reports.record(upload.uri, upload.version, verdict) if reports else None
    if verdict.outcome is Outcome.QUARANTINED:
        destination = storage.quarantine_prefix + upload.name
        _quarantine(s3, destination, upload, verdict, report=report)
        action = Action.QUARANTINED
    else:
        destination = promoted_key
        promoted = _promote(s3, promoted_key, upload, modified, verdict)
        action = Action.PROMOTED if promoted else Action.SUPERSEDED
    log.info(
        "validated %s version=%s outcome=%s action=%s rows=%d",
        upload.uri,
        upload.version,
        verdict.outcome,
        action,
        verdict.rows,
        extra={"upload": upload.uri, "outcome": str(verdict.outcome), "action": str(action)},
    )
    return Validated(upload, verdict, action, destination, report)


def _quarantined_before(s3: Any, key: str, upload: Upload) -> Validated | None:
    """What an earlier run did with ``upload`` if it quarantined it to ``key``: the result it
    wrote beside the file (some version of it: a later upload of the name may have followed)."""
    result = key + RESULT_SUFFIX
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=upload.bucket, Prefix=result)
    for version in (v for page in pages for v in page.get("Versions", []) if v["Key"] == result):
        body = s3.get_object(Bucket=upload.bucket, Key=result, VersionId=version["VersionId"])
        document = json.loads(body["Body"].read())
        if document.get("version") == upload.version:
            verdict = verdict_of(upload.name, document)
            return Validated(upload, verdict, Action.QUARANTINED, key, document["report"])
    return None


def _promote(s3: Any, key: str, upload: Upload, modified: dt.datetime, verdict: Verdict) -> bool:
    """Write the normalized copy, unless a newer upload of the file exists or is promoted;
    return whether it was written.

    An upload that is no longer the latest version of its key has a successor that gets its
    own validation, so a slow validation of an older upload never overwrites a newer one; the
    promoted copy's metadata guards the rest of the race. Promoting the same version twice
    writes nothing the second time.
    """
    assert verdict.normalized is not None
    head = _head(s3, upload.bucket, upload.key)
    if not head or version_of(head) != upload.version:
        return False
    stamp = modified.astimezone(dt.UTC).isoformat()
    current = _head(s3, upload.bucket, key).get("Metadata", {})
    if current.get(SOURCE_VERSION) == upload.version or current.get(SOURCE_MODIFIED, "") > stamp:
        return False
    s3.put_object(
        Bucket=upload.bucket,
        Key=key,
        Body=verdict.normalized,
        ContentType="text/csv; charset=utf-8",
        # S3 keeps the copy's SHA-256, which the load records without reading the copy.
        ChecksumAlgorithm="SHA256",
        Metadata={
            SOURCE_VERSION: upload.version,
            SOURCE_KEY: quote(upload.key),
            SOURCE_MODIFIED: stamp,
            SOURCE_SHA256: verdict.sha256,
            "outcome": str(verdict.outcome),
        },
    )
    return True


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    """The object's HEAD response, or an empty dict when there is no such object."""
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return {}
        raise


def _quarantine(s3: Any, key: str, upload: Upload, verdict: Verdict, *, report: str | None) -> None:
    """Move the upload's bytes to ``key``, their validation result beside them."""
    metadata = {SOURCE_VERSION: upload.version}
    if verdict.sha256:  # a file refused unread has no digest
        metadata[SOURCE_SHA256] = verdict.sha256
    quarantine(
        s3,
        upload.bucket,
        (upload.key, upload.version),
        key,
        document=result_document(upload.uri, upload.version, verdict, report),
        metadata=metadata,
    )


# --- AWS Glue binding ------------------------------------------------------------------------

GLUE_ARGUMENTS = (
    "JOB_NAME",
    "settings",
    "dimension_bucket",
    "reports_bucket",
    "bucket",
    "key",
    "version_id",
)
"""What the entrypoint asks ``getResolvedOptions`` for: ``--settings`` is a default argument
of the job (``pipeline.workflow.job_arguments``), the rest the state machine passes per run."""


def parse_arguments(argv: Sequence[str]) -> tuple[JobSettings, Upload]:
    """The settings and the upload of one run, from the argument vector Glue hands the script.

    Bucket names are the ones the state machine passes (CDK's), never derived from an account.
    """
    from awsglue.utils import getResolvedOptions

    args = getResolvedOptions(list(argv), list(GLUE_ARGUMENTS))
    settings = JobSettings.model_validate_json(args["settings"]).with_buckets(
        {"dim": args["dimension_bucket"], "reports": args["reports_bucket"]}
    )
    return settings, Upload(args["bucket"], args["key"], args["version_id"])


@dataclass(frozen=True)
class ValidationBinding:
    """What one validation run reads and writes through, bound to where it runs."""

    s3: Any
    reports: ReportRecorder


class ValidationRuntime(Protocol):
    """Where a validation run runs: AWS Glue (``GlueValidation``) or the twin's endpoint."""

    def bind(self, settings: JobSettings) -> AbstractContextManager[ValidationBinding]:
        """The run's S3 client and quality report for the block; what the report needs once
        the validation is recorded (publishing it, say) happens when the block ends."""
        ...


class GlueValidation:
    """AWS Glue: logs in JSON lines for CloudWatch, boto3's S3 client, and the quality report
    published to the reports bucket from the job's own disk."""

    @contextmanager
    def bind(self, settings: JobSettings) -> Iterator[ValidationBinding]:
        import boto3

        configure_logging(json_lines=True, verbose=True)
        s3 = boto3.client("s3")
        with (
            tempfile.TemporaryDirectory() as workspace,
            published(
                s3, settings.reports_bucket, settings.storage.reports_prefix, Path(workspace)
            ) as reports,
        ):
            yield ValidationBinding(s3, reports)


def main(argv: Sequence[str], runtime: ValidationRuntime | None = None) -> Validated:
    """The entrypoint: validate the object the run names; a quarantined file fails the run.

    ``argv`` is the run's argument vector as Glue hands it over; ``runtime`` binds the run to
    where it runs (Glue unless given). Failing the run is how the state machine learns the
    outcome (``startJobRun.sync`` ends in a task failure); the alert text is the error message.
    """
    settings, upload = parse_arguments(argv)
    today = dt.datetime.now(dt.UTC).date()
    with (runtime or GlueValidation()).bind(settings) as bound:
        validated = validate_upload(bound.s3, settings, upload, today, bound.reports)
    alert = validated.alert()
    if alert is not None:
        raise QuarantinedError(alert)
    return validated


class QuarantinedError(RuntimeError):
    """The upload was quarantined; the message is the on-call alert."""


if __name__ == "__main__":
    main(sys.argv)
