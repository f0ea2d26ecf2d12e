"""The flight ETL job on the local twin: ``jobs.load.run`` bound to local I/O.

The bookmark is the warehouse's own audit table: a file version is new until its audit row
exists, and that row commits in the same transaction as its rows. So the bookmark advances
exactly when the data lands, which is what makes a killed run safe to repeat.

The endpoint's job runs go through the load's own entrypoint with ``TwinLoad`` as its binding;
``run_local_etl`` is a load run by hand (``flightpipe load``, tests).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from jobs.flight_etl import LoadBinding
from jobs.flights import FileOrigin, read_airports, read_daily_files
from jobs.load import LoadResult, NewFlights, daily_files, run, validated_copy
from jobs.quarantine import quarantine_rejected
from pipeline.core.settings import JobSettings
from pipeline.core.uploads import S3_REQUESTS_AT_ONCE, split_s3_uri
from pipeline.core.warehouse import Rejection, SourceFile
from pipeline.local.objects import (
    CachedObject,
    ObjectCache,
    latest_versions,
    object_cache,
)
from pipeline.local.postgres import PostgresWarehouse
from pipeline.local.services import LocalServices
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@dataclass
class LocalFlightSource:
    """New validated daily-file versions, as cached copies for Spark; any other new object
    under the validated prefix is reported, as Glue's source reports it."""

    spark: SparkSession
    s3: Any
    settings: JobSettings
    warehouse: PostgresWarehouse
    cache: ObjectCache
    _cached: dict[str, CachedObject] = field(default_factory=dict, init=False)
    """The local copy of each new file, by URI."""

    def new_flights(self) -> NewFlights:
        prefix = self.settings.storage.validated_prefix
        loaded = self.warehouse.loaded_versions()
        new = {
            v.uri: v
            for v in latest_versions(self.s3, self.settings.raw_bucket, prefix)
            if (v.key, v.version) not in loaded
        }
        daily, refused = daily_files(new)
        fresh = [new[uri] for uri in daily]
        if not fresh:
            return NewFlights(None, [], refused=refused)
        # Usually the gate's copies are cached already; any that are not are small and many
        # after a backfill: fetch them concurrently. Each record names the upload it came from.
        with ThreadPoolExecutor(max_workers=S3_REQUESTS_AT_ONCE) as pool:
            cached: list[CachedObject] = list(pool.map(lambda v: self.cache.get(self.s3, v), fresh))
        self.cache.keep_only(fresh)  # older versions of these files will never be loaded
        raw_prefix = self.settings.storage.raw_prefix
        files = [
            validated_copy(
                c.version.uri,
                c.version.version,
                c.sha256,
                c.metadata,
                raw_prefix,
                validated_at=c.version.last_modified,  # when the gate promoted it
            )
            for c in cached
        ]
        self._cached.update((c.version.uri, c) for c in cached)
        return replace(self.read(files), refused=refused)

    def read(self, files: Sequence[SourceFile]) -> NewFlights:
        cached = [self._cached[f.uri] for f in files]
        flights = read_daily_files(self.spark, {str(c.path): c.header for c in cached})
        uris = {c.path: f.uri for c, f in zip(cached, files, strict=True)}
        origins = [FileOrigin(f.uri, f.flight_date) for f in files]
        return NewFlights(named_by_uri(flights, uris), files, origins)

    def row_bounds(self, files: Sequence[SourceFile]) -> dict[str, int]:
        """The most rows each file can load, by key: its cached copy's lines but the header."""
        return {f.key: max(self._cached[f.uri].lines - 1, 0) for f in files}

    def content(self, file: SourceFile) -> bytes:
        return self._cached[file.uri].path.read_bytes()

    def set_aside(self, rejection: Rejection, job_run_id: str) -> None:
        prefix = self.settings.storage.quarantine_prefix
        quarantine_rejected(self.s3, rejection, prefix, job_run_id)


def named_by_uri(flights: DataFrame, uris: Mapping[Path, str]) -> DataFrame:
    """``flights`` with each row's ``source_file`` the URI of the object whose cached copy (a
    path of ``uris``) it was read from: Spark names the copy, the load knows the object."""
    from pyspark.sql import functions as F

    from jobs.flights import SOURCE_FILE, literal_rows

    spelled = spark_paths(flights)
    names = literal_rows(
        flights.sparkSession,
        [{"_read": spelled[os.path.abspath(path)], "_uri": uri} for path, uri in uris.items()],
        "_read: string, _uri: string",
    )
    return (
        flights.withColumnRenamed(SOURCE_FILE, "_read")
        .join(F.broadcast(names), on="_read", how="left")
        .drop("_read")
        .withColumnRenamed("_uri", SOURCE_FILE)
    )


