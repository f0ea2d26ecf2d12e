"""The twin's AWS state on disk (``pipeline.local.durable``): kept, then restored after a restart.

In this process, on moto under ``mock_aws`` (each ``mock_aws`` starts from empty backends, as a
restarted endpoint does): S3 versions and run history round-trip through the state folder. One
test runs the real endpoint (``python -m pipeline.local.aws``) twice, with a SIGTERM between.
A canary fails when moto changes what the module reads or hooks.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import boto3
import moto
import pytest
from moto import mock_aws

from pipeline.local import durable, emulator
from pipeline.local.durable import (
    KEY_ATTRIBUTES,
    STOPPED_ERROR,
    DurableState,
    MutationGate,
    RunArchive,
)
from pipeline.local.resources import Resources
from pipeline.local.runs import NOT_STARTED, Runs
from pipeline.settings import REPO_ROOT, load_settings

REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"
ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/r"
TIMEOUT_SECONDS: Final = 30.0

# FakeKey attributes the manifest does not keep, and why; with KEY_ATTRIBUTES and the ones
# kept apart, every attribute moto gives a key (the canary checks the union).
_KEPT_APART: Final = {"_version_id", "last_modified", "_metadata", "_value_buffer"}
_FROM_THE_BUCKET: Final = {"name", "bucket_name", "account_id", "region_name", "partition"}
_NOT_KEPT: Final = {
    "acl",  # the twin never sets one: a restored key gets moto's default, private
    "_expiry",  # Glacier restores
    "multipart",  # the parts of a multipart upload (its ETag is kept)
    "_max_buffer_size",
    "disposed",
    "lock",
    "_status",  # ManagedState: Glacier restores
    "_transitions",
    "_tick",
    "_time_progressed",
    "model_name",
}


@contextmanager
def fresh_aws() -> Iterator[None]:
    """Empty moto backends that execute state machines, like a freshly started endpoint."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``DurableState.install`` patch moto for one test only: the patched methods are
    first set to themselves through monkeypatch, which puts them back afterwards."""
    from moto.s3.responses import S3Response
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    for owner, name in (
        (S3Response, "key_response"),
        (S3Response, "bucket_response"),
        (BaseExecutionWorkerCommunication, "terminated"),
    ):
        monkeypatch.setattr(owner, name, getattr(owner, name))


def _until(probe: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still waiting after {TIMEOUT_SECONDS} s")
        time.sleep(0.05)
    return found


# -- S3 ---------------------------------------------------------------------------------------


def _fill_buckets(s3: Any) -> None:
    """Versions, delete markers, metadata, a removed version, an unversioned bucket."""
    s3.create_bucket(Bucket="raw")
    s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"day,1\n", b"day,2\n"):
        s3.put_object(
            Bucket="raw",
            Key="validated/2013-06-01.csv",
            Body=body,
            ContentType="text/csv; charset=utf-8",
            Metadata={"source-version": body.decode().strip()},
            ChecksumAlgorithm="SHA256",
        )
    s3.delete_object(Bucket="raw", Key="validated/2013-06-01.csv")  # latest: a delete marker
    s3.put_object(Bucket="raw", Key="raw/2013-06-02.csv", Body=b"first")
    s3.delete_object(Bucket="raw", Key="raw/2013-06-02.csv")
    s3.put_object(Bucket="raw", Key="raw/2013-06-02.csv", Body=b"x" * (3 << 20))  # past a marker
    gone = s3.put_object(Bucket="raw", Key="quarantine/bad.csv", Body=b"bad")["VersionId"]
    s3.put_object(Bucket="raw", Key="quarantine/bad.csv", Body=b"kept")
    s3.delete_object(Bucket="raw", Key="quarantine/bad.csv", VersionId=gone)
    s3.create_bucket(Bucket="staging")
    s3.put_object(Bucket="staging", Key="part", Body=b"old")
    s3.put_object(Bucket="staging", Key="part", Body=b"new")


def _seen(s3: Any) -> dict[str, Any]:
    """Everything a client can read of the buckets: listings, heads and contents by version."""
    seen: dict[str, Any] = {}
    for bucket in ("raw", "staging"):
        listed = s3.list_object_versions(Bucket=bucket)
        seen[bucket] = {
            "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
            "versions": listed.get("Versions", []),
            "markers": listed.get("DeleteMarkers", []),
        }
        for version in listed.get("Versions", []):
            where = {"Bucket": bucket, "Key": version["Key"]}
            if version["VersionId"] != "null":  # moto refuses the null version by its id
                where["VersionId"] = version["VersionId"]
            head = s3.head_object(**where, ChecksumMode="ENABLED")
            head.pop("ResponseMetadata")
            body = s3.get_object(**where)["Body"].read()
            seen[f"{bucket}/{version['Key']}@{version['VersionId']}"] = (head, body)
    return seen


def _last_modified(bucket: str) -> dict[tuple[str, str], dt.datetime]:
    """moto's own last-modified times (the API shows whole seconds only)."""
    from moto.s3.models import s3_backends

    keys = s3_backends[ACCOUNT]["aws"].buckets[bucket].keys
    return {(v.name, v.version_id): v.last_modified for vs in dict(keys).values() for v in vs}


