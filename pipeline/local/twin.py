"""The local twin as one object: services, buckets, warehouse and the job, for the CLI and tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.load import LoadResult
from pipeline.core.contract import FLIGHT_LOAD_AUDIT, FLIGHT_PROCESSED, SOURCE_VERSION
from pipeline.core.uploads import Upload
from pipeline.local.aws import read_alerts
from pipeline.local.durable import RunArchive
from pipeline.local.etl import run_local_etl
from pipeline.local.objects import aws_client, ensure_buckets, s3_client
from pipeline.local.postgres import PostgresWarehouse
from pipeline.local.resources import Resources, ensure
from pipeline.local.runs import Runs
from pipeline.local.services import LocalServices
from pipeline.local.validation import TwinValidation
from pipeline.settings import Settings
from quality.reports import QualityReports

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.validation import Validated

# An airport missing from the dimension leaves every detail of that end NULL.
_NO_DETAILS = "({end}_city IS NULL AND {end}_state IS NULL AND {end}_name IS NULL)"


@dataclass(frozen=True)
class Inputs:
    """What an ingest uploads: the daily files, and the dimension if one was found or given."""

    daily: list[Path]
    dimension: Path | None


def find_inputs(paths: Iterable[Path], dimension: Path | None, dimension_name: str) -> Inputs:
    """Daily files named by ``paths`` (files as given, folders searched, not recursively).

    A folder's ``dimension_name`` file (airport_codes.csv) is the dimension, unless one was
    given; it is never uploaded as a daily file.
    """
    daily: list[Path] = []
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".csv"):
                if found.name == dimension_name:
                    dimension = dimension or found
                else:
                    daily.append(found)
        elif path.is_file():
            daily.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    if dimension is not None and not dimension.is_file():
        raise FileNotFoundError(f"{dimension}: no such dimension file")
    return Inputs(daily, dimension)


@dataclass(frozen=True)
class Loaded:
    """What the warehouse holds, for ``flightpipe status`` and the ingest summary."""

    files: int
    days: int
    rows: int
    first_day: dt.date | None
    last_day: dt.date | None
    last_run: str | None
    last_loaded_at: dt.datetime | None


class LocalTwin:
    """The AWS side, on this machine. Start it with ``start()`` before anything else."""

    def __init__(self, settings: Settings) -> None:
        self.services = LocalServices(settings)
        self.settings = self.services.settings  # with this state folder's own ports
        self.warehouse = PostgresWarehouse(
            self.services.warehouse_url,
            own_server=not settings.warehouse.url,
            reader_url=self.services.reader_url,
        )

    def start(self) -> None:
        """Start the services if needed and create the buckets and tables (idempotent)."""
        self.services.up()
        ensure_buckets(self.s3, self.settings)
        self.warehouse.ensure_schema()

    @cached_property
    def resources(self) -> Resources:
        """The pipeline's AWS resources on the local endpoint, created first if missing."""
        return ensure(self.settings, self.services.endpoint)

    def client(self, service: str) -> Any:
        """A boto3 client of the local endpoint."""
        return aws_client(service, self.settings, self.services.endpoint)

    @cached_property
    def s3(self) -> Any:
        return s3_client(self.settings, self.services.endpoint)

    @cached_property
    def _validation(self) -> TwinValidation:
        """The validation job's binding to the twin, as the endpoint's job runs have it."""
        return TwinValidation(
            self.settings,
            s3_client(self.settings, self.services.endpoint),
            self.client("cloudwatch"),
        )

    @cached_property
    def reports(self) -> QualityReports:
        """The quality report site, under the state folder."""
        return self._validation.site(self.settings.reports_bucket)

    @cached_property
    def spark(self) -> SparkSession:
        from pipeline.local.spark import local_spark

        return local_spark(self.settings.spark)

    def upload_dimension(self, path: Path) -> Upload:
        """Upload an airport dimension to where new dimensions land (not yet in use)."""
        return self._upload(
            path, self.settings.dimension_bucket, self.settings.storage.dimension_key
        )

    def upload_daily(self, path: Path) -> Upload:
        """Upload one daily file under the raw prefix, keeping its name (not yet loadable)."""
        return self._upload(
            path, self.settings.raw_bucket, self.settings.storage.raw_prefix + path.name
        )

    def _upload(self, path: Path, bucket: str, key: str) -> Upload:
        with open(path, "rb") as body:
            response = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        return Upload(bucket, key, response["VersionId"])

    def validate(
        self, upload: Upload, today: dt.date | None = None, build_report: bool = True
    ) -> Validated:
        """Run the validation job on one upload: promote it, or quarantine it, through the
        binding the endpoint's validation runs have (the copy it promotes is cached).

        Validating a batch, pass ``build_report=False`` and call ``reports.build()`` once at
        the end: building the report's index reads every validation's record.
        """
        from jobs.validation import validate_upload  # GX takes seconds to import

        job = self.settings.job_settings().with_buckets(self.settings.buckets())
        with self._validation.bind(job) as bound:
            validated = validate_upload(
                bound.s3, job, upload, today or dt.datetime.now(dt.UTC).date(), bound.reports
            )
        if build_report:
            self._validation.build_reports()
        return validated

    def submit_dimension(self, path: Path) -> Validated:
        """Upload and validate a dimension: it is in use from the next load if it passed."""
        return self.validate(self.upload_dimension(path))

    def submit_daily(self, path: Path) -> Validated:
        """Upload and validate a daily file: the next load picks it up if it passed."""
        return self.validate(self.upload_daily(path))

    @cached_property
    def runs(self) -> Runs:
        """The main state machine's executions: one per uploaded object version."""
        archive = RunArchive.under(self.settings.local.state_dir)
        return Runs(self.client("stepfunctions"), self.resources, archive)

    def alerts(self) -> list[dict[str, Any]]:
        """Every message published to the alert topic, oldest first."""
        return read_alerts(self.settings.local.state_dir / "alerts", self.resources.topic_arn)

    def loaded_rows(self, key: str) -> int | None:
        """Rows of the latest load of a validated file, from the load audit; None if never."""
        _, rows = self.warehouse.query(
            f"SELECT row_count FROM {FLIGHT_LOAD_AUDIT.name} WHERE source_key = %s "
            "ORDER BY loaded_at DESC LIMIT 1",
            [key],
        )
        return int(rows[0][0]) if rows else None

    def promoted_version(self, key: str) -> str | None:
        """The upload version whose normalized copy is at validated ``key``, if any."""
        try:
            head = self.s3.head_object(Bucket=self.settings.raw_bucket, Key=key)
        except self.s3.exceptions.ClientError:
            return None
        version: str | None = head.get("Metadata", {}).get(SOURCE_VERSION)
        return version

    def load(self) -> LoadResult:
        """Run the ETL job once over whatever is new in the raw bucket."""
        return run_local_etl(self.settings, self.spark, self.s3, self.warehouse)

    def loaded(self) -> Loaded:
        _, rows = self.warehouse.query(
            f"""
            SELECT
                (SELECT count(DISTINCT source_key) FROM {FLIGHT_LOAD_AUDIT.name}),
                count(DISTINCT flight_date), count(*), min(flight_date), max(flight_date),
                (SELECT job_run_id FROM {FLIGHT_LOAD_AUDIT.name} ORDER BY loaded_at DESC LIMIT 1),
                (SELECT max(loaded_at) FROM {FLIGHT_LOAD_AUDIT.name})
            FROM {FLIGHT_PROCESSED.name}
            """
        )
        return Loaded(*rows[0])

    def rows_per_day(self, keys: Iterable[str]) -> list[tuple[Any, ...]]:
        """Per loaded day of these keys: rows, cancelled, flights touching an unknown airport."""
        uris = [f"s3://{self.settings.raw_bucket}/{key}" for key in keys]
        if not uris:
            return []
        _, rows = self.warehouse.query(
            f"""
            SELECT flight_date, count(*) AS flights,
                   count(*) FILTER (WHERE dep_delay IS NULL) AS cancelled,
                   count(*) FILTER (WHERE {_NO_DETAILS.format(end="origin")}
                                       OR {_NO_DETAILS.format(end="dest")}) AS unknown_airport
            FROM {FLIGHT_PROCESSED.name}
            WHERE source_file = ANY(%s)
            GROUP BY flight_date ORDER BY flight_date
            """,
            [uris],
        )
        return rows
