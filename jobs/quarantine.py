"""Moving a file version out of the pipeline's way: into quarantine, with the reason beside it.

The gate quarantines an upload it refuses (``jobs.validation``); the load sets aside a
validated copy the warehouse refused (``jobs.flight_etl``). Both leave the same two objects,
``quarantine/<name>`` and ``quarantine/<name>.validation.json``, and remove exactly the version
they moved, never a newer one. Plain S3 through boto3, so both runtimes share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

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
