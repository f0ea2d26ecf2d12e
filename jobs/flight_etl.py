"""The flight ETL job: new daily files, enriched with the airport dimension, into the warehouse.

``run`` is the job, identical on both runtimes; it talks to the world through three small
interfaces. On AWS Glue, ``main`` binds them to the Glue bookmarked source, S3 and Redshift
(the only code here that imports ``awsglue``); the local twin binds them to the local object
store and PostgreSQL (``pipeline.local.etl``).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from jobs.quarantine import quarantine
from jobs.rejects import first_refusal, is_data_error, shown
from pipeline.core.contract import (
    DAILY_FLIGHTS,
    SOURCE_SHA256,
    SOURCE_VERSION,
    Dialect,
    NotADailyFileError,
    flight_date_of,
    header_names,
)
from pipeline.core.errors import plain_error
from pipeline.core.logs import configure_logging
from pipeline.core.settings import JobSettings
from pipeline.core.uploads import run_name
from pipeline.core.warehouse import (
    Rejection,
    SourceFile,
    WarehouseRefusedError,
    copy_statement,
    load_statements,
    reject_insert,
)

log = logging.getLogger(__name__)


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
    rejected: Sequence[Rejection] = ()
    """File versions set aside because the load failed on their rows; recorded and moved to
    quarantine, while the other files loaded."""

    @property
    def rows(self) -> int:
        return sum(self.rows_by_key.values())


class FlightSource(Protocol):
    def new_flights(self) -> NewFlights:
        """Daily-file versions not yet loaded (the bookmark), as contract columns + source_file."""
        ...

    def read(self, files: Sequence[SourceFile]) -> NewFlights:
        """The rows of exactly these files (some of the new ones), never reading any other."""
        ...

    def content(self, file: SourceFile) -> bytes:
        """The file version's bytes, for a diagnosis of what in it the load refused."""
        ...

    def set_aside(self, rejection: Rejection, job_run_id: str) -> None:
        """Move the rejected version out of later loads' way, into quarantine with its reason."""
        ...


class AirportSource(Protocol):
    def airports(self) -> DataFrame:
        """The current airport dimension."""
        ...


