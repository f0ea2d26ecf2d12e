"""The twin's AWS endpoint runs a Glue job run as Glue does: the job's own entrypoint, on the
argument vector Glue hands the job's script.

moto in this process plays Glue's API (never patched here: ``GlueWorkers.submit`` is handed
the job and run that ``StartJobRun`` made); the load's entrypoint, and the hand-off of a
validation run to a worker process, are replaced by recorders, so what is checked is exactly
what each would receive. The worker processes themselves are tested on the twin
(``tests/test_validation_job.py``).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import boto3
import pytest
from moto import mock_aws
from moto.moto_api import state_manager

from jobs import flight_etl
from pipeline import workflow
from pipeline.core.settings import JobSettings
from pipeline.local.aws import GlueWorkers
from pipeline.local.etl import TwinLoad
from pipeline.local.validation import RunOutcome, ValidationWorker, WorkerProcess
from pipeline.settings import load_settings
from tests.conftest import make_settings

REGION: Final = "us-east-1"
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
ACCOUNT: Final = "123456789012"
JOB_NAME: Final = "flightpipe-job-local"

# What the state machine passes each job's run (placeholders filled as the twin fills them).
VALIDATION_RUN: Final = {
    "--dimension_bucket": "flightpipe-dim-local-000000000000",
    "--reports_bucket": "flightpipe-reports-local-000000000000",
    "--reports_url": "s3://flightpipe-reports-local-000000000000/quality/",
    "--bucket": "flightpipe-raw-local-000000000000",
    "--key": "raw/2024-01-05.csv",
    "--version_id": "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY",
}
LOAD_RUN: Final = {
    "--job-bookmark-option": "job-bookmark-enable",
    "--validated_uri": "s3://flightpipe-raw-local-000000000000/validated/",
    "--dimension_uri": "s3://flightpipe-dim-local-000000000000/validated/airport_codes.csv",
    "--staging_uri": "s3://flightpipe-staging-local-000000000000/staging/",
    "--redshift_workgroup": "flightpipe",
    "--redshift_database": "flightpipe",
    "--redshift_copy_role_arn": f"arn:aws:iam::{ACCOUNT}:role/flightpipe-role-local",
    "--alert_topic_arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:flightpipe-alerts-local",
    "--state_machine_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:flightpipe-run-local",
}


@pytest.fixture(autouse=True)
def glue() -> Iterator[None]:
    """moto's Glue as the endpoint serves it: a job run ends when its work does, not by moto's
    clock (``pipeline.local.aws.serve``)."""
    state_manager.set_transition("glue::job_run", {"progression": "manual", "times": sys.maxsize})
    with mock_aws():
        yield
    state_manager.unset_transition("glue::job_run")


def finished(run: Any) -> None:
    """Wait for the endpoint's worker to end the run."""
    deadline = time.monotonic() + 30
    while run.status not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, run.status
        time.sleep(0.05)
    assert run.status == "SUCCEEDED", run.error_message


def pairs(argv: list[str]) -> dict[str, str]:
    """An argument vector's ``--name value`` pairs (each name once)."""
    names, values = argv[0::2], argv[1::2]
    assert len(names) == len(values) == len(set(names)), argv
    return dict(zip(names, values, strict=True))


def started_run(script: str, defaults: Mapping[str, str], run: Mapping[str, str]) -> Any:
    """The job and run moto's Glue made for a StartJobRun of a job with these arguments."""
    from moto.glue.models import glue_backends

    glue = boto3.client("glue", region_name=REGION)
    glue.create_job(
        Name=JOB_NAME,
        Role=f"arn:aws:iam::{ACCOUNT}:role/flightpipe-role-local",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://scripts/jobs/{script}"},
        DefaultArguments=dict(defaults),
    )
    glue.start_job_run(JobName=JOB_NAME, Arguments=dict(run))
    job = glue_backends[ACCOUNT][REGION].jobs[JOB_NAME]
    return job, job.job_runs[-1]


Received = list[tuple[list[str], bool]]
"""Each argument vector an entrypoint was handed, and whether the twin's binding came beside
it (not in it: the job code stays Glue's)."""


def received_by_the_load(monkeypatch: pytest.MonkeyPatch) -> Received:
    """What the load's entrypoint is called with, in this process."""
    received: Received = []

    def main(argv: list[str], runtime: Any) -> None:
        received.append((argv, isinstance(runtime, TwinLoad)))

    monkeypatch.setattr(flight_etl, "main", main)
    return received