def spark_paths(frame: DataFrame) -> dict[str, str]:
    """How ``input_file_name()`` spells each local file ``frame`` reads (a ``file://`` URI,
    percent-encoded), by the file's absolute path.

    One call for all the files, decoding Spark's spelling rather than reproducing its encoding.
    """
    return {os.path.abspath(unquote(urlsplit(uri).path)): uri for uri in frame.inputFiles()}


@dataclass
class LocalAirportSource:
    spark: SparkSession
    s3: Any
    uri: str
    """The dimension in use, ``s3://<dimension bucket>/<validated dimension key>``."""
    cache: ObjectCache

    def airports(self) -> DataFrame:
        bucket, key = split_s3_uri(self.uri)
        versions = [v for v in latest_versions(self.s3, bucket, key) if v.key == key]
        if not versions:
            raise FileNotFoundError(
                f"no valid airport dimension at {self.uri}: upload one with "
                "`flightpipe ingest --dim airport_codes.csv ...`"
            )
        cached = self.cache.get(self.s3, versions[0])
        self.cache.keep_only(versions[:1])
        return read_airports(self.spark, str(cached.path), cached.header)


@dataclass
class StreamingPostgresSink:
    """Spark writes staged parts to a folder; each finished part is COPYed at once.

    This is the local shape of "stage, then COPY": Spark and PostgreSQL work at the same time,
    and the rows are written into the warehouse once, straight into the table.
    """

    warehouse: PostgresWarehouse
    staging_root: Path
    row_bounds: Callable[[Sequence[SourceFile]], Mapping[str, int]]
    """The most rows each file can load, by key (``LocalFlightSource.row_bounds``)."""
    poll_seconds: float = 0.05

    def replace_days(
        self,
        lines: DataFrame,
        files: Sequence[SourceFile],
        job_run_id: str,
        rejections: Sequence[Rejection] = (),
    ) -> Mapping[str, int]:
        staging = self.staging_root / job_run_id
        shutil.rmtree(staging, ignore_errors=True)
        parts = self._parts(lines, staging)
        try:
            return self.warehouse.replace_days(
                files, job_run_id, parts, rejections, row_bounds=self.row_bounds(files)
            )
        finally:
            # Close now, not at garbage collection: a traceback keeps the generator alive, and
            # closing is what cancels a Spark write the COPY no longer wants.
            parts.close()
            shutil.rmtree(staging, ignore_errors=True)

    def record_rejections(self, rejections: Sequence[Rejection], job_run_id: str) -> None:
        self.warehouse.record_rejections(rejections, job_run_id)

    def _parts(self, lines: DataFrame, staging: Path) -> Generator[Path, None, None]:
        """Run the Spark write in the background and yield each part as it is finished; a part
        is removed once the consumer asks for the next.

        If the consumer stops early (the COPY failed), the Spark job is cancelled, so it
        neither keeps the shared session busy nor writes into a folder being removed.
        """
        failure: list[BaseException] = []
        done = threading.Event()
        context = lines.sparkSession.sparkContext
        group = f"stage-{staging.name}"

        def write() -> None:
            try:
                context.setJobGroup(group, f"stage {staging.name}", interruptOnCancel=True)
                lines.write.text(str(staging))
            except BaseException as exc:  # handed to the consuming thread and re-raised there
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=write, name="spark-stage-writer", daemon=True).start()
        sent: set[str] = set()
        try:
            while True:
                finished = done.is_set()
                # Version 2 of the file committer moves a part into place when its task ends.
                for part in sorted(staging.glob("part-*")) if staging.exists() else []:
                    if part.name not in sent:
                        # The server may read it as another OS user (postgres, when run by root).
                        if not sent:
                            staging.chmod(0o755)
                        sent.add(part.name)
                        part.chmod(0o644)
                        yield part
                        # Copied: freeing it now spreads the removal over the load instead of
                        # adding it to the end (half a second for 5M rows).
                        part.unlink()
                if finished:
                    break
                time.sleep(self.poll_seconds)
        finally:
            if not done.is_set():
                context.cancelJobGroup(group)
                done.wait()
        if failure:
            raise failure[0]


