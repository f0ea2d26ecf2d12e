"""The validation job: uploaded objects in (its own, then those waiting beside it), each
promoted or quarantined out, each with its own result.

The gate (``quality.gate``) decides; this module moves the bytes. A daily file that may load is
promoted to the validated prefix as its normalized copy, where the bookmarked ETL job reads it;
a quarantined one moves to the quarantine prefix with its validation result beside it, and
never reaches the load. The airport dimension goes the same way, so a broken dimension never
replaces the last good one.

A run of the job validates the upload it names and then the daily files waiting beside it
(``main``), so a burst of uploads costs a few runs, not one each. Each upload version keeps its
own outcome in a result object of its own (``StorageSettings.result_key``): first a claim,
written only if no object is there (S3's conditional write), so exactly one run validates a
version; then the result, which a run whose upload another run validated reads as its own.

It speaks plain S3 through boto3, so the same code runs as a Glue job on AWS (``main``) and
in the local twin against its S3 endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol
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
from pipeline.core.errors import plain_error
from pipeline.core.logs import configure_logging
from pipeline.core.metrics import FILES_QUARANTINED, FILES_VALIDATED, client_config, put_metrics
from pipeline.core.settings import JobSettings, ValidationSettings
from pipeline.core.uploads import Upload, split_s3_uri, version_of
from quality.gate import (
    Outcome,
    UnreadableFileError,
    Verdict,
    check_daily_file,
    check_dimension,
    check_name,
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


# --- One run, many uploads: claims and results -----------------------------------------------

FAILED: Final = "failed"
"""The outcome of a version the job could not validate at all (an error, not a verdict)."""


@dataclass(frozen=True)
class Failed:
    """An upload version the job could not validate: the run that names it fails."""

    upload: Upload
    alert: str
    """The error in plain words (``plain_error``): the cause its run fails with."""
    error: Exception | None = None
    """The error itself, when this run raised it (not when another run's result told it)."""


Decided = Validated | Failed


class ValidationFailedError(RuntimeError):
    """Another run could not validate this run's upload; the message is its error."""


@dataclass(frozen=True)
class StaleClaim:
    """A claim older than ``claim_seconds``: its run died, so the version is anyone's."""

    etag: str
    """The claim object's ETag: taking it over is a write on that very object only."""


def _result_document(decided: Decided, run_id: str) -> dict[str, Any]:
    """What the version's result object holds: the outcome, the alert its run fails with, and
    the job run that validated it (``validated_by``, which the run's messages name)."""
    upload = decided.upload
    if isinstance(decided, Failed):
        return {
            "file": upload.uri,
            "version": upload.version,
            "outcome": FAILED,
            "alert": decided.alert,
            "validated_by": run_id,
        }
    return {
        **result_document(upload.uri, upload.version, decided.verdict, decided.report),
        "action": str(decided.action),
        "destination": decided.destination,
        "alert": decided.alert(),
        "validated_by": run_id,
    }


def _decided_from(upload: Upload, document: dict[str, Any]) -> Decided:
    """The outcome of ``upload`` that another run's result (``_result_document``) holds."""
    if document["outcome"] == FAILED:
        return Failed(upload, document["alert"])
    _, destination_key = split_s3_uri(document["destination"])
    verdict = verdict_of(upload.name, document)
    return Validated(
        upload, verdict, Action(document["action"]), destination_key, document["report"]
    )


def decide(
    s3: Any,
    settings: JobSettings,
    upload: Upload,
    today: dt.date,
    *,
    run_id: str,
    reports: ReportRecorder | None = None,
) -> Decided:
    """Validate a version this run claimed (``validate_upload``) and write its result over the
    claim. An error validating it is the version's outcome, not the run's: the result says it,
    for the run that names the version to fail with, and the log has the whole error."""
    try:
        decided: Decided = validate_upload(s3, settings, upload, today, reports)
    except Exception as exc:
        log.warning("could not validate %s version=%s", upload.uri, upload.version, exc_info=True)
        decided = Failed(upload, plain_error(exc), exc)
    _write_result(s3, settings, decided, run_id)
    return decided


def _write_result(s3: Any, settings: JobSettings, decided: Decided, run_id: str) -> None:
    upload = decided.upload
    s3.put_object(
        Bucket=upload.bucket,
        Key=settings.storage.result_key(upload.key, upload.version),
        Body=json.dumps(_result_document(decided, run_id), indent=2).encode(),
        ContentType="application/json",
    )


def _claim(s3: Any, bucket: str, key: str, run_id: str, stale: StaleClaim | None = None) -> bool:
    """Claim the version whose result object is ``key`` for this run: write the claim only
    where no object is (or only over the ``stale`` claim); whether this run won it."""
    claim = {"claimed_by": run_id, "claimed_at": dt.datetime.now(dt.UTC).isoformat()}
    condition = {"IfMatch": stale.etag} if stale else {"IfNoneMatch": "*"}
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(claim).encode(),
            ContentType="application/json",
            **condition,
        )
    except s3.exceptions.ClientError as exc:
        # S3's answer (HTTP 412) when the object is there, or is no longer the stale claim:
        # another run claimed the version first.
        if exc.response["Error"]["Code"] == "PreconditionFailed":
            return False
        raise
    return True