def _kept(state_dir: Path) -> tuple[DurableState, Any]:
    """In fresh moto: the state kept under ``state_dir``, the buckets filled and synced."""
    state = DurableState(state_dir)
    state.install()
    s3 = boto3.client("s3", region_name=REGION)
    _fill_buckets(s3)
    state.sync()
    return state, s3


def test_s3_versions_survive_a_restart(tmp_path: Path, installed: None) -> None:
    with fresh_aws():
        _, s3 = _kept(tmp_path)
        before, times = _seen(s3), _last_modified("raw")

    with fresh_aws():
        restored = DurableState(tmp_path).restore()
        s3 = boto3.client("s3", region_name=REGION)
        assert _seen(s3) == before
        assert _last_modified("raw") == times
        assert (restored.buckets, restored.versions, restored.problems) == (2, 8, [])
        # moto works on what it restored: a delete of the marker brings day 2 back.
        [marker] = [m for m in before["raw"]["markers"] if m["Key"] == "validated/2013-06-01.csv"]
        s3.delete_object(
            Bucket="raw", Key="validated/2013-06-01.csv", VersionId=marker["VersionId"]
        )
        got = s3.get_object(Bucket="raw", Key="validated/2013-06-01.csv")
        assert got["Body"].read() == b"day,2\n"


def test_each_version_is_written_once(tmp_path: Path, installed: None) -> None:
    with fresh_aws():
        state, s3 = _kept(tmp_path)
        contents = tmp_path / "aws" / "s3" / "raw"
        written = {path.name: path.stat().st_mtime_ns for path in contents.iterdir()}
        s3.put_object(Bucket="raw", Key="raw/2013-06-03.csv", Body=b"new")
        state.sync()
        again = {path.name: path.stat().st_mtime_ns for path in contents.iterdir()}
        assert len(again) == len(written) + 1
        assert {name: again[name] for name in written} == written

    with fresh_aws():
        state = DurableState(tmp_path)
        state.restore()
        state.sync()  # nothing changed: the restored versions are known, not written again
        assert {path.name: path.stat().st_mtime_ns for path in contents.iterdir()} == again


def test_a_lost_content_is_reported(tmp_path: Path, installed: None) -> None:
    with fresh_aws():
        _kept(tmp_path)
    blob = max((tmp_path / "aws" / "s3" / "raw").iterdir(), key=lambda p: p.stat().st_size)
    blob.write_bytes(b"cut short")  # what a power cut can leave
    (tmp_path / "aws" / "s3" / "staging.json").write_text("{")

    with fresh_aws():
        restored = DurableState(tmp_path).restore()
        assert restored.problems == [
            "1 versions of bucket raw lost (content missing)",
            "bucket staging not restored (JSONDecodeError: Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1))",
        ]
        assert restored.buckets == 1  # the endpoint starts with what it could restore
        assert "reset: 1 versions of bucket raw lost" in restored.line
        assert "flightpipe ingest" in restored.line


def test_nothing_to_restore_says_so(tmp_path: Path) -> None:
    with fresh_aws():
        restored = DurableState(tmp_path).restore()
    assert restored.line.startswith(f"nothing to restore under {tmp_path / 'aws'}")
    assert durable.last_restore(tmp_path) == restored.line


