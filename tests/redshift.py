"""The twin's Redshift Data API (``pipeline.local.redshift_data``) in a test's own process.

It is installed into moto for one test, under ``mock_aws``, and runs its statements in the
test's PostgreSQL database. ``redshift_tables`` creates the warehouse there as it is created
on Redshift: the contract's Redshift DDL, sent through the Data API.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import boto3
import pytest

from pipeline.core.contract import Dialect, warehouse_ddl
from pipeline.local.redshift_data import RedshiftDataApi
from pipeline.local.services import LocalServices
from pipeline.settings import Settings

WORKGROUP = "flightpipe-test"
_ENDED = ("FINISHED", "FAILED", "ABORTED")


def install_data_api(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> RedshiftDataApi:
    """Install the stand-in into moto for this test; it reads staged objects from moto S3."""
    api = RedshiftDataApi(LocalServices(settings).warehouse_url, boto3.client("s3"))
    api.install(functools.partial(monkeypatch.setattr, raising=False))
    return api


def described(data_api: Any, statement_id: str, timeout_seconds: float = 60) -> dict[str, Any]:
    """DescribeStatement of a statement once it has ended, polled as a client polls."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        description: dict[str, Any] = data_api.describe_statement(Id=statement_id)
        if description["Status"] in _ENDED:
            return description
        assert time.monotonic() < deadline, f"statement {statement_id} never ended"
        time.sleep(0.02)


def redshift_tables(data_api: Any, database: str) -> None:
    """Create the warehouse tables in ``database`` from the contract's Redshift DDL."""
    batch = data_api.batch_execute_statement(
        WorkgroupName=WORKGROUP, Database=database, Sqls=warehouse_ddl(Dialect.REDSHIFT)
    )
    description = described(data_api, batch["Id"])
    assert description["Status"] == "FINISHED", description.get("Error")
