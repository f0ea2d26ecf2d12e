"""The load's input on AWS Glue: new validated files through a Glue job bookmark, and the
airport dimension from S3."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.flights import (
    SOURCE_FILE,
    FileOrigin,
    read_airports,
    read_schema,
)
from jobs.load import NewFlights, validated_copy
from jobs.quarantine import quarantine_rejected
from pipeline.core.contract import (
    DAILY_FLIGHTS,
    SOURCE_VERSION,
    NotADailyFileError,
    flight_date_of,
    header_names,
)
from pipeline.core.uploads import split_s3_uri
from pipeline.core.warehouse import (
    Rejection,
    SourceFile,
)

log = logging.getLogger(__name__)


def contract_columns(frame: DataFrame) -> DataFrame:
    """Contract columns (matched by header name, as ``read_schema`` does) cast to their types.

    Glue's reader yields text; a cast that fails gives NULL in Spark (ANSI off), which would
    load a NULL in place of a value the warehouse cannot hold. Such a value fails the read
    instead, as the twin's FAILFAST read does, so the load sets the file aside.
    """
    headers = [name for name in frame.columns if name != SOURCE_FILE]
    schema = read_schema(DAILY_FLIGHTS, headers)
    typed = {}
    for header, typed_field in zip(headers, schema.fields, strict=True):
        raw = F.col(f"`{header}`")
        cast = raw.cast(typed_field.dataType)
        failed = raw.isNotNull() & (raw != "") & cast.isNull()
        refused = F.raise_error(
            F.concat(
                F.lit(f"MALFORMED_RECORD_IN_PARSING: {header} "),
                raw,
                F.lit(" in "),
                F.col(SOURCE_FILE),
            )
        )
        typed[typed_field.name] = F.when(failed, refused).otherwise(cast).alias(typed_field.name)
    return frame.select(*(typed[c.name] for c in DAILY_FLIGHTS.columns), F.col(SOURCE_FILE))


@dataclass
class GlueBookmarkedSource:
    """New validated files (the gate's normalized copies) through a Glue job bookmark."""

    glue_context: Any
    validated_uri: str
    s3: Any
    raw_prefix: str = "raw/"
    quarantine_prefix: str = "quarantine/"

    def _frame(self, paths: Sequence[str], **bookmark: str) -> DataFrame:
        frame: DataFrame = self.glue_context.create_dynamic_frame.from_options(
            connection_type="s3",
            connection_options={"paths": list(paths), "recurse": True},
            format="csv",
            format_options={"withHeader": True, "attachFilename": SOURCE_FILE},
            **bookmark,
        ).toDF()
        return frame

    def new_flights(self) -> NewFlights:
        frame = self._frame([self.validated_uri], transformation_ctx="validated_flights")
        if not frame.columns:
            return NewFlights(None, [])
        uris = [row[SOURCE_FILE] for row in frame.select(SOURCE_FILE).distinct().collect()]
        files, refused = [], {}
        for uri in sorted(uris):
            try:
                files.append(describe_object(self.s3, uri, self.raw_prefix))
            except NotADailyFileError as exc:
                refused[uri] = str(exc)
        if not files:
            return NewFlights(None, [], refused=refused)
        return replace(self._flights(frame, files), refused=refused)

    def read(self, files: Sequence[SourceFile]) -> NewFlights:
        # Not through the bookmark: this run has read these files already.
        return self._flights(self._frame([f.uri for f in files]), files)

    @staticmethod
    def _flights(frame: DataFrame, files: Sequence[SourceFile]) -> NewFlights:
        # The Glue reader already names each row's file by its S3 URI.
        origins = [FileOrigin(f.uri, f.flight_date) for f in files]
        accepted = contract_columns(frame).where(F.col(SOURCE_FILE).isin([f.uri for f in files]))
        return NewFlights(accepted, files, origins)

    def content(self, file: SourceFile) -> bytes:
        bucket, key = split_s3_uri(file.uri)
        body = self.s3.get_object(Bucket=bucket, Key=key, VersionId=file.version)["Body"]
        return bytes(body.read())

    def set_aside(self, rejection: Rejection, job_run_id: str) -> None:
        quarantine_rejected(self.s3, rejection, self.quarantine_prefix, job_run_id)


def describe_object(s3: Any, uri: str, raw_prefix: str) -> SourceFile:
    """The version id, content sha256 and upload of an S3 object (ETags are not content
    hashes)."""
    bucket, key = split_s3_uri(uri)
    flight_date_of(key)
    body = s3.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    for chunk in body["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    version = body.get("VersionId") or "null"
    upload_version = body.get("Metadata", {}).get(SOURCE_VERSION)
    return validated_copy(uri, version, digest.hexdigest(), upload_version, raw_prefix)


@dataclass
class S3AirportSource:
    spark: Any
    dimension_uri: str

    def airports(self) -> DataFrame:
        header = header_names(self.spark.read.text(self.dimension_uri).first()[0])
        return read_airports(self.spark, self.dimension_uri, header)
