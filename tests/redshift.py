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
    """Create the warehouse tables in ``database`` from the contract's Redshift DDL, a
    statement at a time (so the test's batches are the job's alone)."""
    for sql in warehouse_ddl(Dialect.REDSHIFT):
        query = data_api.execute_statement(WorkgroupName=WORKGROUP, Database=database, Sql=sql)
        description = described(data_api, query["Id"])
        assert description["Status"] == "FINISHED", description.get("Error")


def batches_sent(region: str = "us-east-1") -> list[tuple[str, list[str]]]:
    """Every BatchExecuteStatement the stand-in received, in order: its status as last
    described, and its statements."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.redshiftdata.models import redshiftdata_backends

    statements = redshiftdata_backends[DEFAULT_ACCOUNT_ID][region].statements.values()
    return [(s.status, s.sqls) for s in statements if getattr(s, "batch", False)]
