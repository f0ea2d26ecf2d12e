"""The real ``awsglue`` library for the entrypoint tests, and a stand-in for Glue's JVM half.

``awsglue`` (the PyPI package ``AWSGlueDataplanePython``, aws-glue-libs' glue-5.1 branch) is
the Python half of Glue: ``getResolvedOptions``, ``Job`` and ``GlueContext`` run as they do on
Glue. What they call through py4j, Glue's JVM classes (``com.amazonaws.services.glue.*``), is
not published, so ``GlueJvm`` stands in for exactly that: the JVM ``Job`` behind
``awsglue.job.Job``, and the S3 reader behind ``create_dynamic_frame.from_options`` with the
job bookmark's store. Each behaviour it imitates names the AWS page that states it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from awsglue.context import GlueContext
from awsglue.dynamicframe import DynamicFrameReader
from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession, SQLContext
from pyspark.sql import functions as F

BOOKMARK_ENABLED = "job-bookmark-enable"


def glue_argv(
    script: str,
    arguments: Mapping[str, str],
    *,
    job_name: str,
    run: int = 1,
) -> list[str]:
    """``sys.argv`` as Glue hands it to a job script: the script first, then Glue's own
    arguments (``--JOB_ID``, ``--JOB_RUN_ID``, ``--JOB_NAME``, the defaults every Glue 5.1
    job has) and ``arguments``, the run's, in an order that differs with ``run``.

    AWS: "you cannot rely on the order of the arguments" when Glue calls the script
    (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-calling.html);
    the special parameters are in
    https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-glue-arguments.html.
    """
    pairs = [
        ("--JOB_ID", f"j_{job_name}"),
        ("--JOB_RUN_ID", run_id(run)),
        ("--JOB_NAME", job_name),
        ("--TempDir", "s3://aws-glue-assets-111111111111-us-east-1/temporary/"),
        ("--job-language", "python"),
        ("--enable-metrics", "true"),
        ("--enable-continuous-cloudwatch-log", "true"),
        *arguments.items(),
    ]
    random.Random(f"{job_name} {run}").shuffle(pairs)
    return [script, *itertools.chain.from_iterable(pairs)]


def run_id(run: int) -> str:
    """A Glue job run id, ``jr_`` and 64 hex digits, for the ``run``-th run."""
    return f"jr_{run:064x}"


@dataclass
class GlueJvm:
    """Glue's JVM half: the JVM ``Job`` whose ``init`` and ``commit`` ``awsglue.job.Job`` calls,
    and a bookmarked S3 reader over local copies of the objects.

    ``local`` holds a copy of each object under ``s3_prefix``, by name (Spark here has no S3).
    """

    spark: SparkSession
    local: Path
    s3_prefix: str
    calls: list[tuple[str, Any]] = field(default_factory=list)
    committed: set[tuple[str, int]] = field(default_factory=set)
    """The bookmark's store: (name, last-modified time) of each file read through it by runs
    that committed."""
    pending: set[tuple[str, int]] = field(default_factory=set)
    """Files this run read through the bookmark; they join ``committed`` at the commit."""
    bookmark_option: str | None = None

    def init(self, job_name: str, spark_session: Any, args: Mapping[str, Any]) -> None:
        """The bookmark service starts at ``job.init`` with the run's bookmark option: "Always
        call job.init in the beginning of the script and the job.commit in the end ...
        Bookmarks won't work without calling them"
        (https://docs.aws.amazon.com/glue/latest/dg/programming-etl-connect-bookmarks.html)."""
        self.calls.append(("job.init", (job_name, dict(args))))
        self.bookmark_option = args["job_bookmark_option"]
        self.pending = set()

    def commit(self) -> None:
        """The bookmark's state is saved at ``job.commit``: a run that never commits leaves the
        next run to read the same files again."""
        self.calls.append(("job.commit", None))
        if self.bookmark_option == BOOKMARK_ENABLED:
            self.committed |= self.pending

    def read_csv(
        self,
        connection_options: Mapping[str, Any],
        format_options: Mapping[str, Any],
        transformation_ctx: str,
    ) -> DataFrame:
        """Rows of the files at ``connection_options["paths"]``, text columns by header.

        A read with a ``transformation_ctx`` under ``job-bookmark-enable`` skips the files a
        committed run read, told apart by last-modified time as Glue does (a file written
        again is new); with bookmarks disabled (Glue's default) or without a
        ``transformation_ctx`` it reads every file
        (https://docs.aws.amazon.com/glue/latest/dg/monitor-continuations.html). ``withHeader``
        names the columns from the first line and Glue's CSV reader yields text
        (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-format-csv-home.html);
        ``attachFilename`` adds a column holding each row's source object
        (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-connect-s3-home.html).
        """
        files = sorted({p for path in connection_options["paths"] for p in self._files(path)})
        if transformation_ctx and self.bookmark_option == BOOKMARK_ENABLED:
            files = [p for p in files if (p.name, p.stat().st_mtime_ns) not in self.committed]
            self.pending |= {(p.name, p.stat().st_mtime_ns) for p in files}
        if not files:
            return self.spark.createDataFrame([], "x string").drop("x")
        assert format_options["withHeader"]
        frames = [
            self.spark.read.csv(str(p), header=True).withColumn(
                format_options["attachFilename"], F.lit(self.s3_prefix + p.name)
            )
            for p in files
        ]
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other, allowMissingColumns=True)
        return frame

    def _files(self, path: str) -> Sequence[Path]:
        """The local copies an S3 path stands for: one object, or all under a prefix."""
        assert path.startswith(self.s3_prefix), path
        name = path.removeprefix(self.s3_prefix)
        return sorted(self.local.glob("*.csv")) if not name else [self.local / name]


