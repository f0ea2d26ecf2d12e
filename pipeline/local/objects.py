"""The local object store (moto's S3): buckets, uploads, versions and cached downloads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from pipeline.contract import header_names
from pipeline.settings import Settings


def s3_client(settings: Settings, endpoint: str) -> Any:
    """A boto3 S3 client for the local endpoint (fixed fake credentials: nothing leaves here)."""
    return aws_client("s3", settings, endpoint)


def aws_client(service: str, settings: Settings, endpoint: str) -> Any:
    """A boto3 client of ``service`` for the local endpoint."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=settings.local.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def ensure_buckets(s3: Any, settings: Settings) -> None:
    """Create the project's buckets; raw and dimension are versioned like on AWS."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in (settings.raw_bucket, settings.dimension_bucket, settings.staging_bucket):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    for bucket in (settings.raw_bucket, settings.dimension_bucket):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


@dataclass(frozen=True)
class ObjectVersion:
    bucket: str
    key: str
    version: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def latest_versions(s3: Any, bucket: str, prefix: str) -> list[ObjectVersion]:
    """The current version of every object under the prefix (deleted objects excluded)."""
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if version["IsLatest"]:
                found.append(
                    ObjectVersion(bucket, version["Key"], version["VersionId"], version["Size"])
                )
    return sorted(found, key=lambda v: v.key)


@dataclass(frozen=True)
class CachedObject:
    version: ObjectVersion
    path: Path
    sha256: str
    header: tuple[str, ...]
    lines: int
    """Lines as Spark's CSV reader splits them (at LF, CRLF or a lone CR), header included."""


class LineCounter:
    """Counts the lines of a byte stream fed in chunks, the way Spark's line reader splits it.

    A line ends at LF, CRLF or a lone CR; a last line without an end still counts.
    """

    def __init__(self) -> None:
        self._ends = 0
        self._last = b""

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._ends += chunk.count(b"\n")
        if b"\r" in chunk:  # rare: look for CR line ends only where there is a CR at all
            self._ends += chunk.count(b"\r") - chunk.count(b"\r\n")
        # A CRLF split across two chunks was counted once for each half.
        if self._last == b"\r" and chunk.startswith(b"\n"):
            self._ends -= 1
        self._last = chunk[-1:]

    @property
    def lines(self) -> int:
        return self._ends + (self._last not in (b"", b"\n", b"\r"))


def download(s3: Any, version: ObjectVersion, cache_root: Path) -> CachedObject:
    """Download one object version to ``cache_root/<bucket>/<key>``, hashing it and counting
    its lines as it streams.

    The cache mirrors the bucket layout, so the local path maps back to the object's URI.
    """
    path = cache_root / version.bucket / version.key
    path.parent.mkdir(parents=True, exist_ok=True)
    response = s3.get_object(Bucket=version.bucket, Key=version.key, VersionId=version.version)
    digest, lines = hashlib.sha256(), LineCounter()
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as out:
        for chunk in response["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
            lines.update(chunk)
            out.write(chunk)
    partial.replace(path)
    return CachedObject(version, path, digest.hexdigest(), read_header(path), lines.lines)


def read_header(path: Path) -> tuple[str, ...]:
    """The names in a CSV file's header line."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        return header_names(handle.readline())
