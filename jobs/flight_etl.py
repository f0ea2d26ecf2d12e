"""The flight ETL job: new daily files, enriched with the airport dimension, into the warehouse.

``run`` is the job, identical on both runtimes; it talks to the world through three small
interfaces. On AWS Glue, ``main`` binds them to the Glue bookmarked source, S3 and Redshift
(the only code here that imports ``awsglue``); the local twin binds them to the local object
store and PostgreSQL (``pipeline.local.etl``).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.flights import (
    SOURCE_FILE,
    FileOrigin,
    enrich_to_staged,
    read_airports,
    read_schema,
)
from pipeline.contract import (
    DAILY_FLIGHTS,
    Dialect,
    NotADailyFileError,
    flight_date_of,
    header_names,
)
from pipeline.logs import configure_logging
from pipeline.warehouse import SourceFile, copy_statement, load_statements


@dataclass(frozen=True)
class NewFlights:
    """What the bookmarked source found: the rows of the new file versions, and those versions."""

    flights: DataFrame | None
    """Contract columns plus ``source_file``, the path Spark read each row from."""
    files: Sequence[SourceFile]
    origins: Sequence[FileOrigin] = ()
    """Per file: the path Spark read, the object URI and the flight date."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Objects that are not daily files, with the reason; they are reported, never loaded."""


@dataclass(frozen=True)
class LoadResult:
    job_run_id: str
    rows_by_key: Mapping[str, int]
    refused: Mapping[str, str]

    @property
    def rows(self) -> int:
        return sum(self.rows_by_key.values())


class FlightSource(Protocol):
    def new_flights(self) -> NewFlights:
        """Daily-file versions not yet loaded (the bookmark), as contract columns + source_file."""
        ...


class AirportSource(Protocol):
    def airports(self) -> DataFrame:
        """The current airport dimension."""
        ...


class Warehouse(Protocol):
    def replace_days(
        self, lines: DataFrame, files: Sequence[SourceFile], job_run_id: str
    ) -> Mapping[str, int]:
        """Replace the files' days with the rows of ``lines`` (staged lines,
        see ``enrich_to_staged``) and audit the files, in one transaction.

        Returns the rows loaded per source key.
        """
        ...


def run(
    source: FlightSource, dimension: AirportSource, warehouse: Warehouse, job_run_id: str
) -> LoadResult:
    """One job run: load every new daily-file version, or nothing when there is none."""
    new = source.new_flights()
    if new.flights is None or not new.files:
        return LoadResult(job_run_id, {}, new.refused)
    lines = enrich_to_staged(new.flights, new.origins, dimension.airports())
    rows = warehouse.replace_days(lines, new.files, job_run_id)
    return LoadResult(job_run_id, rows, new.refused)


# --- AWS Glue bindings -------------------------------------------------------------------------

GLUE_ARGUMENTS = (
    "JOB_NAME",
    "JOB_RUN_ID",
    "validated_uri",
    "dimension_uri",
    "staging_uri",
    "redshift_workgroup",
    "redshift_database",
    "redshift_copy_role_arn",
)


def split_s3_uri(uri: str) -> tuple[str, str]:
    without = uri.removeprefix("s3://")
    bucket, _, key = without.partition("/")
    return bucket, key


def contract_columns(frame: DataFrame) -> DataFrame:
    """Contract columns (matched by header name, as ``read_schema`` does) cast to their types."""
    headers = [name for name in frame.columns if name != SOURCE_FILE]
    schema = read_schema(DAILY_FLIGHTS, headers)
    typed = {
        field.name: F.col(f"`{header}`").cast(field.dataType).alias(field.name)
        for header, field in zip(headers, schema.fields, strict=True)
    }
    return frame.select(*(typed[c.name] for c in DAILY_FLIGHTS.columns), F.col(SOURCE_FILE))


