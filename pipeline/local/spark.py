"""The local SparkSession: one per process, shared by every job run in it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipeline.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    # The twin is loopback-only; without this Spark warns that the host name resolves there.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def local_spark(settings: SparkSettings) -> SparkSession:
    """Start (or reuse) the process's SparkSession, configured like a small Glue worker."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(settings.master)
        .appName("flightpipe")
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.extraJavaOptions", settings.java_options)
        .config("spark.sql.files.maxPartitionBytes", str(settings.max_partition_bytes))
        .config("spark.sql.files.openCostInBytes", str(settings.file_open_cost_bytes))
        .config("spark.sql.session.timeZone", "UTC")
        # Listing local files is cheap; above this many paths Spark would run a whole job
        # (one task per path) just to list the files of a backfill.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.showConsoleProgress", "false")
        # Version 2 of the file committer moves each task's output into place when the task
        # ends, so the load can stream finished parts into COPY while Spark is still writing.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark
