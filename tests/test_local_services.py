"""The twin's services: one twin per state folder, its own ports, and plain refusals."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.local.services import LocalServices, ServiceError, own_ports
from pipeline.settings import REPO_ROOT, Settings, load_settings


def state_settings(state: Path, **local: object) -> Settings:
    return load_settings("local", local={"state_dir": state, **local})


@pytest.fixture
def listener() -> Iterator[tuple[int, int]]:
    """A process that is no twin, listening on a port: (port, pid)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port, process.pid
    finally:
        process.kill()
        process.wait()


def test_each_state_folder_records_its_own_pair_of_ports(tmp_path: Path) -> None:
    first = own_ports(state_settings(tmp_path / "one")).local
    second = own_ports(state_settings(tmp_path / "two")).local

    assert {first.s3_port, first.postgres_port}.isdisjoint({second.s3_port, second.postgres_port})
    assert json.loads((tmp_path / "one" / "ports.json").read_text()) == {
        "s3_port": first.s3_port,
        "postgres_port": first.postgres_port,
    }
    # Recorded: the same folder keeps its ports, whatever is free later.
    assert own_ports(state_settings(tmp_path / "one")).local == first


def test_a_port_set_in_the_settings_wins_over_the_recorded_one(tmp_path: Path) -> None:
    recorded = own_ports(state_settings(tmp_path)).local

    chosen = own_ports(state_settings(tmp_path, s3_port=18111)).local

    assert (chosen.s3_port, chosen.postgres_port) == (18111, recorded.postgres_port)


def test_a_busy_first_choice_is_passed_over(tmp_path: Path) -> None:
    wanted = own_ports(state_settings(tmp_path / "probe")).local.s3_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", wanted))
        busy.listen()
        (tmp_path / "probe" / "ports.json").unlink()

        chosen = own_ports(state_settings(tmp_path / "probe")).local

    assert wanted not in (chosen.s3_port, chosen.postgres_port)


def test_a_port_held_by_another_process_is_refused_naming_it_and_the_setting(
    tmp_path: Path, listener: tuple[int, int]
) -> None:
    port, pid = listener
    services = LocalServices(state_settings(tmp_path, s3_port=port))

    with pytest.raises(ServiceError) as refused:
        services.up()

    message = str(refused.value)
    assert f"port {port} is held by pid {pid}" in message
    assert "http.server" in message
    assert "FLIGHTPIPE_LOCAL__S3_PORT" in message
    assert services.status()[0].state == "port held"


def test_another_twins_port_is_refused_naming_its_state_folder(
    tmp_path: Path, services: LocalServices
) -> None:
    intruder = LocalServices(state_settings(tmp_path, s3_port=services.local.s3_port))

    with pytest.raises(ServiceError) as refused:
        intruder.up()

    assert f"the flightpipe twin of {services.state}" in str(refused.value)
    [aws, _] = intruder.status()
    assert aws.state == "port held"
    assert str(services.state) in aws.owner


def test_local_status_shows_the_state_folder_of_each_running_service(
    services: LocalServices,
) -> None:
    statuses = services.status()

    assert [(s.state, s.owner) for s in statuses] == [("running", str(services.state))] * 2


def test_a_server_that_cannot_start_says_what_failed_and_where_its_log_is(
    tmp_path: Path,
) -> None:
    settings = own_ports(state_settings(tmp_path / "state"))
    broken = LocalServices(settings)
    # A data folder that claims to be one but holds nothing else.
    broken.pg_data.mkdir(parents=True)
    (broken.pg_data / "PG_VERSION").write_text("15\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTPIPE_")}
    env["FLIGHTPIPE_LOCAL__STATE_DIR"] = str(settings.local.state_dir)
    env["FLIGHTPIPE_LOCAL__WARM_UP"] = "false"
    try:
        started = subprocess.run(
            [sys.executable, "-m", "pipeline", "local", "up"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        broken.clean()

    assert started.returncode == 1
    assert "Traceback" not in started.stderr
    assert "PostgreSQL did not start" in started.stderr
    assert str(broken.pg_log) in " ".join(started.stderr.split())