def _await_result(
    s3: Any, upload: Upload, key: str, limits: ValidationSettings
) -> Decided | StaleClaim:
    """The outcome another run's result at ``key`` gives ``upload``, once it is written; or,
    once the claim there is older than ``claim_seconds``, that stale claim."""
    while True:
        response = s3.get_object(Bucket=upload.bucket, Key=key)
        document = json.loads(response["Body"].read())
        if "outcome" in document:
            return _decided_from(upload, document)
        claimed_at = dt.datetime.fromisoformat(document["claimed_at"])
        age = (dt.datetime.now(dt.UTC) - claimed_at).total_seconds()
        if age >= limits.claim_seconds:
            log.warning(
                "the claim of %s on %s version=%s is %.0f s old: validating it here",
                document["claimed_by"],
                upload.uri,
                upload.version,
                age,
            )
            return StaleClaim(response["ETag"])
        time.sleep(min(limits.poll_seconds, limits.claim_seconds - age))


def _own_outcome(
    bound: ValidationBinding,
    settings: JobSettings,
    upload: Upload,
    today: dt.date,
    run_id: str,
    *,
    here: list[Decided],
) -> Decided:
    """The outcome of the run's own upload: validated here if this run claims it (then it is
    added to ``here``), else the result of the run that did, waited for while its claim holds
    (a stale one is taken over)."""
    key = settings.storage.result_key(upload.key, upload.version)
    stale: StaleClaim | None = None
    while not _claim(bound.s3, upload.bucket, key, run_id, stale):
        # Refused: a claim or a result is there.
        waited = _await_result(bound.s3, upload, key, settings.validation)
        if not isinstance(waited, StaleClaim):
            return waited
        stale = waited
    decided = decide(bound.s3, settings, upload, today, run_id=run_id, reports=bound.reports)
    here.append(decided)
    return decided


def _is_daily_file(name: str, today: dt.date) -> bool:
    """Whether the gate takes ``name`` (below the upload prefix) for a daily file's. An upload
    of any other name is left to its own run, which quarantines it."""
    try:
        check_name(name, today)
    except UnreadableFileError:
        return False
    return True


def _waiting(s3: Any, settings: JobSettings, bucket: str, today: dt.date) -> list[Upload]:
    """The latest version of each daily file under ``bucket``'s upload prefix, uploaded within
    ``waiting_seconds``, that has no result object yet: neither claimed nor validated."""
    storage = settings.storage

    def listed(operation: str, prefix: str, field: str) -> list[dict[str, Any]]:
        pages = s3.get_paginator(operation).paginate(Bucket=bucket, Prefix=prefix)
        return [item for page in pages for item in page.get(field, [])]

    # A result's key starts with its upload's key (``result_key``): these are the raw files'.
    results = storage.results_prefix + storage.raw_prefix
    decided = {o["Key"] for o in listed("list_objects_v2", results, "Contents")}
    # Older uploads are not waiting: their runs started long ago (or before batches existed).
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.validation.waiting_seconds)
    latest = (
        Upload(bucket, v["Key"], v["VersionId"])
        for v in listed("list_object_versions", storage.raw_prefix, "Versions")
        if v["IsLatest"] and v["LastModified"] >= since
    )
    return [
        upload
        for upload in latest
        if _is_daily_file(upload.key.removeprefix(storage.raw_prefix), today)
        and storage.result_key(upload.key, upload.version) not in decided
    ]


