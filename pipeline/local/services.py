"""The local twin's services: its AWS endpoint (moto, ``pipeline.local.aws``) and PostgreSQL.

Both run as background processes whose state lives under the settings' state folder, so
``flightpipe local up`` is idempotent and ``down`` stops exactly what ``up`` started.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pipeline.settings import REPO_ROOT, LocalSettings, Settings

# Settings for the local twin only: durability traded for load speed (printed by the bench).
POSTGRES_SPEED_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "4GB",
    "shared_buffers": "256MB",
    "checkpoint_timeout": "30min",
}


class ServiceError(RuntimeError):
    """A local service could not be started; the message says what to do."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    address: str
    detail: str


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} did not come up within {timeout:.0f} s")


def postgres_bin_dir() -> Path:
    """The folder of the PostgreSQL server binaries (Debian keeps them off PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not candidates:
        raise ServiceError(
            "PostgreSQL server not found: install it with `make setup` "
            "(apt-get install postgresql) or set FLIGHTPIPE_WAREHOUSE__URL to an existing server"
        )
    return Path(candidates[0]).parent


class LocalServices:
    """Start, stop and inspect the local twin's services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.local: LocalSettings = settings.local
        self.state = self.local.state_dir
        self.pg_data = self.state / "postgres" / "data"
        self.pg_socket = self.state / "postgres" / "socket"
        self.aws_pid_file = self.state / "aws.pid"
        self.aws_log = self.state / "aws.log"

    # -- addresses ----------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The local AWS endpoint: S3, Glue, SNS, EventBridge and Step Functions."""
        return f"http://127.0.0.1:{self.local.s3_port}"

    @property
    def warehouse_url(self) -> str:
        if self.settings.warehouse.url:
            return self.settings.warehouse.url
        return (
            f"postgresql://postgres@127.0.0.1:{self.local.postgres_port}/"
            f"{self.settings.warehouse.database}"
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def up(self) -> None:
        """Start whatever is not running yet (idempotent)."""
        self.state.mkdir(parents=True, exist_ok=True)
        self._start_aws()
        if not self.settings.warehouse.url:
            self._start_postgres()
            self._ensure_database()

    def down(self) -> None:
        """Stop the services this state folder started."""
        self._stop_aws()
        if self.pg_data.exists() and (self.pg_data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "fast", "-w")

    def status(self) -> list[ServiceStatus]:
        aws_up = _port_open(self.local.s3_port)
        result = [ServiceStatus("aws (moto)", aws_up, self.endpoint, str(self.aws_log))]
        if self.settings.warehouse.url:
            result.append(ServiceStatus("warehouse", True, self.warehouse_url, "external"))
        else:
            pg_up = _port_open(self.local.postgres_port)
            result.append(
                ServiceStatus(
                    "warehouse (postgresql)", pg_up, self.warehouse_url, str(self.pg_data)
                )
            )
        return result

    # -- the AWS endpoint ---------------------------------------------------------------------
    def _start_aws(self) -> None:
        if _port_open(self.local.s3_port):
            return
        with open(self.aws_log, "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline.local.aws",
                    "--settings",
                    self.settings.model_dump_json(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self.aws_pid_file.write_text(str(process.pid))
        _wait_for(
            lambda: _port_open(self.local.s3_port),
            self.settings.timing.service_start_timeout_seconds,
            f"the local AWS endpoint on port {self.local.s3_port} (log: {self.aws_log})",
        )

    def _stop_aws(self) -> None:
        if not self.aws_pid_file.exists():
            return
        pid = int(self.aws_pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        self.aws_pid_file.unlink()
        deadline = time.monotonic() + 10
        while _port_open(self.local.s3_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    # -- postgresql ---------------------------------------------------------------------------
    def _as_postgres(self) -> list[str]:
        # initdb and the server refuse to run as root; run them as the postgres user instead.
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _pg_ctl(self, *args: str) -> None:
        command = [
            *self._as_postgres(),
            str(postgres_bin_dir() / "pg_ctl"),
            "-D",
            str(self.pg_data),
        ]
        subprocess.run([*command, *args], check=True, capture_output=True)

    def _start_postgres(self) -> None:
        if _port_open(self.local.postgres_port):
            return
        if not (self.pg_data / "PG_VERSION").exists():
            self._initdb()
        options = " ".join(
            [
                f"-p {self.local.postgres_port}",
                "-h 127.0.0.1",
                f"-k {self.pg_socket}",
                *(f"-c {k}={v}" for k, v in POSTGRES_SPEED_SETTINGS.items()),
            ]
        )
        log = self.pg_data.parent / "server.log"
        try:
            self._pg_ctl("-o", options, "-l", str(log), "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ServiceError(f"PostgreSQL did not start (log {log}):\n{tail}") from exc

    def _initdb(self) -> None:
        self.pg_data.mkdir(parents=True, exist_ok=True)
        self.pg_socket.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.pg_data.parent, "postgres")
            for path in (self.pg_data, self.pg_socket):
                shutil.chown(path, "postgres")
            self.pg_data.chmod(0o700)
        subprocess.run(
            [
                *self._as_postgres(),
                str(postgres_bin_dir() / "initdb"),
                "-D",
                str(self.pg_data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )

    def _ensure_database(self) -> None:
        admin = f"postgresql://postgres@127.0.0.1:{self.local.postgres_port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            name = self.settings.warehouse.database
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
