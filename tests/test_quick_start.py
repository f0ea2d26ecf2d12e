"""The quick start as a newcomer runs it: `make run` in fresh checkouts, from private folders.

Two checkouts run `make run` at the same time on this machine, each in a folder only its user
may enter, with spaces and non-ASCII characters in its path; one of them with the
distribution's own Python first on PATH where the machine has one. Each must get a twin of its
own (ports, endpoint, PostgreSQL) and load its own sample.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.settings import REPO_ROOT

SAMPLE_DAYS = 2
FLIGHTS_PER_DAY = 3000  # `flightpipe sample`'s default, which `make run` uses
DISTRIBUTION_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class Checkout:
    path: Path
    env: dict[str, str]
    run: subprocess.CompletedProcess[str]

    def flightpipe(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path / ".venv" / "bin" / "flightpipe"), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def copy_of_this_checkout(target: Path) -> Path:
    """The files a clone of this working tree would have (tracked and new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split(b"\0")):
        source = REPO_ROOT / os.fsdecode(name)
        if source.is_file():
            destination = target / os.fsdecode(name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def newcomer_env(distribution_python: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTPIPE_", "VIRTUAL_ENV"))}
    if distribution_python:
        env["PATH"] = f"{DISTRIBUTION_PYTHON.parent}:{env.get('PATH', '')}"
    return env


def _has_distribution_python() -> bool:
    if not DISTRIBUTION_PYTHON.exists():
        return False
    version = subprocess.run(
        [str(DISTRIBUTION_PYTHON), "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return version.stdout.strip() == "True"


@pytest.fixture(scope="module")
def checkouts() -> Iterator[list[Checkout]]:
    private = Path(tempfile.mkdtemp(prefix="flightpipe-newcomer-"))  # mode 0700
    paths = [private / "first checkout ✈", private / "second checkout"]
    envs = [newcomer_env(distribution_python=_has_distribution_python()), newcomer_env(False)]
    started = []
    for path, env in zip(paths, envs, strict=True):
        copy_of_this_checkout(path)
        started.append(
            subprocess.Popen(
                ["make", "run", f"SAMPLE_DAYS={SAMPLE_DAYS}"],
                cwd=path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    results = []
    for path, env, process in zip(paths, envs, started, strict=True):
        output, _ = process.communicate(timeout=1200)
        results.append(
            Checkout(
                path, env, subprocess.CompletedProcess(process.args, process.returncode, output)
            )
        )
    try:
        yield results
    finally:
        for checkout in results:
            subprocess.run(
                ["make", "clean"],
                cwd=checkout.path,
                env=checkout.env,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(private, ignore_errors=True)


def test_two_checkouts_run_make_run_at_once_each_on_a_twin_of_its_own(
    checkouts: list[Checkout],
) -> None:
    for checkout in checkouts:
        assert checkout.run.returncode == 0, checkout.run.stdout[-3000:]
        assert "Traceback" not in checkout.run.stdout

    ports = [json.loads((c.path / ".flightpipe" / "ports.json").read_text()) for c in checkouts]
    assert set(ports[0].values()).isdisjoint(ports[1].values())
    for checkout in checkouts:
        services = json.loads(checkout.flightpipe("local", "status", "-f", "json").stdout)
        assert {(s["state"], s["state folder"]) for s in services} == {
            ("running", str(checkout.path / ".flightpipe"))
        }
        status = checkout.flightpipe("status", "-f", "json")
        measures = {m["measure"]: m["value"] for m in json.loads(status.stdout)}
        sample = sorted((checkout.path / ".flightpipe" / "sample").glob("????-??-??.csv"))
        flights = sum(len(path.read_text().splitlines()) - 1 for path in sample)
        assert (measures["files loaded"], measures["rows"]) == (SAMPLE_DAYS, flights)


def test_after_a_restart_the_twin_loads_a_new_day_with_the_dimension_in_use(
    checkouts: list[Checkout],
) -> None:
    checkout = checkouts[0]
    assert checkout.flightpipe("local", "down").returncode == 0
    restarted = checkout.flightpipe("local", "up")
    assert restarted.returncode == 0, restarted.stderr
    runs_before = json.loads(checkout.flightpipe("runs", "-f", "json").stdout)
    next_day = checkout.path / "next"
    made = checkout.flightpipe(
        "sample", "--days", "1", "--start", "2024-01-03", "--out", str(next_day)
    )
    assert made.returncode == 0, made.stderr

    ingested = checkout.flightpipe("ingest", str(next_day / "2024-01-03.csv"), "-f", "json")

    assert ingested.returncode == 0, ingested.stderr
    [outcome] = json.loads(ingested.stdout)
    assert (outcome["file"], outcome["outcome"]) == ("raw/2024-01-03.csv", "loaded")
    # The runs from before the restart are still listed, the dimension's and each day's.
    assert len(runs_before) == 1 + SAMPLE_DAYS
    status = json.loads(checkout.flightpipe("status", "-f", "json").stdout)
    assert {m["measure"]: m["value"] for m in status}["files loaded"] == SAMPLE_DAYS + 1
