"""The local object store (moto's S3): buckets, uploads, versions and cached downloads."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final
from urllib.parse import quote, unquote

import boto3
from botocore.config import Config

from pipeline.core.contract import SOURCE_VERSION, header_names
from pipeline.core.uploads import version_of
from pipeline.settings import UPLOADED_BUCKETS, Settings

log = logging.getLogger(__name__)


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


TWIN_BUCKETS: Final = (*UPLOADED_BUCKETS, "staging")
"""The purposes of the twin's buckets: its report is on disk, so no reports bucket."""


def ensure_buckets(s3: Any, settings: Settings) -> None:
    """Create the twin's buckets, the uploaded ones versioned as on AWS. The report site is
    kept on disk (``pipeline.local.validation``): no reports bucket."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for purpose in TWIN_BUCKETS:
        bucket = settings.bucket(purpose)
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    for purpose in UPLOADED_BUCKETS:
        s3.put_bucket_versioning(
            Bucket=settings.bucket(purpose), VersioningConfiguration={"Status": "Enabled"}
        )


@dataclass(frozen=True)
class ObjectVersion:
    bucket: str
    key: str
    version: str
    size: int
    last_modified: dt.datetime | None = field(default=None, compare=False)
    """When the version was written, where its listing said (``latest_versions``)."""

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
                    ObjectVersion(
                        bucket,
                        version["Key"],
                        version["VersionId"],
                        version["Size"],
                        version["LastModified"],
                    )
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
    metadata: Mapping[str, str]
    """The version's S3 user metadata (for a validated copy, the upload it came from), kept
    here so a load never asks S3 for it again."""


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


class ObjectCache:
    """Local copies of object versions, for Spark to read: S3 objects are not files here.

    A copy lives at ``<root>/<bucket>/<key>@<version>`` (both percent-encoded), beside
    ``...@<version>.json`` holding its sha256, size, line count and S3 user metadata; a
    version's content never changes, so a copy whose record is there is that version. The gate
    writes its promoted copies through (``put``), so a load finds them here instead of
    downloading them again; ``get`` downloads any other version. Every file appears by an
    atomic rename, so concurrent writers of one version never see a half-written copy.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, version: ObjectVersion) -> Path:
        # Keys and version ids may hold characters Spark would read as a glob pattern.
        key, version_id = quote(version.key, safe="/"), quote(version.version, safe="")
        return self.root / version.bucket / f"{key}@{version_id}"

    @staticmethod
    def named(path: str) -> str:
        """How a message names a cached copy: its path as the key's, with the version apart."""
        copy, _, version = path.rpartition("@")  # the quoted version holds no "@"
        return f"{unquote(copy)} (version {unquote(version)})" if copy else path

    def get(self, s3: Any, version: ObjectVersion) -> CachedObject:
        """The cached copy of ``version``, downloaded first (hashed and counted as it streams)
        when it is not here yet."""
        cached = self._cached(version)
        if cached is not None:
            return cached
        response = s3.get_object(Bucket=version.bucket, Key=version.key, VersionId=version.version)
        metadata = response.get("Metadata", {})
        return self._write(version, response["Body"].iter_chunks(1 << 20), metadata)

    def put(self, version: ObjectVersion, data: bytes, metadata: Mapping[str, str]) -> CachedObject:
        """Cache ``data`` as the content of ``version``, which was just written to S3 with
        ``metadata``."""
        return self._write(version, [data], metadata)

    def keep_only(self, versions: Iterable[ObjectVersion]) -> None:
        """Remove the cached copies of every other version of these versions' keys, reading
        each folder once (a year's backfill keeps 365 keys in one)."""
        kept = {self.path(v) for v in versions}
        for folder in {p.parent for p in kept}:
            keys = {p.name.rpartition("@")[0] for p in kept if p.parent == folder}
            for record in folder.glob("*@*.json"):
                copy = record.with_suffix("")
                if copy.name.rpartition("@")[0] in keys and copy not in kept:
                    # The record first: a copy without its record is never used.
                    record.unlink(missing_ok=True)
                    copy.unlink(missing_ok=True)

    def _write(
        self, version: ObjectVersion, chunks: Iterable[bytes], metadata: Mapping[str, str]
    ) -> CachedObject:
        """Write the copy, then its record, each under a temporary name renamed into place."""
        path = self.path(version)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, lines = hashlib.sha256(), LineCounter()
        with _replacing(path) as out:
            for chunk in chunks:
                digest.update(chunk)
                lines.update(chunk)
                out.write(chunk)
        record = {
            "sha256": digest.hexdigest(),
            "size": path.stat().st_size,
            "lines": lines.lines,
            "metadata": dict(metadata),
        }
        with _replacing(path.with_name(path.name + ".json")) as out:
            out.write(json.dumps(record).encode())
        return CachedObject(
            version, path, digest.hexdigest(), read_header(path), lines.lines, dict(metadata)
        )

    def _cached(self, version: ObjectVersion) -> CachedObject | None:
        path = self.path(version)
        try:
            record = json.loads(path.with_name(path.name + ".json").read_text())
            if path.stat().st_size != record["size"]:
                return None
            cached = (record["sha256"], record["lines"], record["metadata"])
        except (OSError, ValueError, KeyError):  # a record without a field is downloaded anew
            return None
        sha256, lines, metadata = cached
        return CachedObject(version, path, sha256, read_header(path), lines, metadata)


@contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A file written under a unique temporary name that replaces ``path`` once complete."""
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def object_cache(settings: Settings) -> ObjectCache:
    """The twin's object cache, shared by the gate (which writes through) and the loads."""
    return ObjectCache(settings.local.state_dir / "cache" / "objects")


_PUT_PARAMETERS: Final = "flightpipe-put-parameters"
"""Where ``writing_through`` keeps a PutObject's parameters in botocore's request context."""


def writing_through(s3: Any, cache: ObjectCache) -> None:
    """Make ``s3`` keep in ``cache`` each promoted copy it writes: a PutObject of bytes
    whose metadata names the upload it came from (``source-version``), cached under the
    version id S3's response gives it, so the next load reads the copy from here instead of
    downloading it. The job code stays plain boto3: this observes the client's own events
    (its parameters, then the response to them).
    """

    def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # A copy: botocore goes on to replace the body by a stream in the parameters it sends.
        context[_PUT_PARAMETERS] = dict(params)

    def cache_copy(
        http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        params = context.get(_PUT_PARAMETERS, {})
        body, metadata = params.get("Body"), params.get("Metadata", {})
        promoted = SOURCE_VERSION in metadata and isinstance(body, bytes)
        if http_response.status_code >= 300 or not promoted:
            return
        written = ObjectVersion(params["Bucket"], params["Key"], version_of(parsed), len(body))
        try:
            cache.put(written, body, metadata)
        except OSError as exc:  # the copy is in S3 all the same; the load downloads it
            log.warning("could not cache %s: %s", written.uri, exc)

    s3.meta.events.register("provide-client-params.s3.PutObject", keep)
    s3.meta.events.register("after-call.s3.PutObject", cache_copy)


def read_header(path: Path) -> tuple[str, ...]:
    """The names in a CSV file's header line."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        return header_names(handle.readline())