def _validate_waiting(
    bound: ValidationBinding,
    settings: JobSettings,
    bucket: str,
    today: dt.date,
    run_id: str,
    *,
    deadline: float,
    here: list[Decided],
) -> None:
    """Validate the daily files waiting in ``bucket``, one round after another (uploads keep
    landing), until the ``deadline`` (``time.monotonic``) passes or a round finds none to
    claim: at once if none was ever waiting (an upload alone), else once none has come for
    ``idle_seconds`` (a burst's next upload may be on its way). A file's quarantine never fails
    this run (its result tells its own run), nor does a file this run cannot validate (its claim
    is released for its own run). Each file validated is added to ``here`` as it is."""
    limits = settings.validation
    last_claim: float | None = None
    released: set[Upload] = set()
    while time.monotonic() < deadline:
        claimed = 0
        for upload in _waiting(bound.s3, settings, bucket, today):
            if time.monotonic() >= deadline:
                break
            key = settings.storage.result_key(upload.key, upload.version)
            if upload in released or not _claim(bound.s3, bucket, key, run_id):
                continue
            claimed += 1
            try:
                validated = validate_upload(bound.s3, settings, upload, today, bound.reports)
            except Exception:
                # Perhaps passing (a throttled call, a dimension still being validated): the
                # claim goes, and the file's own run validates it and reports what it finds.
                log.warning(
                    "could not validate the waiting %s version=%s: left to its own run",
                    upload.uri,
                    upload.version,
                    exc_info=True,
                )
                bound.s3.delete_object(Bucket=bucket, Key=key)
                released.add(upload)
                continue
            here.append(validated)  # promoted or quarantined now, whatever follows
            _write_result(bound.s3, settings, validated, run_id)
        if claimed:
            last_claim = time.monotonic()
            _log_round(claimed, bucket, settings)
        elif last_claim is None or time.monotonic() - last_claim >= limits.idle_seconds:
            _log_round(claimed, bucket, settings)
            return
        else:
            time.sleep(limits.poll_seconds)  # idle: look again soon, without a line per look


def _log_round(claimed: int, bucket: str, settings: JobSettings) -> None:
    log.info(
        "claimed %d waiting uploads in s3://%s/%s",
        claimed,
        bucket,
        settings.storage.raw_prefix,
        extra={"claimed": claimed},
    )


# --- AWS Glue binding ------------------------------------------------------------------------

