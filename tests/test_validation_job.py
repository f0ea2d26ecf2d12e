"""The validation job against the twin's real S3: promotion, quarantine, dimension, ordering.

The gate's decisions are covered by the bad-input catalog; these tests cover what the job does
with them: which bytes end up where, with what beside them, and what the load can see.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.response
import psutil
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobs import validation
from jobs.validation import (
    Action,
    NoDimensionError,
    QuarantinedError,
    Upload,
    ValidationFailedError,
)
from pipeline import workflow
from pipeline.core.metrics import ENVIRONMENT, FILES_QUARANTINED, FILES_VALIDATED, NAMESPACE
from pipeline.core.settings import ValidationSettings
from pipeline.local.objects import ObjectVersion, object_cache
from pipeline.local.twin import LocalTwin
from pipeline.sample import SampleSpec, write_sample
from pipeline.settings import BUCKET_PURPOSES, Settings, load_settings
from quality.gate import Outcome
from tests.conftest import ENDPOINT_VALIDATION_WORKERS, get_object_calls
from tests.glue import glue_argv
from tests.test_metrics import Refusing, jobs_metric_calls, put_values

TODAY = dt.date(2026, 11, 26)
HEADER = "Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay"
GOOD = f"{HEADER}\nDL,10397,12892,5,-3\nAA,12892,10397,,\n"
AIRPORTS = "airport_id,city,state,name\n10397,Atlanta,GA,ATL\n12892,Los Angeles,CA,LAX\n"


@pytest.fixture
def twin(settings: Settings) -> LocalTwin:
    running = LocalTwin(settings)
    running.start()
    return running


def put(twin: LocalTwin, key: str, text: str | bytes, bucket: str | None = None) -> Upload:
    bucket = bucket or twin.settings.raw_bucket
    body = text.encode() if isinstance(text, str) else text
    response = twin.s3.put_object(Bucket=bucket, Key=key, Body=body)
    return Upload(bucket, key, response["VersionId"])


def dimension(twin: LocalTwin, text: str = AIRPORTS) -> Upload:
    return put(twin, twin.settings.storage.dimension_key, text, twin.settings.dimension_bucket)


def read(twin: LocalTwin, key: str, bucket: str | None = None) -> tuple[str, dict[str, str]]:
    response = twin.s3.get_object(Bucket=bucket or twin.settings.raw_bucket, Key=key)
    return response["Body"].read().decode(), response["Metadata"]


def keys(twin: LocalTwin, prefix: str) -> list[str]:
    return bucket_keys(twin.s3, twin.settings.raw_bucket, prefix)


def bucket_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_a_passing_file_is_promoted_as_its_normalized_copy(twin: LocalTwin) -> None:
    twin.validate(dimension(twin), TODAY)
    messy = (
        "\ufeffarrdelay,CARRIER,OriginAirportID,DestAirportID,DepDelay\r\n-3,DL,10397,12892,5\r\n"
    )
    upload = put(twin, "raw/2024-01-05.csv", messy)

    validated = twin.validate(upload, TODAY)

    assert validated.action is Action.PROMOTED
    assert validated.destination == f"s3://{twin.settings.raw_bucket}/validated/2024-01-05.csv"
    text, metadata = read(twin, "validated/2024-01-05.csv")
    assert text == f"{HEADER}\nDL,10397,12892,5,-3\n"
    assert metadata["source-version"] == upload.version
    assert metadata["source-key"] == upload.key
    assert metadata["source-sha256"] == validated.verdict.sha256
    assert keys(twin, "raw/") == ["raw/2024-01-05.csv"]  # the upload itself stays
    assert validated.alert() is None
    assert twin.validate(upload, TODAY).action is Action.SUPERSEDED  # promoted already
    # Written through: the copy S3 holds is in the object cache, so a load never downloads it.
    bucket, key = twin.settings.raw_bucket, "validated/2024-01-05.csv"
    head = twin.s3.head_object(Bucket=bucket, Key=key)
    s3 = twin.client("s3")
    downloads = get_object_calls(s3)
    copy = ObjectVersion(bucket, key, head["VersionId"], head["ContentLength"])
    cached = object_cache(twin.settings).get(s3, copy)
    assert downloads == []
    assert (cached.path.read_text(), cached.metadata) == (text, metadata)


def test_a_promoted_copy_carries_the_sha256_checksum_of_its_own_bytes(twin: LocalTwin) -> None:
    """S3 keeps it with the copy, so the load records the copy's digest from a HEAD without
    reading the copy (``jobs.glue_source``)."""
    twin.validate(dimension(twin), TODAY)
    upload = put(twin, "raw/2024-01-05.csv", f"\ufeff{HEADER}\r\nDL,10397,12892,5,-3\r\n")
    twin.validate(upload, TODAY)

    bucket, key = twin.settings.raw_bucket, "validated/2024-01-05.csv"
    head = twin.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    copy = twin.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = base64.b64decode(head["ChecksumSHA256"]).hex()
    assert digest == hashlib.sha256(copy).hexdigest()
    # The copy is normalized: the upload's digest, in the copy's metadata, is another.
    assert head["Metadata"]["source-sha256"] != digest


def test_a_failing_file_moves_to_quarantine_with_its_result_and_an_alert(
    twin: LocalTwin,
) -> None:
    twin.validate(dimension(twin), TODAY)
    bad = f"{HEADER}\nDL,10397,12892,late,1\nxyz,10397,12892,1,1\n"
    upload = put(twin, "raw/2024-01-06.csv", bad)

    validated = twin.validate(upload, TODAY)

    assert validated.action is Action.QUARANTINED
    assert keys(twin, "validated/") == []
    assert keys(twin, "raw/") == []  # moved: this version left the upload location
    assert read(twin, "quarantine/2024-01-06.csv")[0] == bad
    result = json.loads(read(twin, "quarantine/2024-01-06.csv.validation.json")[0])
    assert result["outcome"] == "quarantined"
    assert result["version"] == upload.version
    rules = " ".join(f["rule"] + " " + f["observed"] for f in result["findings"])
    assert "Carrier 'xyz' is not two capital letters or digits (line 3)" in rules
    assert "DepDelay 'late' is not a whole number (line 2)" in rules
    alert = validated.alert()
    assert alert is not None
    assert upload.uri in alert
    assert upload.version in alert
    assert "- DepDelay: 'late' is not a whole number (line 2)" in alert
    assert "- Carrier: 'xyz' is not two capital letters or digits (line 3)" in alert
    assert validated.report is not None
    assert validated.report in alert
    assert "quarantine/2024-01-06.csv" in alert


def test_a_fixed_file_uploaded_again_after_quarantine_is_promoted(twin: LocalTwin) -> None:
    twin.validate(dimension(twin), TODAY)
    bad = put(twin, "raw/2024-01-06.csv", f"{HEADER}\nDL,10397,12892,late,1\n")
    assert twin.validate(bad, TODAY).action is Action.QUARANTINED

    fixed = twin.validate(put(twin, "raw/2024-01-06.csv", GOOD), TODAY)

    assert fixed.action is Action.PROMOTED
    assert read(twin, "validated/2024-01-06.csv")[0] == GOOD


def test_unreadable_and_misnamed_uploads_are_quarantined_with_a_reason(twin: LocalTwin) -> None:
    twin.validate(dimension(twin), TODAY)
    cases = {
        "raw/notes.txt": ("hello", "YYYY-MM-DD.csv"),
        "raw/2024/2024-01-05.csv": (GOOD, "directly under the upload prefix"),
        "raw/2024-01-07.csv": (b"\x1f\x8b\x08\x00gzip", "gzip"),
    }
    for key, (content, reason) in cases.items():
        validated = twin.validate(put(twin, key, content), TODAY)
        assert validated.action is Action.QUARANTINED, key
        assert reason in validated.verdict.reason
        assert validated.alert() is not None
    assert keys(twin, "validated/") == []


def test_an_older_upload_validated_late_never_replaces_a_newer_one(twin: LocalTwin) -> None:
    twin.validate(dimension(twin), TODAY)
    older = put(twin, "raw/2024-01-05.csv", GOOD)
    newer = put(twin, "raw/2024-01-05.csv", f"{HEADER}\nUA,12892,10397,1,2\n")

    assert twin.validate(newer, TODAY).action is Action.PROMOTED
    assert twin.validate(older, TODAY).action is Action.SUPERSEDED
    assert twin.validate(newer, TODAY).action is Action.SUPERSEDED  # a repeat writes nothing

    text, metadata = read(twin, "validated/2024-01-05.csv")
    assert "UA,12892,10397,1,2" in text
    assert metadata["source-version"] == newer.version
    versions = twin.s3.list_object_versions(
        Bucket=twin.settings.raw_bucket, Prefix="validated/2024-01-05.csv"
    )["Versions"]
    assert len(versions) == 1


def test_daily_files_wait_for_a_valid_dimension(twin: LocalTwin) -> None:
    upload = put(twin, "raw/2024-01-05.csv", GOOD)

    with pytest.raises(NoDimensionError, match=r"upload airport_codes\.csv first"):
        twin.validate(upload, TODAY)

    assert keys(twin, "raw/") == ["raw/2024-01-05.csv"]  # still there, to validate later


def test_a_broken_dimension_is_refused_and_the_last_good_one_stays_in_use(
    twin: LocalTwin,
) -> None:
    twin.validate(dimension(twin), TODAY)
    broken = "airport_id,city,state,name\n10397,Atlanta,GA,ATL\n10397,Again,GA,ATL2\n"

    refused = twin.validate(dimension(twin, broken), TODAY)

    assert refused.action is Action.QUARANTINED
    assert "airport_id: '10397' appears more than once" in refused.verdict.reason
    bucket = twin.settings.dimension_bucket
    in_use, _ = read(twin, twin.settings.storage.validated_dimension_key, bucket)
    assert in_use == AIRPORTS
    # Daily files are still checked against the last good dimension.
    assert twin.validate(put(twin, "raw/2024-01-05.csv", GOOD), TODAY).action is Action.PROMOTED


def test_a_new_dimension_applies_to_validations_from_then_on(twin: LocalTwin) -> None:
    twin.validate(dimension(twin), TODAY)
    unknown = f"{HEADER}\nDL,10397,55555,5,-3\n"
    first = twin.validate(put(twin, "raw/2024-01-05.csv", unknown), TODAY)
    assert first.verdict.outcome is Outcome.QUARANTINED  # every flight has an unknown end

    twin.validate(dimension(twin, AIRPORTS + "55555,Boise,ID,BOI\n"), TODAY)
    second = twin.validate(put(twin, "raw/2024-01-05.csv", unknown), TODAY)

    assert second.action is Action.PROMOTED


# --- the Glue entrypoint ---------------------------------------------------------------------


@pytest.fixture
def glue_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, Any]]:
    """moto in-process as AWS, its buckets made."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # CDK's bucket names, in an account of the test's.
    buckets = {purpose: f"flightpipe-{purpose}-dev-111111111111" for purpose in BUCKET_PURPOSES}
    settings = load_settings("dev", storage={"buckets": buckets})
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=settings.reports_bucket)
        for bucket in (settings.raw_bucket, settings.dimension_bucket):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield settings, s3


