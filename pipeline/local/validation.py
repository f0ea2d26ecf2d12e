"""The validation job on the twin: its binding of ``jobs.validation.main``.

The job code is the one Glue runs; what differs is what it works through. The gate's S3
client writes each promoted copy through to the object cache (``writing_through``), so the
next load reads it from disk. The quality report lives under the state folder, one site per
reports bucket, as the object cache mirrors the other buckets; its index reads every
validation's record, so it is built once per burst of validations (``build_reports``), not
after each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.core.settings import JobSettings
from pipeline.local.objects import object_cache, writing_through
from pipeline.settings import Settings
from quality.reports import QualityReports

if TYPE_CHECKING:
    from jobs.validation import ValidationBinding


@dataclass
class TwinValidation:
    """Binds validation runs to the twin: an S3 client of its endpoint that writes promoted
    copies through, and the report site of the run's reports bucket."""

    settings: Settings
    """The twin's own settings (its state folder); a run's come from its arguments."""
    s3: Any
    """A client of the twin's S3; ``bind`` writes its promoted copies through."""
    _sites: dict[str, QualityReports] = field(default_factory=dict)
    _unbuilt: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        writing_through(self.s3, object_cache(self.settings))

    def site(self, reports_bucket: str) -> QualityReports:
        """The twin's quality report of ``reports_bucket``, under its state folder (one object
        per site: it keeps its GX context)."""
        with self._lock:
            if reports_bucket not in self._sites:
                root = self.settings.local.state_dir / "reports" / reports_bucket
                self._sites[reports_bucket] = QualityReports(root)
            return self._sites[reports_bucket]

    @contextmanager
    def bind(self, settings: JobSettings) -> Iterator[ValidationBinding]:
        # The gate's GX takes seconds to import; the report site is read without it.
        from jobs.validation import ValidationBinding

        bucket = settings.reports_bucket
        try:
            yield ValidationBinding(self.s3, self.site(bucket))
        finally:
            with self._lock:
                self._unbuilt.add(bucket)

    def build_reports(self) -> None:
        """Build the index of every site validations recorded in since the last build."""
        with self._lock:
            unbuilt, self._unbuilt = self._unbuilt, set()
        for bucket in sorted(unbuilt):
            self.site(bucket).build()