class Warehouse(Protocol):
    def replace_days(
        self,
        lines: DataFrame,
        files: Sequence[SourceFile],
        job_run_id: str,
        rejections: Sequence[Rejection] = (),
    ) -> Mapping[str, int]:
        """Replace the files' days with the rows of ``lines`` (staged lines,
        see ``enrich_to_staged``), audit the files and record ``rejections``, in one
        transaction. A row the warehouse refuses raises ``WarehouseRefusedError``.

        Returns the rows loaded per source key.
        """
        ...

    def record_rejections(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        """Record ``rejections`` in a transaction of their own (no file is left to load)."""
        ...


class RejectionAlerts(Protocol):
    def publish(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        """Alert on-call of each rejected version that no run of its own will report."""
        ...


def run(
    source: FlightSource,
    dimension: AirportSource,
    warehouse: Warehouse,
    job_run_id: str,
    alerts: RejectionAlerts | None = None,
) -> LoadResult:
    """One job run: load every new daily-file version, or nothing when there is none.

    A load that fails on the data never blocks the other files: the file whose rows failed
    is set aside with the reason, and the others load without it. The file is the one the
    warehouse names, else the first whose content breaks the contract (``first_refusal``),
    else it is found by halving the files, each half a load of its own, until one is left.
    Its reject record commits with the next load (or alone when nothing is left), then the
    file moves to quarantine, so a crash in between leaves it recorded, hence never new again.
    Any other failure (a lost connection, a busy lock) fails the run as before.
    """
    new = source.new_flights()
    if new.flights is None or not new.files:
        return LoadResult(job_run_id, {}, new.refused)
    airports = dimension.airports()
    loaded: dict[str, int] = {}
    rejected: list[Rejection] = []
    unrecorded: list[Rejection] = []
    batches: list[Sequence[SourceFile]] = [new.files]
    read: NewFlights | None = new  # the bookmark's read serves the first attempt
    scanned: set[str] = set()  # files the scan found nothing in: halving never rescans them
    while batches:
        batch = batches.pop(0)
        flights = read or source.read(batch)
        read = None
        assert flights.flights is not None
        lines = enrich_to_staged(flights.flights, flights.origins, airports)
        try:
            loaded.update(warehouse.replace_days(lines, batch, job_run_id, unrecorded))
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning("load of %d file(s) failed on the data: %s", len(batch), plain_error(exc))
            rejection = _culprit(exc, batch, source, scanned)
            if rejection is None and len(batch) > 1:
                half = len(batch) // 2
                batches[:0] = [batch[:half], batch[half:]]
                continue
            rejection = rejection or Rejection(
                batch[0], _cut(f"the load failed on it: {plain_error(exc)}")
            )
            log.warning("rejected %s: %s", rejection.file.uri, rejection.reason)
            rejected.append(rejection)
            unrecorded.append(rejection)
            rest = [f for f in batch if f != rejection.file]
            if rest:
                batches.insert(0, rest)
        else:
            unrecorded = []
    if unrecorded:
        warehouse.record_rejections(unrecorded, job_run_id)
    for rejection in rejected:
        source.set_aside(rejection, job_run_id)
    if alerts is not None and rejected:
        alerts.publish(rejected, job_run_id)
    return LoadResult(job_run_id, loaded, new.refused, tuple(rejected))


def _cut(text: str, characters: int = 240) -> str:
    """A reason short enough for its record."""
    return text if len(text) <= characters else text[: characters - 3] + "..."


def _culprit(
    exc: Exception, batch: Sequence[SourceFile], source: FlightSource, scanned: set[str]
) -> Rejection | None:
    """The file of ``batch`` whose rows the load failed on, with what in it failed; None when
    neither the error nor the files' contents say which file it is. ``scanned`` holds the
    files the scan already found nothing in, and gains the ones it scans now."""
    named = [f for f in batch if isinstance(exc, WarehouseRefusedError) and f.uri == exc.uri]
    for file in named or [f for f in batch if f.uri not in scanned]:
        refusal = first_refusal(DAILY_FLIGHTS, source.content(file))
        if refusal is not None:
            return Rejection(file, refusal.reason, refusal.line, refusal.column, refusal.value)
        scanned.add(file.uri)
    if named and isinstance(exc, WarehouseRefusedError):
        # The warehouse named the row, and the file breaks no rule the scan knows.
        value = None if exc.value is None else shown(exc.value)
        return Rejection(
            named[0], _cut(f"the warehouse refused it: {exc}"), None, exc.column, value
        )
    return None


# --- Shared by both runtimes' bindings ------------------------------------------------------


def split_s3_uri(uri: str) -> tuple[str, str]:
    without = uri.removeprefix("s3://")
    bucket, _, key = without.partition("/")
    return bucket, key


def quarantined_key(file: SourceFile, quarantine_prefix: str) -> str:
    """Where a rejected validated copy goes: the quarantine prefix and its name."""
    return quarantine_prefix + file.key.rsplit("/", 1)[-1]


def quarantine_rejected(
    s3: Any, rejection: Rejection, quarantine_prefix: str, job_run_id: str
) -> str:
    """Move a rejected validated copy to quarantine, the reason beside it, as the gate moves a
    refused upload; return the quarantined copy's URI."""
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
    latest = s3.head_object(Bucket=bucket, Key=file.key).get("VersionId") == file.version
    quarantine(
        s3,
        bucket,
        (file.key, file.version),
        destination,
        document=document,
        metadata=metadata,
        hide_key=latest,
    )
    return f"s3://{bucket}/{destination}"


@dataclass
class SnsRejectionAlerts:
    """Alerts for rejected versions that have no run of their own to report them.

    A version promoted from an upload has a run (the router names it ``run_name``); that run
    reads the reject record after its load step and fails with the reason, so its alert is the
    one. A copy no upload names (written by hand, or without ``source-version``), or one whose
    run does not exist, would go unreported: this publishes its alert instead.
    """

    sns: Any
    sfn: Any
    topic_arn: str
    state_machine_arn: str
    env: str
    quarantine_prefix: str
    log_location: str
    """Where the load's whole log is, for the alert to say."""

    def publish(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        for rejection in rejections:
            if self._has_run(rejection.file):
                continue
            file = rejection.file
            bucket, _ = split_s3_uri(file.uri)
            message = (
                f"flightpipe load REJECTED {file.uri} (version {file.version}): "
                f"{rejection.reason}\n"
                "No run of its own reports it (no upload names this copy); the other files "
                f"loaded, this one moved to s3://{bucket}/"
                f"{quarantined_key(file, self.quarantine_prefix)} with the reason beside it. "
                f"Load run {job_run_id}; full log: {self.log_location}."
            )
            self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=f"flightpipe {self.env}: file rejected at load",
                Message=message,
                MessageAttributes={"outcome": {"DataType": "String", "StringValue": "failed"}},
            )

    def _has_run(self, file: SourceFile) -> bool:
        if not file.upload_key or not file.upload_version:
            return False
        bucket, _ = split_s3_uri(file.uri)
        name = run_name(bucket, file.upload_key, file.upload_version)
        executions = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
        try:
            self.sfn.describe_execution(executionArn=f"{executions}:{name}")
        except self.sfn.exceptions.ExecutionDoesNotExist:
            return False
        return True


# --- AWS Glue bindings -------------------------------------------------------------------------

GLUE_ARGUMENTS = (
    "JOB_NAME",
    "settings",
    "validated_uri",
    "dimension_uri",
    "staging_uri",
    "redshift_workgroup",
    "redshift_database",
    "redshift_copy_role_arn",
    "alert_topic_arn",
    "state_machine_arn",
)
"""What the entrypoint asks ``getResolvedOptions`` for. Not ``JOB_RUN_ID``: Glue's parser
registers ``--JOB_ID`` and ``--JOB_RUN_ID`` itself (asking again is an argparse conflict) and
returns them whatever is asked; Glue passes both to every run. ``--settings`` is a default
argument of the job (``pipeline.workflow.job_arguments``); the state machine passes the rest."""


def parse_arguments(argv: Sequence[str]) -> tuple[JobSettings, dict[str, str]]:
    """The job settings and every argument of one run, from the argument vector Glue hands
    the script. The locations the job reads and writes are the run's arguments."""
    from awsglue.utils import getResolvedOptions

    args: dict[str, str] = getResolvedOptions(list(argv), list(GLUE_ARGUMENTS))
    return JobSettings.model_validate_json(args["settings"]), args


GLUE_LOG_GROUP = "/aws-glue/jobs/error"
"""Where a Glue job's errors are logged, one stream per job run id."""


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
        origins = [FileOrigin(f.uri, f.uri, f.flight_date) for f in files]
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
    hashes); the upload is the raw key of the file's name and the copy's source version."""
    bucket, key = split_s3_uri(uri)
    day = flight_date_of(key)
    body = s3.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    for chunk in body["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    version = body.get("VersionId") or "null"
    upload_version = body.get("Metadata", {}).get(SOURCE_VERSION)
    return SourceFile(
        key=key,
        version=version,
        sha256=digest.hexdigest(),
        flight_date=day,
        uri=uri,
        upload_key=raw_prefix + key.rsplit("/", 1)[-1] if upload_version else None,
        upload_version=upload_version,
    )


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
        self,
        lines: DataFrame,
        files: Sequence[SourceFile],
        job_run_id: str,
        rejections: Sequence[Rejection] = (),
    ) -> Mapping[str, int]:
        staged = f"{self.staging_uri.rstrip('/')}/{job_run_id}/"
        lines.write.mode("overwrite").text(staged)
        copy = copy_statement(Dialect.REDSHIFT, staged_uri=staged, iam_role=self.copy_role_arn)
        statements = load_statements(files, job_run_id, copy, rejections)
        batch = self.data_api.batch_execute_statement(
            WorkgroupName=self.workgroup, Database=self.database, Sqls=statements.in_order()
        )
        self._wait(batch["Id"])
        query = self._execute(statements.rows_loaded)
        result = self.data_api.get_statement_result(Id=query)
        return {
            record[0]["stringValue"]: int(record[1]["longValue"]) for record in result["Records"]
        }

    def record_rejections(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        self._execute(reject_insert(rejections, job_run_id))

    def _execute(self, sql: str) -> str:
        """Run one statement (a transaction of its own) to its end; return its id."""
        statement = self.data_api.execute_statement(
            WorkgroupName=self.workgroup, Database=self.database, Sql=sql
        )
        self._wait(statement["Id"])
        return str(statement["Id"])

    def _wait(self, statement_id: str) -> None:
        while True:
            status = self.data_api.describe_statement(Id=statement_id)
            if status["Status"] == "FINISHED":
                return
            if status["Status"] in ("FAILED", "ABORTED"):
                error = str(status.get("Error"))
                message = f"Redshift statement {statement_id} {status['Status']}: {error}"
                # COPY refuses a row with this one message, whatever the row and the reason.
                if any(marker in error for marker in _REDSHIFT_LOAD_ERRORS):
                    raise WarehouseRefusedError(message)
                raise RuntimeError(message)
            self.sleep(self.poll_seconds)


_REDSHIFT_LOAD_ERRORS = ("sys_load_error_detail", "stl_load_errors")
"""What Redshift's COPY says when it refused a row: where the details are."""


class LoadFailedError(RuntimeError):
    """The load job failed; the message is the cause in one line and where the full log is."""


def main(argv: Sequence[str]) -> LoadResult:
    """The Glue entrypoint: bind the job to Glue, S3 and Redshift, run it, commit the bookmark."""
    import boto3
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    configure_logging(json_lines=True, verbose=True)
    settings, args = parse_arguments(argv)
    storage = settings.storage
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(args["JOB_NAME"], args)
    job_run_id = args["JOB_RUN_ID"]
    where = f"CloudWatch log group {GLUE_LOG_GROUP}, stream {job_run_id}"
    s3 = boto3.client("s3")
    try:
        result = run(
            GlueBookmarkedSource(
                glue_context,
                args["validated_uri"],
                s3,
                raw_prefix=storage.raw_prefix,
                quarantine_prefix=storage.quarantine_prefix,
            ),
            S3AirportSource(glue_context.spark_session, args["dimension_uri"]),
            RedshiftWarehouse(
                boto3.client("redshift-data"),
                workgroup=args["redshift_workgroup"],
                database=args["redshift_database"],
                staging_uri=args["staging_uri"],
                copy_role_arn=args["redshift_copy_role_arn"],
            ),
            job_run_id=job_run_id,
            alerts=SnsRejectionAlerts(
                boto3.client("sns"),
                boto3.client("stepfunctions"),
                topic_arn=args["alert_topic_arn"],
                state_machine_arn=args["state_machine_arn"],
                env=settings.env,
                quarantine_prefix=storage.quarantine_prefix,
                log_location=where,
            ),
        )
    except Exception as exc:
        # The run's ErrorMessage is what the alert quotes: one plain line, not a JVM trace.
        log.exception("load failed")
        raise LoadFailedError(f"{plain_error(exc)} (full log: {where})") from None
    # The bookmark advances only after the warehouse transaction committed.
    job.commit()
    return result


if __name__ == "__main__":
    main(sys.argv)