def run_id_of(argv: list[str]) -> str:
    return argv[argv.index("--JOB_RUN_ID") + 1]


def validation_argv(
    settings: Settings, upload: Upload, run: int, batch: ValidationSettings | None = None
) -> list[str]:
    """The validation run's arguments as the state machine passes them, handed over by Glue;
    with ``batch``, the job's ``--settings`` carry those validation settings."""
    arguments = workflow.job_arguments(settings)
    if batch is not None:
        job = settings.job_settings().model_copy(update={"validation": batch})
        arguments["--settings"] = job.model_dump_json()
    arguments |= {
        "--dimension_bucket": settings.dimension_bucket,
        "--reports_bucket": settings.reports_bucket,
        "--reports_url": f"s3://{settings.reports_bucket}/{settings.storage.reports_prefix}",
        "--bucket": upload.bucket,
    }
    arguments |= {"--key": upload.key, "--version_id": upload.version}
    return glue_argv("validate.py", arguments, job_name="flightpipe-dev-validate", run=run)


def test_glue_validation_run_promotes_and_fails_the_run_on_quarantine(
    glue_settings: tuple[Settings, Any],
) -> None:
    settings, s3 = glue_settings

    def upload(bucket: str, key: str, text: str) -> Upload:
        response = s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
        return Upload(bucket, key, response["VersionId"])

    dim = upload(settings.dimension_bucket, "airport_codes.csv", AIRPORTS)
    assert validation.main(validation_argv(settings, dim, run=1)).action is Action.PROMOTED
    good = upload(settings.raw_bucket, "raw/2024-01-05.csv", GOOD)
    assert validation.main(validation_argv(settings, good, run=2)).action is Action.PROMOTED

    bad = upload(settings.raw_bucket, "raw/2024-01-06.csv", f"{HEADER}\nDL,0,12892,1,1\n")
    with pytest.raises(QuarantinedError, match=r"Quarantined s3://.*/raw/2024-01-06.csv") as alert:
        validation.main(validation_argv(settings, bad, run=3))

    # The report lives in the reports bucket; each run's index lists the earlier runs too.
    site = f"s3://{settings.reports_bucket}/quality/uncommitted/data_docs/local_site/"
    assert f"Quality report: {site}validations/daily_flights/2024-01-06.csv%40" in str(alert.value)
    index = s3.get_object(
        Bucket=settings.reports_bucket, Key="quality/uncommitted/data_docs/local_site/index.html"
    )
    assert index["ContentType"] == "text/html"
    html = index["Body"].read().decode()
    for run in (f"2024-01-05.csv@{good.version}", f"2024-01-06.csv@{bad.version}"):
        assert urllib.parse.quote(run) in html
    summaries = s3.list_objects_v2(Bucket=settings.reports_bucket, Prefix="quality/summaries/")
    assert len(summaries["Contents"]) == 3  # the dimension and both daily files

    listed = s3.list_objects_v2(Bucket=settings.raw_bucket)["Contents"]
    results = settings.storage.results_prefix
    assert sorted(o["Key"] for o in listed if not o["Key"].startswith(results)) == [
        "quarantine/2024-01-06.csv",
        "quarantine/2024-01-06.csv.validation.json",
        "raw/2024-01-05.csv",
        "validated/2024-01-05.csv",
    ]


