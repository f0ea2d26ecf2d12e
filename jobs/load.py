"""The flight load, identical on both runtimes: new daily files, enriched with the airport
dimension, into the warehouse.

``run`` talks to the world through the small interfaces below. On AWS Glue the entrypoint
(``jobs.flight_etl``) binds them to the Glue bookmarked source (``jobs.glue_source``), S3 and
Redshift (``jobs.redshift``); the local twin binds them to its object store and PostgreSQL
(``pipeline.local.etl``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

from pyspark.sql import DataFrame

from jobs.flights import (
    FileOrigin,
    enrich_to_staged,
)
from jobs.rejects import first_refusal, is_data_error, shown
from pipeline.core.contract import (
    DAILY_FLIGHTS,
    SOURCE_KEY,
    SOURCE_VERSION,
    NotADailyFileError,
    flight_date_of,
)
from pipeline.core.errors import plain_error
from pipeline.core.metrics import FILES_LOADED, ROWS_LOADED, VALIDATED_TO_LOADED_SECONDS
from pipeline.core.uploads import split_s3_uri
from pipeline.core.warehouse import (
    Rejection,
    SourceFile,
    WarehouseRefusedError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewFlights:
    """What the bookmarked source found: the rows of the new file versions, and those versions."""

    flights: DataFrame | None
    """Contract columns plus ``source_file``, the URI of the object each row was read from."""
    files: Sequence[SourceFile]
    origins: Sequence[FileOrigin] = ()
    """Per file: the object URI and the flight date."""
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
    files: Sequence[SourceFile] = ()
    """The file versions loaded (one per key of ``rows_by_key``)."""

    @property
    def rows(self) -> int:
        return sum(self.rows_by_key.values())

    def metrics(self, committed_at: dt.datetime) -> dict[str, float]:
        """The run's metrics (``pipeline.core.metrics``), its transaction having committed at
        ``committed_at``: the files and rows loaded, and, when it loaded a file whose validation
        time is known, how long the oldest of them waited since (never below 0: S3's clock and
        the job's may differ by a little)."""
        values: dict[str, float] = {FILES_LOADED: len(self.files), ROWS_LOADED: self.rows}
        validated = [f.validated_at for f in self.files if f.validated_at is not None]
        if validated:
            waited = (committed_at - min(validated)).total_seconds()
            values[VALIDATED_TO_LOADED_SECONDS] = max(waited, 0.0)
        return values


def daily_files(uris: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The daily files among the objects ``uris`` and, apart, every other object with why it
    is none: those are reported, never loaded, so a stray object where the load reads stops
    no load."""
    daily, refused = [], {}
    for uri in uris:
        try:
            flight_date_of(uri)
        except NotADailyFileError as exc:
            refused[uri] = str(exc)
        else:
            daily.append(uri)
    return daily, refused


def validated_copy(
    uri: str,
    version: str,
    sha256: str,
    metadata: Mapping[str, str],
    raw_prefix: str,
    *,
    validated_at: dt.datetime | None = None,
) -> SourceFile:
    """A validated copy as the load sees it, from what its version says of itself: the day its
    name carries and, when its ``metadata`` names the upload's version, the upload; and, when
    known, when it was written (``validated_at``, its LastModified).

    The upload's key is the copy's ``source-key`` metadata. A copy promoted before the gate
    wrote that entry names only the version: its upload is the one the gate promoted it from,
    at ``raw_prefix`` under the copy's name (the gate refuses a daily file anywhere else).
    """
    key = split_s3_uri(uri)[1]
    upload_version, upload_key = metadata.get(SOURCE_VERSION), None
    if upload_version is not None:
        named = metadata.get(SOURCE_KEY)
        upload_key = raw_prefix + key.rsplit("/", 1)[-1] if named is None else unquote(named)
    return SourceFile(
        key=key,
        version=version,
        sha256=sha256,
        flight_date=flight_date_of(key),
        uri=uri,
        upload_key=upload_key,
        upload_version=upload_version,
        validated_at=validated_at,
    )


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
    loaded_files: list[SourceFile] = []
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
            loaded_files.extend(batch)
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
    return LoadResult(job_run_id, loaded, new.refused, tuple(rejected), tuple(loaded_files))


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