GLUE_ARGUMENTS = (
    "JOB_NAME",
    "settings",
    "dimension_bucket",
    "reports_bucket",
    "reports_url",
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
    storage = settings.storage.model_copy(update={"reports_url": args["reports_url"]})
    settings = settings.model_copy(update={"storage": storage})
    return settings, Upload(args["bucket"], args["key"], args["version_id"])


def job_run_id(argv: Sequence[str]) -> str:
    """The run's id: Glue's parser reads ``--JOB_RUN_ID`` whatever it is asked for."""
    from awsglue.utils import getResolvedOptions

    run_id: str = getResolvedOptions(list(argv), [])["JOB_RUN_ID"]
    return run_id


@dataclass(frozen=True)
class ValidationBinding:
    """What one validation run reads and writes through, bound to where it runs."""

    s3: Any
    reports: ReportRecorder
    cloudwatch: Any
    """The client the run puts its metrics with (``put_validation_metrics``)."""


class ValidationRuntime(Protocol):
    """Where a validation run runs: AWS Glue (``GlueValidation``) or the twin's endpoint."""

    def bind(self, settings: JobSettings) -> AbstractContextManager[ValidationBinding]:
        """The run's S3 and CloudWatch clients and quality report for the block; what the
        report needs once the validation is recorded (publishing it, say) happens when the
        block ends."""
        ...


class GlueValidation:
    """AWS Glue: logs in JSON lines for CloudWatch, boto3's S3 and CloudWatch clients, and the
    quality report published to the reports bucket from the job's own disk."""

    @contextmanager
    def bind(self, settings: JobSettings) -> Iterator[ValidationBinding]:
        import boto3

        configure_logging(json_lines=True, verbose=True)
        s3 = boto3.client("s3")
        with (
            tempfile.TemporaryDirectory() as workspace,
            published(
                s3,
                settings.reports_bucket,
                settings.storage.reports_prefix,
                Path(workspace),
                settings.storage.reports_url,
            ) as reports,
        ):
            yield ValidationBinding(s3, reports, boto3.client("cloudwatch", config=client_config()))


def main(argv: Sequence[str], runtime: ValidationRuntime | None = None) -> Validated:
    """The entrypoint: validate the object the run names, then, for a daily file, the daily
    files waiting beside it; the run fails if its own upload was quarantined or failed.

    ``argv`` is the run's argument vector as Glue hands it over; ``runtime`` binds the run to
    where it runs (Glue unless given). Failing the run is how the state machine learns the
    outcome (``startJobRun.sync`` ends in a task failure); the alert text is the error message.
    The waiting files' outcomes are in their result objects only, for their own runs to read
    (``settings.validation``: how long a run keeps claiming them). Whatever the outcome, the
    run puts its metrics before it ends (``put_validation_metrics``).
    """
    started = time.monotonic()
    settings, upload = parse_arguments(argv)
    run_id = job_run_id(argv)
    today = dt.datetime.now(dt.UTC).date()
    here: list[Decided] = []  # what this run validated, its own upload and its batch's
    with (runtime or GlueValidation()).bind(settings) as bound:
        try:
            outcome = _own_outcome(bound, settings, upload, today, run_id, here=here)
            # Only an upload's own bucket is listed, and only below the upload prefix: the
            # dimension's run (its key is outside it) validates the dimension alone.
            if upload.key.startswith(settings.storage.raw_prefix):
                deadline = started + settings.validation.batch_seconds
                try:
                    _validate_waiting(
                        bound, settings, upload.bucket, today, run_id, deadline=deadline, here=here
                    )
                except Exception:
                    # The run's own upload is decided: the batch is extra, and files left in it
                    # are their own runs' to validate.
                    log.warning("the batch beside %s ended early", upload.uri, exc_info=True)
        finally:
            put_validation_metrics(bound.cloudwatch, settings, here)
    if isinstance(outcome, Failed):
        if outcome.error is not None:
            raise outcome.error
        raise ValidationFailedError(outcome.alert)
    alert = outcome.alert()
    if alert is not None:
        raise QuarantinedError(alert)
    return outcome


def put_validation_metrics(cloudwatch: Any, settings: JobSettings, here: Sequence[Decided]) -> bool:
    """Put how many versions this run found loadable and how many it quarantined, in one call
    at the run's end (``pipeline.core.metrics``); whether they were put (a failure is logged,
    never raised).

    One call per run, not per file: a burst's run validates dozens of files, each call costs
    a request, and the job role's calls are throttled per account and Region; the counts are
    summed per period on the dashboard either way. A run that validated nothing (its upload
    was another run's) puts zeros. A version it could not validate (``Failed``) is in neither
    count: its run fails, and the state machine's failed executions show it.
    """
    validated = [d for d in here if isinstance(d, Validated)]
    quarantined = sum(d.action is Action.QUARANTINED for d in validated)
    values = {FILES_VALIDATED: len(validated) - quarantined, FILES_QUARANTINED: quarantined}
    return put_metrics(cloudwatch, settings.env, values)


class QuarantinedError(RuntimeError):
    """The upload was quarantined; the message is the on-call alert."""


if __name__ == "__main__":
    main(sys.argv)
