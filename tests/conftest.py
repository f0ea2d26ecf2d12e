"""Shared fixtures: one SparkSession and one set of local services for the whole session.

Each test that touches the services gets its own database and its own buckets, so tests stay
independent without paying for a new server or JVM each time.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline import packaging
from pipeline.local.postgres import PostgresWarehouse
from pipeline.local.services import LocalServices, own_ports
from pipeline.settings import Settings, load_settings

# A private folder (mode 0700, like pytest's own and most home folders): the twin must work
# from one. Its ports are the folder's own, so a developer's `make run` twin is left alone.
TEST_STATE = Path(tempfile.mkdtemp(prefix="flightpipe-test-")) / "state"
# A session that never starts the services (a few unit tests) must not leave the folder behind.
atexit.register(shutil.rmtree, TEST_STATE.parent, ignore_errors=True)
_names = itertools.count()


ENDPOINT_LOCK_WAIT_SECONDS = 240
"""How long the shared endpoint's load runs wait for the run lock, which a test may hold (to
change a validated copy before any load reads it)."""
ENDPOINT_VALIDATION_WORKERS = 2
"""The shared endpoint's validation worker processes, whatever the machine's cores: tests see
validations run side by side, and one wait for a free worker."""


def make_settings(**overrides: Any) -> Settings:
    """Local settings pointing at the test services, with fast timings."""
    return own_ports(
        load_settings(
            "local",
            local={"state_dir": TEST_STATE, **overrides.pop("local", {})},
            spark={"master": "local[2]"},
            timing={"poll_interval_seconds": 0.05, **overrides.pop("timing", {})},
            **overrides,
        )
    )


@pytest.fixture(scope="session")
def services() -> Iterator[LocalServices]:
    # The endpoint has settings of its own (its ports, folders, timings); a test's twin
    # settings reach its job runs only through the jobs' and the runs' arguments.
    running = LocalServices(
        make_settings(
            timing={"lock_wait_seconds": ENDPOINT_LOCK_WAIT_SECONDS},
            local={"validation_workers": ENDPOINT_VALIDATION_WORKERS},
        )
    )
    try:
        running.up()
        yield running
    finally:  # a service that failed to start must not keep the other one running
        running.clean()


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    from pipeline.local.spark import local_spark

    session = local_spark(make_settings().spark)
    yield session
    session.stop()


@pytest.fixture
def settings(services: LocalServices, request: pytest.FixtureRequest) -> Settings:
    """Settings for one test: its own database and bucket prefix on the shared services."""
    return isolated_settings(request.node.name)


def isolated_settings(label: str) -> Settings:
    """Settings with a new database and bucket prefix of their own, named after ``label``.

    For fixtures wider than one test; the ``services`` fixture must be running.
    """
    name = f"t{os.getpid()}_{next(_names)}_{label[:24]}".lower()
    name = "".join(ch if ch.isalnum() else "_" for ch in name)
    admin = f"postgresql://postgres@127.0.0.1:{make_settings().local.postgres_port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_settings(
        warehouse={"database": name},
        storage={"bucket_prefix": name.replace("_", "-")[:36].strip("-")},
    )


@pytest.fixture
def warehouse(settings: Settings) -> PostgresWarehouse:
    wh = PostgresWarehouse(LocalServices(settings).warehouse_url)
    wh.ensure_schema()
    return wh


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def settings_env(settings: Settings, spark_master: str = "local[1]") -> dict[str, str]:
    """The environment that makes a `flightpipe` process use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTPIPE_")}
    env.update(
        {
            "FLIGHTPIPE_LOCAL__STATE_DIR": str(settings.local.state_dir),
            "FLIGHTPIPE_LOCAL__S3_PORT": str(settings.local.s3_port),
            "FLIGHTPIPE_LOCAL__POSTGRES_PORT": str(settings.local.postgres_port),
            "FLIGHTPIPE_WAREHOUSE__DATABASE": settings.warehouse.database,
            "FLIGHTPIPE_STORAGE__BUCKET_PREFIX": settings.storage.bucket_prefix,
            "FLIGHTPIPE_SPARK__MASTER": spark_master,
        }
    )
    return env


def get_object_calls(s3: Any) -> list[str]:
    """The keys of every GetObject this client sends from now on (botocore's own events)."""
    keys: list[str] = []
    s3.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: keys.append(params["Key"])
    )
    return keys


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> packaging.Artifact:
    """The Glue artifact (``make package``), built once for the session, from scratch but for
    the downloaded wheels: those ``make package`` keeps are reused, each checked against the
    lock's hashes. The Glue-package tests install it; the CDK app deploys it."""
    work = tmp_path_factory.mktemp("package")
    return packaging.build(work / "glue", work / "build", wheels=packaging.WORK_DIR / "wheels")