@dataclass(frozen=True)
class LocalDynamicFrame:
    """A DynamicFrame's ``toDF``; the real class wraps a JVM DynamicFrame."""

    frame: DataFrame

    def toDF(self) -> DataFrame:  # noqa: N802 - Glue's name
        return self.frame


class LocalGlueContext(GlueContext):
    """The real ``GlueContext``, less what needs Glue's JVM classes.

    ``GlueContext.__init__`` imports ``com.amazonaws.services.glue.*`` into the JVM and builds
    the Scala GlueContext and its logger from them; this runs the Spark part of it only. The
    context's JVM view is ``jvm`` alone, so anything else of Glue's JVM fails loudly here.
    The reader is the real ``DynamicFrameReader``; only the S3 read under it is replaced.
    """

    jvm: ClassVar[GlueJvm]

    def __init__(self, spark_context: SparkContext) -> None:
        SQLContext.__init__(self, spark_context, SparkSession.builder.getOrCreate())
        self._jvm = SimpleNamespace(Job=self.jvm)
        self.create_dynamic_frame = DynamicFrameReader(self)
        self.spark_session = self.sparkSession

    def create_dynamic_frame_from_options(  # noqa: PLR0917 - DynamicFrameReader's call
        self,
        connection_type: str,
        connection_options: Mapping[str, Any] | None = None,
        format: str | None = None,
        format_options: Mapping[str, Any] | None = None,
        transformation_ctx: str = "",
        push_down_predicate: str = "",
        **kwargs: Any,
    ) -> LocalDynamicFrame:
        assert (connection_type, format, push_down_predicate, kwargs) == ("s3", "csv", "", {})
        self.jvm.calls.append(
            (
                "from_options",
                {
                    "connection_options": connection_options,
                    "format_options": format_options,
                    "transformation_ctx": transformation_ctx,
                },
            )
        )
        return LocalDynamicFrame(
            self.jvm.read_csv(connection_options or {}, format_options or {}, transformation_ctx)
        )


def install_glue_jvm(monkeypatch: pytest.MonkeyPatch, jvm: GlueJvm) -> None:
    """Make ``awsglue.context.GlueContext`` the local one, backed by ``jvm``, for one test."""
    import awsglue.context

    monkeypatch.setattr(LocalGlueContext, "jvm", jvm, raising=False)
    monkeypatch.setattr(awsglue.context, "GlueContext", LocalGlueContext)
    # SQLContext.__init__ keeps the first context as the session's: put the old one back, so
    # no later test gets this one.
    monkeypatch.setattr(SQLContext, "_instantiatedContext", SQLContext._instantiatedContext)