@dataclass
class GlueBookmarkedSource:
    """New validated files (the gate's normalized copies) through a Glue job bookmark."""

    glue_context: Any
    validated_uri: str
    s3: Any

    def new_flights(self) -> NewFlights:
        frame = self.glue_context.create_dynamic_frame.from_options(
            connection_type="s3",
            connection_options={"paths": [self.validated_uri], "recurse": True},
            format="csv",
            format_options={"withHeader": True, "attachFilename": SOURCE_FILE},
            transformation_ctx="validated_flights",
        ).toDF()
        if not frame.columns:
            return NewFlights(None, [])
        uris = [row[SOURCE_FILE] for row in frame.select(SOURCE_FILE).distinct().collect()]
        files, refused = [], {}
        for uri in sorted(uris):
            try:
                files.append(describe_object(self.s3, uri))
            except NotADailyFileError as exc:
                refused[uri] = str(exc)
        if not files:
            return NewFlights(None, [], refused=refused)
        # The Glue reader already names each row's file by its S3 URI.
        origins = [FileOrigin(f.uri, f.uri, f.flight_date) for f in files]
        accepted = contract_columns(frame).where(F.col(SOURCE_FILE).isin([f.uri for f in files]))
        return NewFlights(accepted, files, origins, refused)


def describe_object(s3: Any, uri: str) -> SourceFile:
    """The version id and content sha256 of an S3 object (ETags are not content hashes)."""
    bucket, key = split_s3_uri(uri)
    day = flight_date_of(key)
    body = s3.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    for chunk in body["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    version = body.get("VersionId") or "null"
    return SourceFile(key=key, version=version, sha256=digest.hexdigest(), flight_date=day, uri=uri)


@dataclass
class S3AirportSource:
    spark: Any
    dimension_uri: str

    def airports(self) -> DataFrame:
        header = header_names(self.spark.read.text(self.dimension_uri).first()[0])
        return read_airports(self.spark, self.dimension_uri, header)


@dataclass
class RedshiftWarehouse:
    """Redshift Serverless through the Data API: stage lines to S3, then one batched transaction.

    ``BatchExecuteStatement`` runs its statements as a single transaction, so the DELETE, the
    COPY and the audit INSERT commit together.
    """

    data_api: Any
    workgroup: str
    database: str
    staging_uri: str
    copy_role_arn: str
    poll_seconds: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def replace_days(
        self, lines: DataFrame, files: Sequence[SourceFile], job_run_id: str
    ) -> Mapping[str, int]:
        staged = f"{self.staging_uri.rstrip('/')}/{job_run_id}/"
        lines.write.mode("overwrite").text(staged)
        copy = copy_statement(Dialect.REDSHIFT, staged_uri=staged, iam_role=self.copy_role_arn)
        statements = load_statements(files, job_run_id, copy)
        batch = self.data_api.batch_execute_statement(
            WorkgroupName=self.workgroup, Database=self.database, Sqls=statements.in_order()
        )
        self._wait(batch["Id"])
        query = self.data_api.execute_statement(
            WorkgroupName=self.workgroup,
            Database=self.database,
            Sql=statements.rows_loaded,
        )
        self._wait(query["Id"])
        result = self.data_api.get_statement_result(Id=query["Id"])
        return {
            record[0]["stringValue"]: int(record[1]["longValue"]) for record in result["Records"]
        }

    def _wait(self, statement_id: str) -> None:
        while True:
            status = self.data_api.describe_statement(Id=statement_id)
            if status["Status"] == "FINISHED":
                return
            if status["Status"] in ("FAILED", "ABORTED"):
                raise RuntimeError(
                    f"Redshift statement {statement_id} {status['Status']}: {status.get('Error')}"
                )
            self.sleep(self.poll_seconds)


def main(argv: Sequence[str]) -> LoadResult:
    """The Glue entrypoint: bind the job to Glue, S3 and Redshift, run it, commit the bookmark."""
    import boto3
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    configure_logging(json_lines=True, verbose=True)
    args = getResolvedOptions(list(argv), list(GLUE_ARGUMENTS))
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(args["JOB_NAME"], args)
    result = run(
        GlueBookmarkedSource(glue_context, args["validated_uri"], boto3.client("s3")),
        S3AirportSource(glue_context.spark_session, args["dimension_uri"]),
        RedshiftWarehouse(
            boto3.client("redshift-data"),
            workgroup=args["redshift_workgroup"],
            database=args["redshift_database"],
            staging_uri=args["staging_uri"],
            copy_role_arn=args["redshift_copy_role_arn"],
        ),
        job_run_id=args["JOB_RUN_ID"],
    )
    # The bookmark advances only after the warehouse transaction committed.
    job.commit()
    return result


if __name__ == "__main__":
    main(sys.argv)