def upload_to(s3: Any, bucket: str, key: str, body: bytes) -> Upload:
    return Upload(bucket, key, s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"])


@pytest.mark.parametrize(
    "name",
    ["Dallas/Fort Worth International " * 9, "\u00e9" * 200],
    ids=["wider than the column", "multibyte: fits in characters, not in bytes"],
)
def test_a_dimension_the_warehouse_cannot_hold_never_becomes_the_one_in_use(
    glue_settings: tuple[Settings, Any], name: str
) -> None:
    settings, s3 = glue_settings
    bucket, key = settings.dimension_bucket, settings.storage.dimension_key
    good = upload_to(s3, bucket, key, AIRPORTS.encode())
    assert (
        validation.validate_upload(s3, settings.job_settings(), good, TODAY).action
        is Action.PROMOTED
    )

    wide = upload_to(s3, bucket, key, f"{AIRPORTS}11298,Dallas,TX,{name}\n".encode())
    refused = validation.validate_upload(s3, settings.job_settings(), wide, TODAY)

    assert refused.action is Action.QUARANTINED
    alert = refused.alert()
    assert alert is not None
    assert "- name: '" in alert
    assert "over the column's 256 bytes (line 4)" in alert
    in_use = s3.get_object(Bucket=bucket, Key=settings.storage.validated_dimension_key)
    assert in_use["Body"].read().decode() == AIRPORTS
    assert in_use["Metadata"]["source-version"] == good.version


def test_an_upload_over_the_size_limit_is_quarantined_without_being_downloaded(
    glue_settings: tuple[Settings, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, s3 = glue_settings
    limited = settings.model_copy(
        update={"quality": settings.quality.model_copy(update={"max_file_bytes": 100})}
    )
    body = (GOOD + "DL,10397,12892,5,-3\n" * 10).encode()
    upload = upload_to(s3, settings.raw_bucket, "raw/2024-01-05.csv", body)

    def no_download(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the oversized upload was downloaded")

    with monkeypatch.context() as patched:
        patched.setattr(botocore.response.StreamingBody, "read", no_download)
        validated = validation.validate_upload(s3, limited.job_settings(), upload, TODAY)

    assert validated.action is Action.QUARANTINED
    alert = validated.alert()
    assert alert is not None
    assert f"- file size: the file is {len(body)} bytes, over the limit of 100 bytes" in alert
    moved = s3.get_object(Bucket=settings.raw_bucket, Key="quarantine/2024-01-05.csv")
    assert moved["Body"].read() == body
    assert moved["Metadata"] == {"source-version": upload.version}
    left = s3.list_object_versions(Bucket=settings.raw_bucket, Prefix="raw/")
    assert "Versions" not in left


def glue_dimension(settings: Settings, s3: Any) -> None:
    """Upload the airport dimension and validate it, as the validation job's first run."""
    dimension = upload_to(s3, settings.dimension_bucket, "airport_codes.csv", AIRPORTS.encode())
    validation.main(validation_argv(settings, dimension, run=1))


def test_a_retried_run_of_a_quarantined_upload_ends_as_the_first_run_did(
    glue_settings: tuple[Settings, Any],
) -> None:
    """Glue may run a failed job again (the job's MaxRetries): the quarantine moved the upload's
    version away, and the retry must still say what the first run said, not NoSuchVersion."""
    settings, s3 = glue_settings
    glue_dimension(settings, s3)
    body = f"{HEADER}\nDL,0,12892,1,1\n".encode()
    bad = upload_to(s3, settings.raw_bucket, "raw/2024-01-06.csv", body)
    # A later upload of the same name, quarantined too, must not answer for the first.
    with pytest.raises(QuarantinedError) as first:
        validation.main(validation_argv(settings, bad, run=2))
    later = upload_to(s3, settings.raw_bucket, "raw/2024-01-06.csv", body + b"DL,1,2,3,4\n")
    with pytest.raises(QuarantinedError):
        validation.main(validation_argv(settings, later, run=3))

    with pytest.raises(QuarantinedError) as retried:
        validation.main(validation_argv(settings, bad, run=2))

    assert str(retried.value) == str(first.value)
    records = s3.list_objects_v2(Bucket=settings.reports_bucket, Prefix="quality/summaries/")
    assert len(records["Contents"]) == 3  # the retry validated nothing again


def test_a_retried_run_of_a_quarantined_upload_gets_the_first_runs_whole_verdict(
    glue_settings: tuple[Settings, Any],
) -> None:
    """The verdict rebuilt from the result beside the quarantined file is the one the gate
    gave: findings, digest, rows, and the transport quirks it normalized on the way."""
    settings, s3 = glue_settings
    glue_dimension(settings, s3)
    # Quarantined (airport id 0), with quirks: a byte-order mark and CRLF line endings.
    body = f"\ufeff{HEADER}\r\nDL,0,12892,1,1\r\n".encode()
    bad = upload_to(s3, settings.raw_bucket, "raw/2024-01-06.csv", body)
    first = validation.validate_upload(s3, settings.job_settings(), bad, TODAY)
    assert first.action is Action.QUARANTINED
    assert first.verdict.details["quirks"]

    retried = validation.validate_upload(s3, settings.job_settings(), bad, TODAY)

    assert retried.action is Action.QUARANTINED
    assert retried.verdict == first.verdict


# --- One run validates the uploads waiting beside its own ------------------------------------

BAD = f"{HEADER}\nDL,0,12892,1,1\n"  # airport id 0: quarantined


def result_of(settings: Settings, s3: Any, upload: Upload) -> dict[str, Any] | None:
    """The upload version's result object (a claim or a result), if there is one."""
    key = settings.storage.result_key(upload.key, upload.version)
    try:
        response = s3.get_object(Bucket=upload.bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    assert response["ContentType"] == "application/json"
    document: dict[str, Any] = json.loads(response["Body"].read())
    return document


def records(settings: Settings, s3: Any) -> int:
    """How many validations the quality report has recorded."""
    listed = s3.list_objects_v2(Bucket=settings.reports_bucket, Prefix="quality/summaries/")
    return len(listed.get("Contents", []))


def claim(settings: Settings, s3: Any, upload: Upload, run_id: str, age_seconds: float) -> None:
    """Claim ``upload`` for the run ``run_id``, as of ``age_seconds`` ago."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_seconds)
    s3.put_object(
        Bucket=upload.bucket,
        Key=settings.storage.result_key(upload.key, upload.version),
        Body=json.dumps({"claimed_by": run_id, "claimed_at": at.isoformat()}).encode(),
        ContentType="application/json",
    )


def test_a_run_validates_the_uploads_waiting_beside_its_own_each_with_its_own_outcome(
    glue_settings: tuple[Settings, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, s3 = glue_settings
    glue_dimension(settings, s3)
    raw = settings.raw_bucket
    own = upload_to(s3, raw, "raw/2024-01-05.csv", GOOD.encode())
    waiting = upload_to(s3, raw, "raw/2024-01-06.csv", GOOD.encode())
    bad = upload_to(s3, raw, "raw/2024-01-07.csv", BAD.encode())
    misnamed = upload_to(s3, raw, "raw/notes.txt", b"hello")  # left to its own run

    validated = validation.main(validation_argv(settings, own, run=2))

    # Its own file was good: the run succeeds, although a waiting file was quarantined.
    assert validated.action is Action.PROMOTED
    results = {u.key: result_of(settings, s3, u) for u in (own, waiting, bad)}
    assert {key: (r or {}).get("outcome") for key, r in results.items()} == {
        own.key: "passed",
        waiting.key: "passed",
        bad.key: "quarantined",
    }
    assert result_of(settings, s3, misnamed) is None
    for upload in (own, waiting, bad):
        result = results[upload.key]
        assert result is not None
        assert (result["file"], result["version"]) == (upload.uri, upload.version)
        # Its own page in the report, and this run named as the one that validated it.
        assert urllib.parse.quote(f"{upload.name}@{upload.version}") in result["report"]
        assert result["validated_by"] == run_id_of(validation_argv(settings, own, run=2))
    assert records(settings, s3) == 4  # the dimension and the three daily files
    bad_result = results[bad.key]
    assert bad_result is not None
    assert bad_result["action"] == "quarantined"
    assert bad_result["alert"].startswith(f"Quarantined {bad.uri} (version {bad.version})")
    assert bad_result["report"] in bad_result["alert"]
    assert results[own.key] == {**results[own.key], "action": "promoted", "alert": None}
    listed = s3.list_objects_v2(Bucket=raw)["Contents"]
    assert {o["Key"] for o in listed} >= {
        "validated/2024-01-05.csv",
        "validated/2024-01-06.csv",
        "quarantine/2024-01-07.csv",
    }
    # The job logs in JSON lines, one a round of the batch.
    logged = [json.loads(line)["message"] for line in capsys.readouterr().err.splitlines()]
    rounds = [message.split(" in ")[0] for message in logged if message.startswith("claimed ")]
    assert rounds == [
        "claimed 2 waiting uploads",
        "claimed 0 waiting uploads",
    ]

    # The waiting files' own runs end with those outcomes, validating nothing again.
    with pytest.raises(QuarantinedError) as alert:
        validation.main(validation_argv(settings, bad, run=3))
    assert str(alert.value) == bad_result["alert"]
    assert validation.main(validation_argv(settings, waiting, run=4)).action is Action.PROMOTED
    assert records(settings, s3) == 4


def test_the_batch_leaves_a_version_another_run_claimed_to_that_run(
    glue_settings: tuple[Settings, Any],
) -> None:
    settings, s3 = glue_settings
    glue_dimension(settings, s3)
    raw = settings.raw_bucket
    own = upload_to(s3, raw, "raw/2024-01-05.csv", GOOD.encode())
    claimed = upload_to(s3, raw, "raw/2024-01-06.csv", GOOD.encode())
    unclaimed = upload_to(s3, raw, "raw/2024-01-07.csv", GOOD.encode())
    claim(settings, s3, claimed, "jr_other", age_seconds=1)

    validation.main(validation_argv(settings, own, run=2))

    assert (result_of(settings, s3, unclaimed) or {}).get("outcome") == "passed"
    assert "outcome" not in (result_of(settings, s3, claimed) or {})  # still the claim
    promoted = ["validated/2024-01-05.csv", "validated/2024-01-07.csv"]
    assert bucket_keys(s3, raw, "validated/") == promoted
    assert records(settings, s3) == 3


@pytest.mark.parametrize(
    ("dimension", "body"),
    [(True, GOOD), (True, BAD), (False, GOOD)],
    ids=["passed", "quarantined", "failed: no dimension"],
)
def test_a_run_whose_upload_another_run_claimed_takes_that_runs_outcome(
    glue_settings: tuple[Settings, Any], dimension: bool, body: str
) -> None:
    settings, s3 = glue_settings
    if dimension:
        glue_dimension(settings, s3)
    own = upload_to(s3, settings.raw_bucket, "raw/2024-01-05.csv", body.encode())
    claim(settings, s3, own, "jr_other", age_seconds=0)
    before = records(settings, s3)
    outcomes: list[Any] = []

    def other_run() -> None:
        """The claimant, a moment later: it validates the upload and writes its result."""
        time.sleep(1.5)
        job = settings.job_settings()
        outcomes.append(
            validation.decide(s3, job, own, dt.datetime.now(dt.UTC).date(), run_id="jr_other")
        )

    other = threading.Thread(target=other_run)
    other.start()
    started = time.monotonic()
    try:
        quick = ValidationSettings(poll_seconds=0.1)
        if body == BAD:
            with pytest.raises(QuarantinedError) as failure:
                validation.main(validation_argv(settings, own, run=2, batch=quick))
            assert str(failure.value) == outcomes[0].alert()
        elif dimension:
            taken = validation.main(validation_argv(settings, own, run=2, batch=quick))
            # The verdict as its result keeps it: all of it but the normalized bytes.
            kept = dataclasses.replace(outcomes[0].verdict, normalized=None)
            assert (taken.action, taken.verdict) == (Action.PROMOTED, kept)
            assert taken.destination == outcomes[0].destination
        else:
            with pytest.raises(ValidationFailedError) as failure:
                validation.main(validation_argv(settings, own, run=2, batch=quick))
            assert str(failure.value).startswith("NoDimensionError: no valid airport dimension")
            assert str(failure.value) == outcomes[0].alert
    finally:
        other.join()
    assert time.monotonic() - started >= 1.5  # it waited for the claimant's result
    assert records(settings, s3) == before  # and validated nothing itself


def test_a_claim_older_than_claim_seconds_is_taken_over(
    glue_settings: tuple[Settings, Any],
) -> None:
    """A run that claimed a version and died must not strand it."""
    settings, s3 = glue_settings
    glue_dimension(settings, s3)
    own = upload_to(s3, settings.raw_bucket, "raw/2024-01-05.csv", GOOD.encode())
    limits = ValidationSettings(claim_seconds=60)
    claim(settings, s3, own, "jr_crashed", age_seconds=limits.claim_seconds + 1)

    validated = validation.main(validation_argv(settings, own, run=2, batch=limits))

    assert validated.action is Action.PROMOTED
    assert (result_of(settings, s3, own) or {}).get("outcome") == "passed"
    assert records(settings, s3) == 2


def test_the_dimensions_run_validates_only_the_dimension(
    glue_settings: tuple[Settings, Any],
) -> None:
    settings, s3 = glue_settings
    daily = upload_to(s3, settings.raw_bucket, "raw/2024-01-05.csv", GOOD.encode())
    dimension = upload_to(s3, settings.dimension_bucket, "airport_codes.csv", AIRPORTS.encode())

    assert validation.main(validation_argv(settings, dimension, run=1)).action is Action.PROMOTED

    assert (result_of(settings, s3, dimension) or {}).get("outcome") == "passed"
    assert result_of(settings, s3, daily) is None
    assert bucket_keys(s3, settings.raw_bucket, "validated/") == []
    assert records(settings, s3) == 1


def test_batch_seconds_bound_the_batch(glue_settings: tuple[Settings, Any]) -> None:
    settings, s3 = glue_settings
    glue_dimension(settings, s3)
    own = upload_to(s3, settings.raw_bucket, "raw/2024-01-05.csv", GOOD.encode())
    waiting = upload_to(s3, settings.raw_bucket, "raw/2024-01-06.csv", GOOD.encode())

    no_batch = ValidationSettings(batch_seconds=0)
    validation.main(validation_argv(settings, own, run=2, batch=no_batch))

    assert (result_of(settings, s3, own) or {}).get("outcome") == "passed"
    assert result_of(settings, s3, waiting) is None
    assert records(settings, s3) == 2


@pytest.mark.parametrize(("idle_seconds", "late_validated_here"), [(8.0, True), (0.0, False)])
def test_a_batch_waits_idle_seconds_for_a_bursts_next_upload(
    glue_settings: tuple[Settings, Any], idle_seconds: float, late_validated_here: bool
) -> None:
    settings, s3 = glue_settings
    glue_dimension(settings, s3)
    raw = settings.raw_bucket
    own = upload_to(s3, raw, "raw/2024-01-05.csv", GOOD.encode())
    upload_to(s3, raw, "raw/2024-01-06.csv", GOOD.encode())  # a burst: one waiting already
    late: list[Upload] = []

    def next_upload() -> None:
        """The burst's next file, landing while the run's batch has nothing left to claim (its
        two small files take well under this)."""
        time.sleep(3.0)
        late.append(upload_to(s3, raw, "raw/2024-01-07.csv", GOOD.encode()))

    uploader = threading.Thread(target=next_upload)
    uploader.start()
    limits = ValidationSettings(idle_seconds=idle_seconds, poll_seconds=0.1)
    argv = validation_argv(settings, own, run=2, batch=limits)
    try:
        validation.main(argv)
    finally:
        uploader.join()

    result = result_of(settings, s3, late[0])
    validated_by = (result or {}).get("validated_by")
    assert (validated_by == run_id_of(argv)) is late_validated_here, result


def test_an_upload_that_cannot_be_validated_fails_its_own_run_and_a_batch_leaves_it_alone(
    glue_settings: tuple[Settings, Any],
) -> None:
    """Before any dimension: the run fails as it always did, with its own result saying so;
    the file waiting beside it is left to its own run (its claim released: the error may
    pass), which validates it itself and fails with the same plain error."""
    settings, s3 = glue_settings
    own = upload_to(s3, settings.raw_bucket, "raw/2024-01-05.csv", GOOD.encode())
    waiting = upload_to(s3, settings.raw_bucket, "raw/2024-01-06.csv", GOOD.encode())

    with pytest.raises(NoDimensionError, match=r"upload airport_codes\.csv first"):
        validation.main(validation_argv(settings, own, run=1))

    result = result_of(settings, s3, own)
    assert result is not None
    assert (result["file"], result["version"], result["outcome"]) == (
        own.uri,
        own.version,
        "failed",
    )
    assert result["alert"].startswith("NoDimensionError: no valid airport dimension at s3://")
    assert result_of(settings, s3, waiting) is None
    with pytest.raises(NoDimensionError, match=r"upload airport_codes\.csv first"):
        validation.main(
            validation_argv(settings, waiting, run=2, batch=ValidationSettings(batch_seconds=0))
        )
    still_there = ["raw/2024-01-05.csv", "raw/2024-01-06.csv"]  # to validate again later
    assert bucket_keys(s3, settings.raw_bucket, "raw/") == still_there


# --- The run's metrics -------------------------------------------------------------------------


def test_a_validation_runs_metrics_count_what_it_validated_itself_in_one_call_at_its_end(
    glue_settings: tuple[Settings, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, s3 = glue_settings
    cloudwatch = boto3.client("cloudwatch")  # the dashboard's view, not the job's
    sent = jobs_metric_calls(monkeypatch)
    glue_dimension(settings, s3)
    raw = settings.raw_bucket
    own = upload_to(s3, raw, "raw/2024-01-05.csv", GOOD.encode())
    upload_to(s3, raw, "raw/2024-01-06.csv", GOOD.encode())
    bad = upload_to(s3, raw, "raw/2024-01-07.csv", BAD.encode())
    quick = ValidationSettings(idle_seconds=0)
    assert validation.main(validation_argv(settings, own, run=2, batch=quick)).action is (
        Action.PROMOTED
    )
    # The bad file's own run reads the result the batch wrote: it validated nothing itself.
    with pytest.raises(QuarantinedError):
        validation.main(validation_argv(settings, bad, run=3))

    # One call per run, the failed one's too: the dimension; its own file, one waiting file
    # found loadable and one quarantined; nothing.
    assert [put_values(call, "dev") for call in sent] == [
        {FILES_VALIDATED: 1, FILES_QUARANTINED: 0},
        {FILES_VALIDATED: 2, FILES_QUARANTINED: 1},
        {FILES_VALIDATED: 0, FILES_QUARANTINED: 0},
    ]
    # Read back from CloudWatch, as the environment's dashboard reads them.
    now = dt.datetime.now(dt.UTC)
    for name, total in ((FILES_VALIDATED, 3), (FILES_QUARANTINED, 1)):
        [point] = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": ENVIRONMENT, "Value": "dev"}],
            StartTime=now - dt.timedelta(minutes=5),
            EndTime=now + dt.timedelta(minutes=5),
            Period=600,
            Statistics=["Sum", "SampleCount"],
        )["Datapoints"]
        assert (point["Sum"], point["SampleCount"], point["Unit"]) == (total, 3, "Count")


def test_a_validation_run_whose_metrics_cannot_be_put_ends_as_it_would_have_and_says_why(
    glue_settings: tuple[Settings, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, s3 = glue_settings
    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "no PutMetricData here"}}, "PutMetricData"
    )
    refusing = Refusing(denied)
    jobs_metric_calls(monkeypatch, instead=refusing)
    glue_dimension(settings, s3)
    good = upload_to(s3, settings.raw_bucket, "raw/2024-01-05.csv", GOOD.encode())
    assert validation.main(validation_argv(settings, good, run=2)).action is Action.PROMOTED
    bad = upload_to(s3, settings.raw_bucket, "raw/2024-01-06.csv", BAD.encode())
    with pytest.raises(QuarantinedError, match=rf"^Quarantined {bad.uri} \(version "):
        validation.main(validation_argv(settings, bad, run=3))

    assert refusing.calls == 3
    assert (result_of(settings, s3, good) or {}).get("outcome") == "passed"
    assert (result_of(settings, s3, bad) or {}).get("outcome") == "quarantined"
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    warnings = [e["message"] for e in logged if e["message"].startswith("could not put")]
    assert len(warnings) == 3
    assert warnings[-1].startswith("could not put the metrics FilesValidated=0, FilesQuarantined=1")
    assert all("AccessDenied" in w and "no PutMetricData here" in w for w in warnings)


# --- On the endpoint: validation runs in worker processes -----------------------------------


def start_validation_runs(twin: LocalTwin, files: Iterable[Path]) -> list[str]:
    """Start a validation run of each file on the endpoint, with the arguments the state machine
    passes (``pipeline.workflow``); the ids of the runs.

    The files go to a bucket of the test's own, which no upload rule watches: only the runs
    started here validate them, each its own file alone (no batch: ``batch_seconds`` 0 in the
    run's settings, which override the job's).
    """
    alone = twin.settings.job_settings().model_copy(
        update={"validation": ValidationSettings(batch_seconds=0)}
    )
    bucket = twin.settings.raw_bucket.replace("-raw-", "-burst-", 1)
    twin.s3.create_bucket(Bucket=bucket)
    twin.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    glue = twin.client("glue")
    ids = []
    for path in files:
        upload = put(twin, twin.settings.storage.raw_prefix + path.name, path.read_bytes(), bucket)
        arguments = {
            "--settings": alone.model_dump_json(),
            "--dimension_bucket": twin.settings.dimension_bucket,
            "--reports_bucket": twin.settings.reports_bucket,
            "--reports_url": "https://reports.example.com/",
            "--bucket": upload.bucket,
            "--key": upload.key,
            "--version_id": upload.version,
        }
        job = twin.resources.names.validation_job
        ids.append(glue.start_job_run(JobName=job, Arguments=arguments)["JobRunId"])
    return ids


def job_runs(twin: LocalTwin, ids: Iterable[str]) -> list[dict[str, Any]]:
    """These runs of the validation job, as GetJobRuns reports them."""
    listed = twin.client("glue").get_job_runs(JobName=twin.resources.names.validation_job)
    by_id = {run["Id"]: run for run in listed["JobRuns"]}
    return [by_id[run_id] for run_id in ids]


def ended(runs: list[dict[str, Any]]) -> bool:
    return all(run["JobRunState"] in ("SUCCEEDED", "FAILED") for run in runs)


def validation_workers(twin: LocalTwin) -> list[psutil.Process]:
    """The endpoint's validation worker processes (spawned: multiprocessing's spawn_main)."""
    endpoint = psutil.Process(int(twin.services.aws_pid_file.read_text()))
    return [p for p in endpoint.children() if "spawn_main" in " ".join(p.cmdline())]


def busy_seconds(workers: Iterable[psutil.Process]) -> dict[int, float]:
    """CPU seconds each worker process has used so far."""
    return {worker.pid: sum(worker.cpu_times()[:2]) for worker in workers}


def sample_files(folder: Path, days: int, flights_per_day: int) -> tuple[Path, list[Path]]:
    sample = write_sample(folder, SampleSpec(days=days, flights_per_day=flights_per_day))
    return sample.dimension, list(sample.daily)


def test_validations_run_side_by_side_in_worker_processes_and_a_start_beyond_is_refused(
    twin: LocalTwin, tmp_path: Path
) -> None:
    # One file more than the endpoint has workers: its run's start is refused.
    dimension_file, daily = sample_files(tmp_path, ENDPOINT_VALIDATION_WORKERS + 1, 100_000)
    *side_by_side, refused = daily
    twin.validate(twin.upload_dimension(dimension_file))
    # Those running already (a worker starts at the endpoint's start, or at the first run
    # after one died).
    before = busy_seconds(validation_workers(twin))

    ids = start_validation_runs(twin, side_by_side)
    # The job's maximum concurrency is the endpoint's workers: the start beyond is refused as
    # Glue refuses it (ConcurrentRunsExceededException), not queued.
    glue = twin.client("glue")
    with pytest.raises(glue.exceptions.ConcurrentRunsExceededException):
        start_validation_runs(twin, [refused])
    states: list[list[str]] = []
    deadline = time.monotonic() + twin.settings.workflow.job_timeout_seconds
    while not ended(runs := job_runs(twin, ids)):
        assert time.monotonic() < deadline, states[-1:]
        states.append(sorted(run["JobRunState"] for run in runs))
        time.sleep(0.05)

    assert [run["JobRunState"] for run in runs] == ["SUCCEEDED"] * len(ids), runs
    # As many at once as there are workers.
    assert max(s.count("RUNNING") for s in states) == ENDPOINT_VALIDATION_WORKERS
    # Each worker process did validation work of its own: not threads of one process.
    after = busy_seconds(validation_workers(twin))
    assert len(after) == ENDPOINT_VALIDATION_WORKERS, after
    assert all(seconds > before.get(pid, 0.0) for pid, seconds in after.items()), (before, after)
    # Each worker wrote its promoted copies through to the one object cache: no load
    # downloads them. The report's index, built once the burst ended, lists every file.
    s3 = twin.client("s3")
    downloads = get_object_calls(s3)
    index = twin.reports.index.read_text()
    for run in runs:
        upload = Upload(
            *(run["Arguments"][f"--{name}"] for name in ("bucket", "key", "version_id"))
        )
        key = twin.settings.storage.validated_prefix + upload.name
        head = twin.s3.head_object(Bucket=upload.bucket, Key=key)
        copy = ObjectVersion(upload.bucket, key, head["VersionId"], head["ContentLength"])
        cached = object_cache(twin.settings).get(s3, copy)
        assert cached.metadata["source-version"] == upload.version
        assert upload.name in index
    assert downloads == []


def test_a_killed_validation_worker_fails_its_run_with_a_plain_message(
    twin: LocalTwin, tmp_path: Path
) -> None:
    dimension_file, [daily] = sample_files(tmp_path, 1, 300_000)
    twin.validate(twin.upload_dimension(dimension_file))

    ids = start_validation_runs(twin, [daily])
    # As long as the state machine waits for a job run.
    deadline = time.monotonic() + twin.settings.workflow.job_timeout_seconds
    while job_runs(twin, ids)[0]["JobRunState"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for worker in validation_workers(twin):
        worker.kill()
    while not ended(runs := job_runs(twin, ids)):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    [run] = runs
    assert run["JobRunState"] == "FAILED"
    assert re.fullmatch(
        r"the validation worker process \d+ was killed by SIGKILL before the run ended",
        run["ErrorMessage"],
    ), run["ErrorMessage"]
    # The endpoint goes on: a new worker process takes the next run.
    again = start_validation_runs(twin, [daily])
    while not ended(runs := job_runs(twin, again)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert runs[0]["JobRunState"] == "SUCCEEDED", runs
