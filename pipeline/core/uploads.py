"""An uploaded object version: what an S3 event names and what a run works on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def run_name(bucket: str, key: str, version: str) -> str:
    """The name the router gives the run of one object version (see ``router_definition``)."""
    return hashlib.sha256(f"{bucket}/{key}/{version}".encode()).hexdigest()


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
