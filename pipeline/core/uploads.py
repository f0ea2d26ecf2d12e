"""An uploaded object version: what an S3 event names and what a run works on; how the jobs
name an object and its version."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

S3_REQUESTS_AT_ONCE: Final = 8
"""S3 requests a job keeps in flight at once over many objects (a backfill's HEADs, headers or
downloads): one at a time, 365 files would take seconds of round trips."""


def run_name(bucket: str, key: str, version: str) -> str:
    """The name the router gives the run of one object version (see ``router_definition``)."""
    return hashlib.sha256(f"{bucket}/{key}/{version}".encode()).hexdigest()


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of a state machine (its own ARN's form)."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


@dataclass(frozen=True)
class Upload:
    """One version of an uploaded object."""

    bucket: str
    key: str
    version: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """The bucket and the key of an ``s3://bucket/key`` URI."""
    without = uri.removeprefix("s3://")
    bucket, _, key = without.partition("/")
    return bucket, key


def version_of(response: Mapping[str, Any]) -> str:
    """The version id an S3 response (a HEAD, a GET, a PUT) names. An unversioned bucket
    answers without one, and S3 calls that version "null"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/AddingObjectstoVersionSuspendedBuckets.html),
    the id a request names it by."""
    return str(response.get("VersionId") or "null")
