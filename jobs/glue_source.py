"""The load's input on AWS Glue: new validated files through a Glue job bookmark, and the
airport dimension from S3.

Glue keeps a job bookmark for its own readers only
(https://docs.aws.amazon.com/glue/latest/dg/monitor-continuations.html), so a DynamicFrame
read of the validated prefix with a ``transformation_ctx`` is what tells which files are new.
That read is used for nothing else: a DynamicFrame decides each record's types on its own and
a cast after it turns a value the contract refuses into a guess. The new files' rows are read
as the twin reads them, with the contract's schema and FAILFAST (``read_daily_files``), so a
value one runtime refuses the other refuses alike.

What the load records of each copy comes from its HEAD: the version, the upload's version and
key in its metadata and the SHA-256 checksum S3 keeps of it (``pipeline.core.contract``,
``VALIDATED_SHA256``). Spark reads an object's current version and cannot be pinned to the
version listed, so once Spark has read the files, ``confirm_read`` checks that each is still
that version; the load stops before its warehouse transaction otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pyspark.sql import DataFrame

from jobs.flights import (
    SOURCE_FILE,
    FileOrigin,
    read_airports,
    read_daily_files,
)
from jobs.load import NewFlights, daily_files, validated_copy
from jobs.quarantine import quarantine_rejected
from pipeline.core.contract import header_names
from pipeline.core.uploads import S3_REQUESTS_AT_ONCE, split_s3_uri, version_of
from pipeline.core.warehouse import (
    Rejection,
    SourceFile,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(work: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``work`` on every item (a HEAD each, or a range of each one's first bytes), a few S3
    requests at once, in the items' order."""
    with ThreadPoolExecutor(max_workers=S3_REQUESTS_AT_ONCE) as pool:
        return list(pool.map(work, items))


class CopyChangedError(RuntimeError):
    """A validated copy is no longer the version the load listed: it changed while Spark read
    it, so what was read is not the version the load would record."""


@dataclass
class GlueBookmarkedSource:
    """New validated files (the gate's normalized copies) through a Glue job bookmark."""

    glue_context: Any
    validated_uri: str
    s3: Any
    max_header_bytes: int
    """The longest header read: the gate's longest line (``QualitySettings.max_line_bytes``)."""
    raw_prefix: str = "raw/"
    quarantine_prefix: str = "quarantine/"
    _headers: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False)
    """The header of each new file's listed version, by URI."""

    def new_flights(self) -> NewFlights:
        daily, refused = daily_files(self._bookmarked_files())
        if not daily:
            return NewFlights(None, [], refused=refused)
        listed = _each(self._listed, daily)
        self._headers.update((file.uri, header) for file, header in listed)
        return replace(self.read([file for file, _ in listed]), refused=refused)

    def _bookmarked_files(self) -> list[str]:
        """The files under the validated prefix that the job bookmark has not seen: the
        distinct files of a bookmarked read (``attachFilename`` names each record's file,
        https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-connect-s3-home.html).
        Glue reads the files' records to name them: that pass is what the bookmark costs.
        """
        frame: DataFrame = self.glue_context.create_dynamic_frame.from_options(
            connection_type="s3",
            connection_options={"paths": [self.validated_uri], "recurse": True},
            format="csv",
            format_options={"withHeader": True, "attachFilename": SOURCE_FILE},
            transformation_ctx="validated_flights",
        ).toDF()
        if not frame.columns:
            return []
        return sorted(row[SOURCE_FILE] for row in frame.select(SOURCE_FILE).distinct().collect())

    def _listed(self, uri: str) -> tuple[SourceFile, tuple[str, ...]]:
        """The copy's current version as the load will record it, from its HEAD, and its
        header, from that version's first bytes."""
        bucket, key = split_s3_uri(uri)
        head = self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        version = version_of(head)
        sha256 = _sha256_checksum(head) or self._sha256_read(bucket, key, version)
        metadata = head.get("Metadata", {})
        written = head.get("LastModified")  # when the gate promoted this version
        file = validated_copy(uri, version, sha256, metadata, self.raw_prefix, validated_at=written)
        return file, self._header(bucket, key, version)

    def _header(self, bucket: str, key: str, version: str) -> tuple[str, ...]:
        """The names in the first line of the version, read alone: a range of at most
        ``max_header_bytes``, closed at the first line's end."""
        body = self.s3.get_object(
            Bucket=bucket, Key=key, VersionId=version, Range=f"bytes=0-{self.max_header_bytes - 1}"
        )["Body"]
        try:
            first = next(body.iter_lines(), b"")
        finally:
            body.close()
        return header_names(first.decode("utf-8-sig", errors="replace"))

    def _sha256_read(self, bucket: str, key: str, version: str) -> str:
        """The digest of a version S3 keeps no SHA-256 checksum of (a copy the validation job
        did not write), by reading it."""
        log.warning("s3://%s/%s has no SHA-256 checksum: reading it to hash it", bucket, key)
        body = self.s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"]
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()

    def read(self, files: Sequence[SourceFile]) -> NewFlights:
        # Not through the bookmark: this run has listed these files already.
        headers = {f.uri: self._headers[f.uri] for f in files}
        flights = read_daily_files(self.glue_context.spark_session, headers)
        return NewFlights(flights, files, [FileOrigin(f.uri, f.flight_date) for f in files])

    def confirm_read(self, files: Sequence[SourceFile]) -> None:
        """Raise ``CopyChangedError`` unless each file is still the version listed, once Spark
        has read them: then the version Spark read is the one the load records."""

        def current(file: SourceFile) -> str:
            bucket, key = split_s3_uri(file.uri)
            return version_of(self.s3.head_object(Bucket=bucket, Key=key))

        changed = [
            f"{f.uri} changed while the load read it: version {f.version} was listed, {now} is "
            "there now"
            for f, now in zip(files, _each(current, files), strict=True)
            if now != f.version
        ]
        if changed:
            raise CopyChangedError(
                "; ".join(changed) + ". The load stopped before its warehouse transaction and "
                "the bookmark stays where it was: the next run loads what is there then."
            )

    def content(self, file: SourceFile) -> bytes:
        bucket, key = split_s3_uri(file.uri)
        body = self.s3.get_object(Bucket=bucket, Key=key, VersionId=file.version)["Body"]
        return bytes(body.read())

    def set_aside(self, rejection: Rejection, job_run_id: str) -> None:
        quarantine_rejected(self.s3, rejection, self.quarantine_prefix, job_run_id)


def _sha256_checksum(head: dict[str, Any]) -> str | None:
    """The hex SHA-256 of the object's bytes from S3's SHA-256 checksum in a HEAD asked with
    ``ChecksumMode=ENABLED``; None when S3 keeps none, or only a composite one of a multipart
    upload's parts (``<base64>-<parts>``), which is no digest of the bytes
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html)."""
    try:
        digest = base64.b64decode(head.get("ChecksumSHA256", ""), validate=True)
    except binascii.Error:
        return None
    return digest.hex() if len(digest) == hashlib.sha256().digest_size else None


@dataclass
class S3AirportSource:
    spark: Any
    dimension_uri: str

    def airports(self) -> DataFrame:
        header = header_names(self.spark.read.text(self.dimension_uri).first()[0])
        return read_airports(self.spark, self.dimension_uri, header)