def test_the_gate_copies_between_mutations() -> None:
    """The sync's copy waits for a running S3 change to finish and holds new ones back."""
    gate = MutationGate()
    running, release, later = threading.Event(), threading.Event(), threading.Event()

    def mutate(started: threading.Event, until: threading.Event | None) -> None:
        with gate.mutation():
            started.set()
            if until:
                until.wait()

    threading.Thread(target=mutate, args=(running, release)).start()
    running.wait()
    assert gate.quiet(lambda: "copied", timeout=0.1) is None  # a change still runs

    def copy() -> str:
        threading.Thread(target=mutate, args=(later, None)).start()
        assert not later.wait(0.1)  # held back while the copy runs
        return "copied"

    threading.Timer(0.1, release.set).start()
    assert gate.quiet(copy, timeout=TIMEOUT_SECONDS) == "copied"
    assert later.wait(TIMEOUT_SECONDS)  # and let go once it ran


# -- run history ------------------------------------------------------------------------------

# A main-like state machine: an upload's run that fails at a recorded step, or succeeds.
_MAIN: Final = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.key", "StringMatches": "*bad*", "Next": "Record"}],
            "Default": "Wait",
        },
        "Wait": {"Type": "Wait", "SecondsPath": "$.seconds", "Next": "Loaded"},
        "Loaded": {"Type": "Succeed"},
        "Record": {
            "Type": "Pass",
            "Result": "Validate upload",
            "ResultPath": "$.failed_step",
            "Next": "Failed",
        },
        "Failed": {"Type": "Fail", "Error": "Quarantined", "Cause": "bad file"},
    },
}


def _main(sfn: Any, resources: Resources) -> None:
    sfn.create_state_machine(name=resources.names.main, definition=json.dumps(_MAIN), roleArn=ROLE)


def _start(sfn: Any, resources: Resources, name: str, key: str, seconds: int = 0) -> None:
    upload = {"bucket": "raw", "key": key, "version_id": f"v-{name}", "seconds": seconds}
    sfn.start_execution(stateMachineArn=resources.main_arn, name=name, input=json.dumps(upload))


@pytest.fixture
def resources() -> Resources:
    return Resources.of(load_settings("local"), ACCOUNT)


def test_finished_runs_survive_a_restart(
    tmp_path: Path, installed: None, resources: Resources
) -> None:
    archive = RunArchive.under(tmp_path)
    with fresh_aws():
        state = DurableState(tmp_path)
        state.install()
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _main(sfn, resources)
        _start(sfn, resources, "good", "raw/2013-06-01.csv")
        _start(sfn, resources, "bad", "raw/bad.csv")
        runs = Runs(sfn, resources, archive)
        before = _until(
            lambda: (found := runs.all()) and all(r.finished for r in found) and found,
            "both runs",
        )
        # An Express machine's executions (the router's) are not kept: AWS lists none either.
        express = sfn.create_state_machine(
            name="router", definition=json.dumps(_MAIN), roleArn=ROLE, type="EXPRESS"
        )["stateMachineArn"]
        sfn.start_execution(stateMachineArn=express, input=json.dumps({"key": "raw/bad.csv"}))
        _until(
            lambda: (
                not sfn.list_executions(stateMachineArn=express, statusFilter="RUNNING")[
                    "executions"
                ]
            ),
            "the router's run",
        )
        state.sync()
        assert {r.name: r.failed_step for r in before} == {"good": "", "bad": "Validate upload"}
        assert {run.described["name"] for run in archive.runs().values()} == {"good", "bad"}

    with fresh_aws():
        assert DurableState(tmp_path).restore().runs == 2
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _main(sfn, resources)  # as resources.ensure re-provisions it: same name, same ARN
        runs = Runs(sfn, resources, archive)
        assert runs.all() == before
        assert runs.get("bad") == next(r for r in before if r.name == "bad")
        assert runs.get("never").status == NOT_STARTED
        # Runs of the new endpoint are listed beside the archived ones.
        _start(sfn, resources, "later", "raw/2013-06-02.csv")
        _until(lambda: runs.get("later").finished, "the later run")
        assert {r.name for r in runs.all()} == {"good", "bad", "later"}