def received_by_a_validation_worker(monkeypatch: pytest.MonkeyPatch) -> Received:
    """What this process hands a validation worker process, which runs ``jobs.validation.main``
    on it bound to its own ``TwinValidation`` (``ValidationWorker.validate``)."""
    received: Received = []

    def call(worker: WorkerProcess, method: str, argv: list[str]) -> RunOutcome:
        received.append((argv, method == ValidationWorker.validate.__name__))
        return RunOutcome()

    monkeypatch.setattr(WorkerProcess, "call", call)
    return received


@pytest.mark.parametrize(
    ("script", "run_arguments", "recorder"),
    [
        (workflow.VALIDATION_SCRIPT, VALIDATION_RUN, received_by_a_validation_worker),
        (workflow.LOAD_SCRIPT, LOAD_RUN, received_by_the_load),
    ],
    ids=["validation", "load"],
)
def test_a_job_run_gets_the_argument_vector_glue_hands_its_script(
    script: str,
    run_arguments: Mapping[str, str],
    recorder: Callable[[pytest.MonkeyPatch], Received],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received = recorder(monkeypatch)
    # One of the run's arguments has a default too: the run's replaces it, as on Glue
    # (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-crawler-pyspark-extensions-python-intro.html).
    overridden = next(iter(run_arguments))
    defaults = {**workflow.job_arguments(load_settings("local")), overridden: "the job's own"}
    job, run = started_run(script, defaults, run_arguments)

    GlueWorkers(make_settings()).submit(job, run)

    finished(run)

    [(argv, bound)] = received
    assert argv[0] == script
    # The job's default arguments, the run's over them, and Glue's own: nothing twin-only.
    assert pairs(argv[1:]) == {
        **defaults,
        **run_arguments,
        "--JOB_NAME": JOB_NAME,
        "--JOB_ID": f"j_{JOB_NAME}",
        "--JOB_RUN_ID": run.job_run_id,
    }
    # The parser of the module the script calls (``make package`` writes the same script),
    # Glue's getResolvedOptions, reads every name it asks for.
    entry = importlib.import_module(workflow.JOB_SCRIPTS[script])
    settings, *_ = entry.parse_arguments(argv)
    created = JobSettings.model_validate_json(defaults["--settings"])
    assert (settings.env, settings.quality) == (created.env, created.quality)
    assert bound


RUN_SECONDS: Final = 1.5


def sync_task_reads() -> None:
    """Print how often a ``glue:startJobRun.sync`` task read its run (GetJobRun) while the
    run lasted ``RUN_SECONDS``, and how the task ended: in a process of its own, as the
    endpoint patches moto for the whole process (``pipeline.local.aws.serve``)."""

    from moto.glue.responses import GlueResponse

    from pipeline.local import aws, emulator
    from tests.test_emulator import _task_machine, emulated_aws

    emulator.glue_sync()
    ends = aws.RunEnds()
    aws._sync_job_runs_on_their_end(ends)
    reads = 0
    get_job_run = GlueResponse.get_job_run

    def counted(self: Any) -> Any:
        nonlocal reads
        reads += 1
        return get_job_run(self)

    GlueResponse.get_job_run = counted  # type: ignore[method-assign]
    with emulated_aws() as emulated:
        job = emulated.job()
        machine = _task_machine(
            "arn:aws:states:::glue:startJobRun.sync",
            {"JobName": job},
            ResultSelector={"JobRunState.$": "$.JobRunState"},
        )
        execution = emulated.start("sync", machine)
        run = emulated.job_run(job)
        time.sleep(RUN_SECONDS)
        while_running = reads
        run.status = "SUCCEEDED"
        ends.ended(run.job_run_id)
        outcome = emulated.outcome(execution)
    print(json.dumps({"while_running": while_running, "in_all": reads, "outcome": outcome}))


def test_a_sync_task_reads_its_run_again_only_once_the_run_ended() -> None:
    # With hundreds of runs queued in a burst, each task's polling of its run kept the
    # endpoint's one core busy; a task reads its run once, then again at the run's end.
    done = subprocess.run(
        [sys.executable, "-c", "from tests.test_endpoint import sync_task_reads as s; s()"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["outcome"]["output"] == {"JobRunState": "SUCCEEDED"}, seen
    # At most one read before the end (none if the machine is slow to start the task).
    assert seen["while_running"] <= 1, seen
    assert seen["in_all"] <= 2, seen
