"""The local twin's services: its AWS endpoint (moto, ``pipeline.local.aws``) and PostgreSQL.

Each state folder has a twin of its own: its own ports (``own_ports``), its own endpoint
process and its own PostgreSQL server, so two checkouts on one machine never share one.
``flightpipe local up`` is idempotent and ``down`` stops exactly what ``up`` started; a port
held by anything else is refused with a message naming the holder.

Where the server's files live (``server_dir``): in the state folder when the server runs as
the invoking user. PostgreSQL refuses to run as root, so under root it runs as the
``postgres`` user, which may not be able to enter the state folder (a home folder is often
private); its data, log and the staged parts it reads then live under
``/var/lib/flightpipe/<id>``, one folder per state folder, and no folder of the user's is
opened up.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import psutil
import psycopg
from psycopg.conninfo import make_conninfo

from pipeline.local.postgres import READER_ROLE
from pipeline.settings import REPO_ROOT, Settings

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

SERVER_ROOT: Final = Path("/var/lib/flightpipe")
"""Where a root-run twin keeps what its PostgreSQL server (the ``postgres`` user) must reach."""

# Port pairs a twin chooses from: below Linux's ephemeral range (32768 up), where the
# operating system hands out ports to outgoing connections.
_PORT_BASE: Final = 20000
_PORT_PAIRS: Final = 6000
_PORT_TRIES: Final = 64
_PORTS_FILE: Final = "ports.json"
_ENDPOINT_MODULE: Final = "pipeline.local.aws"


class ServiceError(RuntimeError):
    """A local service could not be started; the message says what failed and the fix."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str
    """``running``, ``stopped``, or ``port held by ...`` when something else listens there."""
    address: str
    owner: str
    """The state folder whose twin this is (or whatever holds the port)."""
    detail: str


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not _port_open(port)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (an exited child its parent has not reaped does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _state_id(state_dir: Path) -> str:
    """A short, stable name for a state folder: its real path, hashed."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)


def own_ports(settings: Settings) -> Settings:
    """``settings`` with the twin's ports filled in where they are 0 (the default).

    A state folder's ports are recorded in ``<state_dir>/ports.json`` the first time they are
    needed: the first free pair in a sequence that starts at a hash of the folder's path, so
    two checkouts start from different pairs and never take one that is in use.
    """
    local = settings.local
    if local.s3_port and local.postgres_port:
        return settings
    record = local.state_dir / _PORTS_FILE
    try:
        recorded = json.loads(record.read_text())
        ports = (int(recorded["s3_port"]), int(recorded["postgres_port"]))
    except (OSError, ValueError, KeyError, TypeError):
        ports = _choose_ports(local.state_dir)
        local.state_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(
            record, json.dumps({"s3_port": ports[0], "postgres_port": ports[1]}) + "\n"
        )
    chosen = local.model_copy(
        update={
            "s3_port": local.s3_port or ports[0],
            "postgres_port": local.postgres_port or ports[1],
        }
    )
    return settings.model_copy(update={"local": chosen})


def _choose_ports(state_dir: Path) -> tuple[int, int]:
    start = int(_state_id(state_dir), 16)
    for attempt in range(_PORT_TRIES):
        # A prime stride visits pairs far apart: a busy neighbourhood is left quickly.
        first = _PORT_BASE + 2 * ((start + attempt * 7919) % _PORT_PAIRS)
        if _port_free(first) and _port_free(first + 1):
            return first, first + 1
    raise ServiceError(
        f"no free pair of ports for the local twin among {_PORT_TRIES} tried in "
        f"{_PORT_BASE}-{_PORT_BASE + 2 * _PORT_PAIRS}; set FLIGHTPIPE_LOCAL__S3_PORT and "
        "FLIGHTPIPE_LOCAL__POSTGRES_PORT to free ports"
    )


def _listener(port: int) -> int | None:
    """The pid of the process listening on ``port`` on this machine, where it can be known
    (another user's process is visible to root only)."""
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    return None


def _twin_of(pid: int) -> Path | None:
    """The state folder whose twin the process ``pid`` belongs to, if it is a twin's service."""
    try:
        process = psutil.Process(pid)
        command = process.cmdline()
    except psutil.Error:
        return None
    if _ENDPOINT_MODULE in command and "--settings" in command:
        with contextlib.suppress(IndexError, ValueError, KeyError):
            arguments = json.loads(command[command.index("--settings") + 1])
            return Path(arguments["local"]["state_dir"])
    if "-D" in command:  # a PostgreSQL server: its data folder sits in the server folder
        with contextlib.suppress(IndexError, OSError):
            owner = Path(command[command.index("-D") + 1]).parent / "owner"
            return Path(owner.read_text().strip())
    return None


def port_holder(port: int) -> str:
    """Whatever holds ``port``, in words: another twin's state folder, or the process."""
    pid = _listener(port)
    if pid is None:
        return "a process this user cannot see (run `ss -ltnp` as root to find it)"
    twin = _twin_of(pid)
    if twin is not None:
        return f"the flightpipe twin of {twin} (pid {pid})"
    try:
        command = " ".join(psutil.Process(pid).cmdline())[:120]
    except psutil.Error:
        command = "?"
    return f"pid {pid} ({command})"


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


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LocalServices:
    """Start, stop and inspect one state folder's twin services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = own_ports(settings)
        self.local = self.settings.local
        self.state = self.local.state_dir
        self.aws_pid_file = self.state / "aws.pid"
        self.aws_log = self.state / "aws.log"

    # -- addresses and folders ----------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The local AWS endpoint: S3, Glue, SNS, EventBridge and Step Functions."""
        return f"http://127.0.0.1:{self.local.s3_port}"

    @property
    def warehouse_url(self) -> str:
        """The warehouse: the database ``warehouse.database`` (as a Redshift load names its
        database) on the server ``warehouse.url`` names, else on the twin's own."""
        if self.settings.warehouse.url:
            return make_conninfo(
                self.settings.warehouse.url, dbname=self.settings.warehouse.database
            )
        return self._own_server_url("postgres")

    @property
    def reader_url(self) -> str | None:
        """Where user queries connect: a role that can only read the warehouse tables."""
        if self.settings.warehouse.url:
            return self.settings.warehouse.reader_url
        return self._own_server_url(READER_ROLE)

    def _own_server_url(self, role: str) -> str:
        return (
            f"postgresql://{role}@127.0.0.1:{self.local.postgres_port}/"
            f"{self.settings.warehouse.database}"
        )

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def server_dir(self) -> Path:
        """Where the PostgreSQL server's data and log live, and the parts it COPYs from."""
        if self._as_root:
            return SERVER_ROOT / _state_id(self.state)
        return self.state / "postgres"

    @property
    def staging_dir(self) -> Path:
        """Where a load stages its parts for the server to read."""
        return self.server_dir / "staging"

    @property
    def pg_data(self) -> Path:
        return self.server_dir / "data"

    @property
    def pg_log(self) -> Path:
        return self.server_dir / "server.log"

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
        if self._postgres_pid() is not None:
            self._pg_ctl("stop", "-m", "fast", "-w")

    def clean(self) -> list[Path]:
        """Stop the services and remove everything the twin keeps; returns what was removed."""
        self.down()
        removed = []
        for folder in dict.fromkeys((self.server_dir, self.state)):
            if folder.exists():
                shutil.rmtree(folder)
                removed.append(folder)
        return removed

    def status(self) -> list[ServiceStatus]:
        aws = self._status("aws (moto)", self.local.s3_port, self._aws_pid(), self.endpoint)
        result = [replace(aws, detail=str(self.aws_log))]
        if self.settings.warehouse.url:
            result.append(
                ServiceStatus("warehouse", "external", self.warehouse_url, "-", "external server")
            )
        else:
            pg = self._status(
                "warehouse (postgresql)",
                self.local.postgres_port,
                self._postgres_pid(),
                self.warehouse_url,
            )
            result.append(replace(pg, detail=str(self.pg_data)))
        return result

    def _status(self, name: str, port: int, ours: int | None, address: str) -> ServiceStatus:
        if ours is not None:
            return ServiceStatus(name, "running", address, str(self.state), "")
        if _port_open(port):
            return ServiceStatus(name, "port held", address, port_holder(port), "")
        return ServiceStatus(name, "stopped", address, str(self.state), "")

    def _refuse_if_held(self, port: int, what: str, setting: str) -> None:
        if _port_open(port):
            raise ServiceError(
                f"{what} cannot start: port {port} is held by {port_holder(port)}. "
                f"Stop that, or give this twin another port: {setting}=<port> "
                f"(or delete {self.state / _PORTS_FILE} to have a free pair chosen)."
            )

    # -- the AWS endpoint ---------------------------------------------------------------------
    def _aws_pid(self) -> int | None:
        """The pid of this state folder's endpoint, if it is running and listening."""
        try:
            pid = int(self.aws_pid_file.read_text())
            process = psutil.Process(pid)
            listening = any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == self.local.s3_port
                for c in process.net_connections("tcp")
            )
        except (OSError, ValueError, psutil.Error):
            return None
        return pid if listening and _ENDPOINT_MODULE in process.cmdline() else None

    def _start_aws(self) -> None:
        if self._aws_pid() is not None:
            return
        what = "the local AWS endpoint"
        self._refuse_if_held(self.local.s3_port, what, "FLIGHTPIPE_LOCAL__S3_PORT")
        with open(self.aws_log, "ab") as log:
            start = log.tell()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    _ENDPOINT_MODULE,
                    "--settings",
                    self.settings.model_dump_json(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self.aws_pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + self.settings.timing.service_start_timeout_seconds
        while not _port_open(self.local.s3_port):
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                self.aws_pid_file.unlink(missing_ok=True)
                with open(self.aws_log, "rb") as log:
                    log.seek(start)
                    said = log.read().decode(errors="replace").strip().splitlines()[-12:]
                happened = "exited" if process.returncode is not None else "did not listen in time"
                raise ServiceError(
                    f"{what} on port {self.local.s3_port} {happened}. Its log, {self.aws_log}, "
                    "ends with:\n" + "\n".join(said) + "\nFix what it says, then `make run` again."
                )
            time.sleep(0.05)

    def _stop_aws(self) -> None:
        pid = self._aws_pid()
        self.aws_pid_file.unlink(missing_ok=True)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        # It keeps its buckets and runs on disk as it stops: wait for it to exit, not only to
        # stop listening.
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    # -- postgresql ---------------------------------------------------------------------------
    def _postgres_pid(self) -> int | None:
        """The pid of this state folder's server, if it runs on its port (``postmaster.pid``:
        the pid on its first line, the port on its fourth)."""
        try:
            lines = (self.pg_data / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        return pid if port == self.local.postgres_port and _running(pid) else None

    def _as_postgres(self) -> list[str]:
        # initdb and the server refuse to run as root; run them as the postgres user instead.
        return ["runuser", "-u", "postgres", "--"] if self._as_root else []

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [
            *self._as_postgres(),
            str(postgres_bin_dir() / "pg_ctl"),
            "-D",
            str(self.pg_data),
        ]
        return subprocess.run([*command, *args], check=True, capture_output=True, text=True)

    def _start_postgres(self) -> None:
        if self._postgres_pid() is not None:
            return
        what = "PostgreSQL"
        self._refuse_if_held(self.local.postgres_port, what, "FLIGHTPIPE_LOCAL__POSTGRES_PORT")
        if not (self.pg_data / "PG_VERSION").exists():
            self._initdb()
        # No path in the options: pg_ctl splits them on spaces. TCP only, so no Unix socket
        # path (at most 107 bytes) has to fit.
        options = " ".join(
            [
                f"-p {self.local.postgres_port}",
                "-h 127.0.0.1",
                "-k ''",
                *(f"-c {k}={v}" for k, v in POSTGRES_SPEED_SETTINGS.items()),
            ]
        )
        try:
            self._pg_ctl("-o", options, "-l", str(self.pg_log), "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            raise ServiceError(
                f"{what} did not start on port {self.local.postgres_port}. {exc.stderr.strip()}\n"
                f"Its log, {self.pg_log}, ends with:\n{_tail(self.pg_log)}\n"
                "Fix what it says, or remove its data folder with `make clean` (the twin's "
                "loaded days with it), then `make run` again."
            ) from exc

    def _initdb(self) -> None:
        if self._as_root:
            SERVER_ROOT.mkdir(mode=0o755, exist_ok=True)
        # The staged parts are written by this user and read by the server; the server writes
        # its data and log beside them.
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.pg_data.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            for folder in (self.server_dir, self.pg_data):
                shutil.chown(folder, "postgres")
        self.pg_data.chmod(0o700)
        _write_atomically(self.server_dir / "owner", f"{self.state.resolve()}\n")
        command = [
            *self._as_postgres(),
            str(postgres_bin_dir() / "initdb"),
            *("-D", str(self.pg_data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise ServiceError(
                f"PostgreSQL could not create its data folder {self.pg_data}: "
                f"{exc.stderr.strip() or exc.stdout.strip()}\n"
                f"Fix what it says, remove {self.pg_data}, then `make run` again."
            ) from exc

    def _ensure_database(self) -> None:
        admin = f"postgresql://postgres@127.0.0.1:{self.local.postgres_port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            name = self.settings.warehouse.database
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
