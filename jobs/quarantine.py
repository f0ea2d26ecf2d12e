"""Moving a file version out of the pipeline's way: into quarantine, with the reason beside it.

The gate quarantines an upload it refuses (``jobs.validation``); the load sets aside a
validated copy the warehouse refused (``jobs.load``). Both leave the same two objects,
``quarantine/<name>`` and ``quarantine/<name>.validation.json``, and remove exactly the version
they moved, never a newer one. Plain S3 through boto3, so both runtimes share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pipeline.core.contract import SOURCE_SHA256, SOURCE_VERSION
from pipeline.core.uploads import split_s3_uri, version_of
from pipeline.core.warehouse import Rejection, SourceFile

RESULT_SUFFIX: Final = ".validation.json"
"""The reason's object: the quarantined key with this suffix."""


def quarantine(
    s3: Any,
    bucket: str,
    source: tuple[str, str],
    destination_key: str,
    *,
    document: Mapping[str, Any],
    metadata: Mapping[str, str],
    hide_key: bool = False,
) -> None:
    """Copy the ``(key, version)`` ``source`` to ``destination_key`` with ``document`` (the
    reason, as JSON) beside it, then remove that version; with ``hide_key``, hide the key
    behind a delete marker instead, so no older version of it takes the removed one's place.

    The bytes are copied inside S3 (a managed copy, multipart when large): a file refused for
    its size is never downloaded, and none is uploaded again.
    """
    key, version = source
    s3.copy(
        {"Bucket": bucket, "Key": key, "VersionId": version},
        bucket,
        destination_key,
        ExtraArgs={"Metadata": dict(metadata), "MetadataDirective": "REPLACE"},
    )
    s3.put_object(
        Bucket=bucket,
        Key=destination_key + RESULT_SUFFIX,
        Body=json.dumps(document, indent=2).encode(),
        ContentType="application/json",
    )
    if hide_key:
        s3.delete_object(Bucket=bucket, Key=key)
    else:
        # Removing this version (not adding a delete marker) leaves any newer one in place.
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)


def quarantined_key(file: SourceFile, quarantine_prefix: str) -> str:
    """Where a rejected validated copy goes: the quarantine prefix and its name."""
    return quarantine_prefix + file.key.rsplit("/", 1)[-1]


def quarantine_rejected(
    s3: Any, rejection: Rejection, quarantine_prefix: str, job_run_id: str
) -> None:
    """Move a rejected validated copy to quarantine, the reason beside it, as the gate moves a
    refused upload."""
    file = rejection.file
    bucket, _ = split_s3_uri(file.uri)
    destination = quarantined_key(file, quarantine_prefix)
    document = {
        "file": file.uri,
        "version": file.version,
        "upload": f"s3://{bucket}/{file.upload_key}" if file.upload_key else None,
        "upload_version": file.upload_version,
        "outcome": "rejected at load",
        "sha256": file.sha256,
        "findings": [
            {
                "rule": "every value fits the warehouse",
                "observed": rejection.reason,
                "blocking": True,
            }
        ],
        "line": rejection.line,
        "column": rejection.column,
        "value": rejection.value,
        "job_run_id": job_run_id,
    }
    metadata = {
        SOURCE_SHA256: file.sha256,
        **({SOURCE_VERSION: file.upload_version} if file.upload_version else {}),
    }
    # Still the latest copy: hide the key, or an older copy, never loaded, would load next.
    latest = version_of(s3.head_object(Bucket=bucket, Key=file.key)) == file.version
    quarantine(
        s3,
        bucket,
        (file.key, file.version),
        destination,
        document=document,
        metadata=metadata,
        hide_key=latest,
    )
