"""The settings a Glue job works with, handed to it in its job arguments.

A deployed job reads no environment variables and no files for its settings: the state machine
and the job's default arguments carry them (``--settings``, this model as JSON, rendered from the
environment's typed settings by ``pipeline.workflow.job_arguments``), and the bucket names the
run names. The whole ``pipeline.settings.Settings``, with the twin's ports and folders, stays on
the machine that deploys or runs the twin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageSettings(FrozenModel):
    """Where objects live. Bucket names are globally unique: prefix, purpose, env, account."""

    bucket_prefix: str = "flightpipe"
    buckets: dict[str, str] = {}
    """Bucket names by purpose (``raw``, ``dim``, ``staging``, ``reports``) where they are given
    rather than derived: a deployed job gets them as arguments, from the names CDK filled into
    the definition's placeholders, so the job never derives them from an account."""
    raw_prefix: str = "raw/"
    """Where uploads land; every object created here is validated before anything loads it."""
    validated_prefix: str = "validated/"
    """Normalized copies of files that passed the gate: the only input of the load."""
    quarantine_prefix: str = "quarantine/"
    """Files the gate refused, each with its validation result beside it."""
    results_prefix: str = "validation-results/"
    """Each upload version's validation outcome, in the upload's own bucket (``result_key``):
    a claim while a run validates it, then its result. A run whose upload another run
    validated reads its outcome there."""
    dimension_key: str = "airport_codes.csv"
    staging_prefix: str = "staging/"
    reports_prefix: str = "quality/"
    """Where the quality report site lives in the reports bucket (served privately)."""
    reports_url: str | None = None
    """Where the site is opened (on AWS its HTTPS address, which a run's arguments give), so
    alerts link pages there; None: at its ``s3://`` location."""

    @property
    def validated_dimension_key(self) -> str:
        """The last valid dimension, in the dimension bucket: what the load joins with."""
        return self.validated_prefix + self.dimension_key

    def result_key(self, key: str, version: str) -> str:
        """Where the validation result of version ``version`` of ``key`` lives, in the
        upload's own bucket."""
        return f"{self.results_of(key)}{version}.json"

    def results_of(self, key: str) -> str:
        """The prefix of every version's validation result of ``key``."""
        return f"{self.results_prefix}{key}/"


class QualitySettings(FrozenModel):
    """Thresholds of the data-quality gate (see ``quality.suites``)."""

    min_delay_minutes: int = -120
    max_delay_minutes: int = 2400
    delay_in_range_mostly: float = Field(default=0.999, ge=0, le=1)
    """Share of delays that must be in range before the file is flagged (a warning)."""
    max_unknown_airport_share: float = Field(default=0.05, ge=0, le=1)
    """Largest share of flights whose airport the dimension lacks; above it, quarantine."""
    max_file_bytes: int = Field(default=128 * 2**20, ge=1)
    """Largest file the gate reads (daily file or dimension); a larger one is quarantined
    unread. The gate holds a file in memory many times over (its bytes, its text, its tables),
    so this bounds what one validation needs; 128 MiB is some 6M flights, far above any real
    day."""
    max_line_bytes: int = Field(default=64 * 2**10, ge=1)
    """Longest line the gate accepts; a flight's line is some 30 bytes, a dimension's row
    with every text at its full width under 1 KB."""


class ValidationSettings(FrozenModel):
    """How a validation run shares out the uploads waiting beside its own (``jobs.validation``)."""

    batch_seconds: int = Field(default=300, ge=0)
    """How long after its start a run goes on claiming waiting uploads to validate: it claims
    none after this, so a run takes at most about this plus one validation."""
    idle_seconds: float = Field(default=5.0, ge=0)
    """How long a run's batch waits for another upload once none is waiting, before it ends:
    a burst's uploads keep arriving while its first ones are validated, and a run in flight
    holds the burst's runs together before the load (their burst wait), so a burst is loaded
    once, not once each time its validations catch up with its uploads."""
    waiting_seconds: int = Field(default=3600, ge=1)
    """Only uploads this recent wait for a batch; older ones (from before batches existed, or
    whose runs ended long ago) are never validated again by another run's batch."""
    claim_seconds: int = Field(default=300, ge=1)
    """How long a claim on an upload holds. A run that finds its upload claimed waits this
    long from the claim for the claimant's result, then validates the upload itself, so a run
    that died mid-batch strands nothing. Far above one validation (the gate reads at most
    ``max_file_bytes``, in well under a minute): a live claimant is never overtaken."""
    poll_seconds: float = Field(default=1.0, gt=0)
    """How often a run waiting for another run's result looks for it, and an idle batch lists
    the waiting uploads again."""


class Buckets(ABC):
    """The buckets by purpose, each a name ``bucket`` gives: for a job run's settings and an
    environment's alike, which differ only in how they know a name."""

    @abstractmethod
    def bucket(self, purpose: str) -> str:
        """The bucket for ``purpose`` (``raw``, ``dim``, ``staging``, ``reports``)."""

    @property
    def raw_bucket(self) -> str:
        return self.bucket("raw")

    @property
    def dimension_bucket(self) -> str:
        return self.bucket("dim")

    @property
    def staging_bucket(self) -> str:
        return self.bucket("staging")

    @property
    def reports_bucket(self) -> str:
        return self.bucket("reports")


class JobSettings(FrozenModel, Buckets):
    """What a job run needs of one environment's settings."""

    env: str
    storage: StorageSettings = StorageSettings()
    quality: QualitySettings = QualitySettings()
    validation: ValidationSettings = ValidationSettings()

    def bucket(self, purpose: str) -> str:
        """The bucket for ``purpose`` (``raw``, ``dim``, ``staging``, ``reports``)."""
        try:
            return self.storage.buckets[purpose]
        except KeyError:
            raise ValueError(
                f"the job's settings name no {purpose!r} bucket (storage.buckets): pass it in "
                "the job's arguments"
            ) from None

    def with_buckets(self, buckets: Mapping[str, str]) -> JobSettings:
        """These settings with ``buckets`` (by purpose) named, as a run's arguments name them."""
        storage = self.storage.model_copy(update={"buckets": {**self.storage.buckets, **buckets}})
        return self.model_copy(update={"storage": storage})