def test_runs_in_flight_at_a_stop_are_archived_aborted(
    tmp_path: Path, installed: None, resources: Resources
) -> None:
    with fresh_aws():
        state = DurableState(tmp_path)
        state.install()
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _main(sfn, resources)
        _start(sfn, resources, "slow", "raw/2013-06-01.csv", seconds=600)
        runs = Runs(sfn, resources)
        _until(lambda: runs.get("slow").status == "RUNNING", "the slow run")
        state.stop()

    with fresh_aws():
        restored = DurableState(tmp_path).restore()
        assert restored.aborted == ["slow"]
        assert "1 runs were in flight when the endpoint stopped and are ABORTED" in restored.line
        sfn = boto3.client("stepfunctions", region_name=REGION)
        _main(sfn, resources)
        run = Runs(sfn, resources, RunArchive.under(tmp_path)).get("slow")
        assert (run.status, run.error, run.key) == ("ABORTED", STOPPED_ERROR, "raw/2013-06-01.csv")
    # Said once: the next start has nothing in flight to report.
    with fresh_aws():
        assert DurableState(tmp_path).restore().aborted == []


# -- the endpoint, for real --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _endpoint(settings_json: str, port: int, log: Path) -> Iterator[str]:
    """``python -m pipeline.local.aws`` serving until the block ends, then SIGTERM."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.local.aws", "--settings", settings_json],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    try:

        def serving() -> bool:
            assert process.poll() is None, log.read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        _until(serving, f"the endpoint on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=TIMEOUT_SECONDS) == 0, log.read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


def test_the_endpoint_keeps_its_state_across_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    settings = load_settings(
        "local", local={"state_dir": tmp_path, "s3_port": port, "warm_up": False}
    )
    resources = Resources.of(settings, ACCOUNT)

    def clients(endpoint: str) -> tuple[Any, Any]:
        return tuple(  # type: ignore[return-value]
            boto3.client(
                service,
                endpoint_url=endpoint,
                region_name=settings.local.region,
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            for service in ("s3", "stepfunctions")
        )

    with _endpoint(settings.model_dump_json(), port, tmp_path / "aws.log") as endpoint:
        s3, sfn = clients(endpoint)
        _fill_buckets(s3)
        _main(sfn, resources)
        _start(sfn, resources, "bad", "raw/bad.csv")
        failed = _until(
            lambda: (run := Runs(sfn, resources).get("bad")).finished and run, "the run"
        )
        before = _seen(s3)

    with _endpoint(settings.model_dump_json(), port, tmp_path / "aws.log") as endpoint:
        s3, sfn = clients(endpoint)
        assert _seen(s3) == before
        _main(sfn, resources)
        assert Runs(sfn, resources, RunArchive.under(tmp_path)).get("bad") == failed
        assert failed.failed_step == "Validate upload"
    assert durable.last_restore(tmp_path) == (
        f"restored 8 object versions in 2 buckets and 1 runs from {tmp_path / 'aws'}"
    )


# -- what the module relies on in moto ---------------------------------------------------------


def test_moto_still_has_what_durable_state_relies_on() -> None:
    """Fails when an upgrade of moto changes what ``pipeline.local.durable`` reads or hooks:
    re-check the module against the new moto, then update the lists here."""
    from moto.s3.models import FakeDeleteMarker, FakeKey
    from moto.s3.responses import S3Response
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    assert moto.__version__ == emulator.MOTO_VERSION
    with fresh_aws():
        key = FakeKey("k", b"v", ACCOUNT, REGION, bucket_name="b")
        marker = FakeDeleteMarker(key)
    # Every attribute of a key is kept, derived from its bucket, or deliberately not kept.
    assert set(vars(key)) == set(KEY_ATTRIBUTES) | _KEPT_APART | _FROM_THE_BUCKET | _NOT_KEPT
    assert set(vars(marker)) == {"key", "name", "last_modified", "_version_id"}
    # The content buffer is only seeked to the start, read, written and closed.
    source = inspect.getsource(FakeKey)
    calls = {
        line.split("_value_buffer.")[1].split("(")[0]
        for line in source.splitlines()
        if "self._value_buffer." in line
    }
    assert calls == {"seek", "read", "truncate", "write", "close"}
    for name in ("key_response", "bucket_response"):
        parameters = list(inspect.signature(getattr(S3Response, name)).parameters)
        assert parameters == ["self", "request", "full_url", "headers"]
    # Every execution ends through its communication's terminated(), the hooked method.
    assert "self._execution_communication.terminated()" in inspect.getsource(ExecutionWorker)
    assert "terminated" in vars(BaseExecutionWorkerCommunication)
    assert {"to_describe_output", "to_history_output"} <= set(vars(Execution))