def new_job_run_id() -> str:
    return f"local-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"


@contextmanager
def _exclusive_run(
    settings: Settings, warehouse: PostgresWarehouse, job_run_id: str
) -> Iterator[Path]:
    """Hold the run lock for the block (waiting ``timing.lock_wait_seconds`` for it), with an
    empty staging folder; yields the folder."""
    staging = LocalServices(settings).staging_dir
    with warehouse.exclusive_run(settings.timing.lock_wait_seconds):
        log.info("run start job_run_id=%s", job_run_id)
        # Holding the lock, no other run is active: staged parts still here are a killed run's.
        shutil.rmtree(staging, ignore_errors=True)
        yield staging


def _local_io(
    settings: Settings,
    staging: Path,
    *,
    spark: SparkSession,
    s3: Any,
    job: JobSettings,
    warehouse: PostgresWarehouse,
    dimension_uri: str,
) -> tuple[LocalFlightSource, LocalAirportSource, StreamingPostgresSink]:
    """A run's source, dimension and sink on the twin, staging in ``staging``."""
    objects = object_cache(settings)
    flights = LocalFlightSource(spark, s3, job, warehouse, objects)
    return (
        flights,
        LocalAirportSource(spark, s3, dimension_uri, objects),
        StreamingPostgresSink(warehouse, staging, flights.row_bounds),
    )


def run_local_etl(
    settings: Settings, spark: SparkSession, s3: Any, warehouse: PostgresWarehouse
) -> LoadResult:
    """One load run by hand, under the run lock: plan from the bookmark, transform, load.

    It has no run of the state machine, so it publishes no alert: its caller reports what it
    rejected.
    """
    job = settings.job_settings().with_buckets(settings.buckets())
    dimension = f"s3://{job.dimension_bucket}/{job.storage.validated_dimension_key}"
    job_run_id = new_job_run_id()
    with _exclusive_run(settings, warehouse, job_run_id) as staging:
        io = _local_io(
            settings,
            staging,
            spark=spark,
            s3=s3,
            job=job,
            warehouse=warehouse,
            dimension_uri=dimension,
        )
        result = run(*io, job_run_id)
    log.info(
        "run end job_run_id=%s files=%d rows=%d rejected=%d",
        job_run_id,
        len(result.rows_by_key),
        result.rows,
        len(result.rejected),
    )
    return result


@dataclass(frozen=True)
class TwinLoad:
    """The twin's binding of the load's entrypoint (``jobs.flight_etl.main``), for the job
    runs of its endpoint: the endpoint's own clients, its one SparkSession, the twin's
    PostgreSQL and the audit-table bookmark, under the run lock.

    ``settings`` are the twin's own (ports, folders, the lock wait); what a run loads, from
    which locations into which database, comes from the run's arguments alone.
    """

    settings: Settings
    spark: Callable[[], SparkSession]
    """The endpoint's SparkSession, started on first use."""
    s3: Any
    sns: Any
    stepfunctions: Any
    cloudwatch: Any
    """Where the runs put their metrics: the endpoint's CloudWatch."""
    log_path: Path
    """The endpoint's log, where a run's whole error is."""

    def log_location(self, job_run_id: str) -> str:
        return str(self.log_path)

    @contextmanager
    def bind(self, settings: JobSettings, args: Mapping[str, str]) -> Iterator[LoadBinding]:
        # The run's Redshift database is the PostgreSQL database of that name on the twin's
        # server.
        server = self.settings.warehouse.model_copy(update={"database": args["redshift_database"]})
        warehouse = PostgresWarehouse(
            LocalServices(self.settings.model_copy(update={"warehouse": server})).warehouse_url,
            own_server=not server.url,
        )
        # The validated files are listed where the run's --validated_uri says.
        raw, validated = split_s3_uri(args["validated_uri"])
        storage = settings.storage.model_copy(update={"validated_prefix": validated})
        job = settings.model_copy(update={"storage": storage}).with_buckets({"raw": raw})
        with _exclusive_run(self.settings, warehouse, args["JOB_RUN_ID"]) as staging:
            io = _local_io(
                self.settings,
                staging,
                spark=self.spark(),
                s3=self.s3,
                job=job,
                warehouse=warehouse,
                dimension_uri=args["dimension_uri"],
            )
            yield LoadBinding(*io, self.sns, self.stepfunctions, self.cloudwatch)
