"""The twin's AWS state kept on disk under the state folder, so the twin survives a restart.

moto keeps every bucket and execution in the endpoint's memory; PostgreSQL keeps the loaded
days on disk. Without this module a restart (``flightpipe local down`` and ``up``, a reboot)
empties the buckets while the warehouse still holds every day: the next upload finds no
dimension, ``flightpipe runs`` shows no history. ``DurableState`` keeps, under
``<state_dir>/aws/``:

- ``s3/<bucket>.json``: the bucket's manifest: its region, creation time and versioning, and
  per key every version oldest first (the last is the latest, as in moto), each an object
  version (version id, last-modified time, metadata and content type, ETag, checksums,
  storage class, encryption and lock settings, size, the file of its content) or a delete
  marker (version id, last-modified time);
- ``s3/<bucket>/<blob>``: one version's content, written once (a version never changes);
- ``stepfunctions/executions.jsonl``: one line per finished execution of a Standard state
  machine: its DescribeExecution output and the history events ``runs.py`` reads
  (``FAILED_STEP_EVENTS``). ``flightpipe runs`` reads it where moto no longer knows a run;
- ``restored.json``: what the endpoint's last start restored, for ``flightpipe local up``;
- ``stopped.json``: the runs that were in flight when the endpoint last stopped.

How: a thread syncs about once a second, and once more on SIGTERM while the endpoint still
serves; every file appears by an atomic rename, so a kill at any moment leaves the previous
state whole. The thread reads moto's S3 backend instead of hooking each way S3 can change (put,
copy, multipart, delete, batch delete, versioning...): one walk sees every path, and no file
is written inside a request. The one hook (``MutationGate``) holds back S3 requests that
change something for the moment the walk copies the state (a few milliseconds), because moto
inserts a new version before it sets the version's metadata. Only new versions' content is
written, and the walk is skipped while no S3 request changed anything. Executions end in one
place, so that one is hooked (``_finished``): a run is archived once its outcome is complete.

Restore (``restore``, before the endpoint serves) puts every version back into moto's S3 with
its version id and last-modified time (run names and the load audit key on the version id, the
validation job compares last-modified times), its content read from its file on demand, so a
restart costs no copy of the buckets. Run history stays in the archive rather than going back
into moto: restoring it would mean faking the parser's Execution objects, their worker and
event history, for state machines that do not exist yet (``resources.ensure`` creates them
after the restore); the cost of the archive is that only ``Runs`` sees old runs, not a plain
``describe_execution``, and a reused run name is no longer refused across a restart (AWS
refuses it for 90 days; the twin never replays an event, so no run name comes twice).

Not kept, said in the log and in ``restored.json``: runs in flight at a stop (their execution
thread dies with the process: they are archived as ABORTED, their uploads stay, uploading the
file again runs it); Glue job runs and crawls, the Glue catalog's tables (the next crawl
registers them again), Express (router) executions, bucket settings other than versioning
(``resources.provision`` sets the notifications again), object ACLs and tags, the parts of a
multipart upload (its ETag is kept). Nothing is fsynced (the twin's PostgreSQL runs without
fsync too): a clean shutdown or reboot keeps everything; a kill loses at most the last second,
a power cut whatever the kernel had not written, and restore says which versions it lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from pipeline.local import emulator

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FORMAT: Final = 1
"""The version of the files' layout; a manifest of another version is not read."""

FAILED_STEP_EVENTS: Final = frozenset({"FailStateEntered"})
"""The history events ``runs.py`` reads a failed run's step from: the archive keeps only these."""

STOPPED_ERROR: Final = "Twin.EndpointStopped"
"""The error of a run archived as ABORTED because the endpoint stopped while it ran."""

SYNC_SECONDS: Final = 1.0
_QUIET_TIMEOUT_SECONDS: Final = 5.0

# FakeKey attributes kept as they are (JSON values); the version id, last-modified time,
# metadata and content are kept apart. tests/test_durable.py lists what is deliberately not
# kept and fails when moto's FakeKey gains an attribute neither list names.
KEY_ATTRIBUTES: Final = (
    "_is_versioned",
    "_storage_class",
    "_etag",
    "contentsize",
    "website_redirect_location",
    "checksum_algorithm",
    "checksum_value",
    "checksum_type",
    "checksum_parts",
    "encryption",
    "kms_key_id",
    "bucket_key_enabled",
    "lock_mode",
    "lock_legal_status",
    "lock_until",
)

_MARKER: Final = "delete_marker"
_OBJECT: Final = "object"


def _replace(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write a file under a temporary name, then rename it into place (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _write_json(path: Path, value: Any) -> None:
    _replace(path, lambda out: out.write(json.dumps(value, default=_json_value).encode()))


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class MutationGate:
    """Lets S3 requests that change something run together, and the sync's copy between them.

    ``mutation`` wraps each such request; ``quiet`` waits for those running to finish, holds
    new ones back meanwhile, and runs a function. ``changes`` counts finished mutations.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._running = 0
        self._holding = False
        self.changes = 0

    @contextlib.contextmanager
    def mutation(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._holding)
            self._running += 1
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                self.changes += 1
                self._condition.notify_all()

    def quiet(self, work: Callable[[], _T], timeout: float) -> _T | None:
        """``work()`` while no mutation runs; None if running ones did not finish in time."""
        with self._condition:
            self._holding = True
            try:
                if not self._condition.wait_for(lambda: self._running == 0, timeout):
                    return None
                return work()
            finally:
                self._holding = False
                self._condition.notify_all()


class _StoredContent:
    """A restored version's content as moto's key buffer: read from its file when read.

    moto only seeks to the start and reads (GetObject, CopyObject, the ETag), never writes a
    stored version, and closes the buffer when the version is deleted. Opening the file per
    read keeps no descriptor per version and copies nothing at restore.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed = False
        self._position = 0

    def _open(self) -> IO[bytes]:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return open(self.path, "rb")

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("stored content seeks from the start only")
        self._position = offset
        return offset

    def read(self, size: int = -1) -> bytes:
        with self._open() as stored:
            stored.seek(self._position)
            data = stored.read(size)
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        raise io.UnsupportedOperation("a stored version never changes")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("a stored version never changes")

    def close(self) -> None:
        self.closed = True


# A version, as the sync tells versions apart: key, version id, last-modified time. Version
# ids alone repeat ("null") in an unversioned bucket, where a key's new version replaces it.
Identity = tuple[str, str, dt.datetime]


def _identity(version: Any) -> Identity:
    return (version.name, version.version_id, version.last_modified)


@dataclass
class _Bucket:
    """One bucket as last written to disk: its settings, and its versions' records by key."""

    settings: dict[str, Any]
    keys: dict[str, list[Identity]]
    records: dict[Identity, dict[str, Any]]


@dataclass
class _Snapshot:
    """One bucket as the sync copied it while no request changed it."""

    settings: dict[str, Any]
    keys: dict[str, list[Identity]]
    new: dict[Identity, tuple[dict[str, Any], Any]]
    """Versions not on disk yet: their record, and moto's object to read the content from."""


def _record(version: Any) -> dict[str, Any]:
    """What the manifest keeps of a version, its content file aside."""
    from moto.s3.models import FakeDeleteMarker

    record: dict[str, Any] = {
        "version_id": version.version_id,
        "last_modified": version.last_modified.isoformat(),
    }
    if isinstance(version, FakeDeleteMarker):
        return {"kind": _MARKER, **record}
    with version.lock:  # moto computes a missing ETag by seeking the buffer GETs share
        _ = version.etag
    record.update({name: getattr(version, name) for name in KEY_ATTRIBUTES})
    return {"kind": _OBJECT, **record, "metadata": dict(version.metadata)}


class S3State:
    """The S3 side: every version of every bucket in moto's backends, on disk and back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._buckets: dict[str, _Bucket] = {}

    def _manifest(self, bucket: str) -> Path:
        return self.root / f"{bucket}.json"

    def _blob(self, bucket: str, blob: str) -> Path:
        return self.root / bucket / blob

    # -- sync ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, _Snapshot]:
        """Every bucket's state, copied: to be called while no S3 request changes it."""
        from moto.s3.models import s3_backends

        found: dict[str, _Snapshot] = {}
        for account, partitions in list(s3_backends.items()):
            for partition, backend in list(partitions.items()):
                for name, bucket in list(backend.buckets.items()):
                    known = self._buckets.get(name)
                    records = known.records if known else {}
                    keys: dict[str, list[Identity]] = {}
                    new: dict[Identity, tuple[dict[str, Any], Any]] = {}
                    # dict() copies the stored version lists, not the per-key latest version.
                    for key, versions in dict(bucket.keys).items():
                        keys[key] = [_identity(v) for v in versions]
                        for version in versions:
                            identity = _identity(version)
                            if identity not in records:
                                new[identity] = (_record(version), version)
                    settings = {
                        "account": account,
                        "partition": partition,
                        "region": bucket.region_name,
                        "created": bucket.creation_date.isoformat(),
                        "versioning": bucket.versioning_status,
                    }
                    found[name] = _Snapshot(settings, keys, new)
        return found

    def write(self, snapshot: dict[str, _Snapshot]) -> None:
        """Bring the files in line with a snapshot: new contents, changed manifests, removals."""
        for name, bucket in snapshot.items():
            known = self._buckets.get(name)
            if known and known.keys == bucket.keys and known.settings == bucket.settings:
                continue
            self._buckets[name] = self._write_bucket(name, bucket, known)
        for name in set(self._buckets) - set(snapshot):
            self._manifest(name).unlink(missing_ok=True)
            shutil.rmtree(self.root / name, ignore_errors=True)
            del self._buckets[name]

    def _write_bucket(self, name: str, bucket: _Snapshot, known: _Bucket | None) -> _Bucket:
        records = dict(known.records) if known else {}
        for identity, (record, version) in bucket.new.items():
            if record["kind"] == _OBJECT:
                record["blob"] = uuid.uuid4().hex
                if not self._write_content(self._blob(name, record["blob"]), version):
                    continue  # deleted since the snapshot: the next sync sees it gone
            records[identity] = record
        keys = {
            key: kept
            for key, identities in bucket.keys.items()
            if (kept := [i for i in identities if i in records])
        }
        listed = {identity for identities in keys.values() for identity in identities}
        manifest = {
            "format": FORMAT,
            "bucket": {"name": name, **bucket.settings},
            "keys": {key: [records[i] for i in identities] for key, identities in keys.items()},
        }
        _write_json(self._manifest(name), manifest)
        # Contents go only once the manifest no longer names them.
        for identity in set(records) - listed:
            blob = records.pop(identity).get("blob")
            if blob:
                self._blob(name, blob).unlink(missing_ok=True)
        return _Bucket(bucket.settings, keys, records)

    @staticmethod
    def _write_content(path: Path, version: Any) -> bool:
        """Stream a version's content to its file; False if moto disposed of it meanwhile."""

        def copy(out: IO[bytes]) -> None:
            with version.lock:  # moto's readers seek the shared buffer under this lock
                version._value_buffer.seek(0)
                shutil.copyfileobj(version._value_buffer, out, 1 << 20)

        try:
            _replace(path, copy)
        except ValueError:  # the buffer was closed: the version was deleted
            return False
        return True

    # -- restore ------------------------------------------------------------------------------
    def restore(self) -> tuple[int, int, list[str]]:
        """Put every kept bucket and version back into moto's S3 backend.

        Returns the buckets and versions restored and what could not be, in plain words.
        Leftovers of an interrupted sync (partial files, contents no manifest names) go.
        """
        from moto.s3.models import s3_backends

        buckets = versions = 0
        problems: list[str] = []
        for path in sorted(self.root.glob("*.json")):
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
                if manifest.get("format") != FORMAT:
                    raise ValueError(f"format {manifest.get('format')}, not {FORMAT}")
                settings = manifest["bucket"]
                name = settings.pop("name")
                backend = s3_backends[settings["account"]][settings["partition"]]
                restored, lost = self._restore_bucket(backend, name, settings, manifest["keys"])
            except Exception as exc:  # the endpoint starts all the same, and says what it lost
                problems.append(f"bucket {path.stem} not restored ({type(exc).__name__}: {exc})")
                continue
            buckets += 1
            versions += restored
            if lost:
                problems.append(f"{lost} versions of bucket {name} lost (content missing)")
        self._remove_leftovers()
        return buckets, versions, problems

    def _restore_bucket(
        self, backend: Any, name: str, settings: dict[str, Any], keys: dict[str, Any]
    ) -> tuple[int, int]:
        bucket = backend.create_bucket(name, settings["region"])
        bucket.creation_date = dt.datetime.fromisoformat(settings["created"])
        if settings["versioning"]:
            backend.put_bucket_versioning(name, settings["versioning"])
        records: dict[Identity, dict[str, Any]] = {}
        kept: dict[str, list[Identity]] = {}
        lost = 0
        for key, stored in keys.items():
            versions: list[Any] = []
            for record in stored:
                previous = versions[-1] if versions else None
                version = self._version(name, settings, key, record, previous)
                if version is None:
                    lost += 1
                    continue
                versions.append(version)
                records[_identity(version)] = record
            if versions:
                bucket.keys.setlist(key, versions)
                kept[key] = [_identity(v) for v in versions]
        self._buckets[name] = _Bucket(settings, kept, records)
        return len(records), lost

    def _version(
        self, bucket: str, settings: dict[str, Any], key: str, record: dict[str, Any], previous: Any
    ) -> Any:
        """moto's object for one kept version; None when its content is missing or short."""
        from moto.s3.models import FakeDeleteMarker, FakeKey
        from moto.utilities.utils import LowercaseDict

        last_modified = dt.datetime.fromisoformat(record["last_modified"])
        if record["kind"] == _MARKER:
            # A marker points at the version it covered (moto reads that on its deletion).
            marker = object.__new__(FakeDeleteMarker)
            marker.__dict__.update(
                key=previous,
                name=key,
                last_modified=last_modified,
                _version_id=record["version_id"],
            )
            return marker
        blob = self._blob(bucket, record["blob"])
        try:
            if blob.stat().st_size != record["contentsize"]:
                return None
        except OSError:
            return None
        # Any: the content buffer below is not the SpooledTemporaryFile moto's types name.
        version: Any = FakeKey(
            key, b"", settings["account"], settings["region"], bucket_name=bucket
        )
        version._value_buffer.close()
        version.__dict__.update({name: record[name] for name in KEY_ATTRIBUTES})
        version._version_id = record["version_id"]
        version.last_modified = last_modified
        version._metadata = LowercaseDict(record["metadata"])
        version._value_buffer = _StoredContent(blob)
        return version

    def _remove_leftovers(self) -> None:
        for partial in self.root.rglob("*.part"):
            partial.unlink(missing_ok=True)
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            known = self._buckets.get(folder.name)
            named = {r["blob"] for r in known.records.values() if "blob" in r} if known else set()
            for blob in folder.iterdir():
                if blob.name not in named:
                    blob.unlink(missing_ok=True)


def aws_state_folder(state_dir: Path) -> Path:
    """Where the twin keeps its AWS state, under its state folder."""
    return state_dir / "aws"


@dataclass(frozen=True)
class ArchivedRun:
    """A finished execution as the archive keeps it."""

    described: dict[str, Any]
    """Its DescribeExecution output, with ``startDate`` and ``stopDate`` as datetimes."""
    events: list[dict[str, Any]]
    """Its history events of the types in ``FAILED_STEP_EVENTS``."""


class RunArchive:
    """Finished executions of Standard state machines, one JSON object per line.

    Lines are only appended; a line cut short by a kill is skipped. Readers parse the file
    again only when it changed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._runs: dict[str, ArchivedRun] = {}

    @classmethod
    def under(cls, state_dir: Path) -> RunArchive:
        """The archive of the twin whose state folder is ``state_dir``."""
        return cls(aws_state_folder(state_dir) / "stepfunctions" / "executions.jsonl")

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        """Add entries (``{"described": ..., "events": [...]}``), one line each."""
        lines = [json.dumps(entry, default=_json_value) + "\n" for entry in entries]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(line)

    def runs(self) -> dict[str, ArchivedRun]:
        """Every archived run by execution ARN."""
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                return {}
            if self._seen != (stat.st_size, stat.st_mtime_ns):
                self._seen = (stat.st_size, stat.st_mtime_ns)
                self._runs = dict(self._read())
            return self._runs

    def _read(self) -> Iterator[tuple[str, ArchivedRun]]:
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # the end of a line a kill cut short
                described = entry["described"]
                for name in ("startDate", "stopDate"):
                    if described.get(name):
                        described[name] = dt.datetime.fromisoformat(described[name])
                yield described["executionArn"], ArchivedRun(described, entry["events"])

    def find(self, execution_arn: str) -> ArchivedRun | None:
        return self.runs().get(execution_arn)

    def names(self, state_machine_arn: str) -> list[str]:
        """The names of the archived runs of one state machine."""
        return [
            run.described["name"]
            for run in self.runs().values()
            if run.described["stateMachineArn"] == state_machine_arn
        ]


@dataclass(frozen=True)
class Restored:
    """What a start of the endpoint restored, and what it could not."""

    folder: Path
    buckets: int
    versions: int
    runs: int
    problems: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    """Runs in flight when the endpoint last stopped (archived as ABORTED)."""

    @property
    def line(self) -> str:
        """One plain line for ``flightpipe local up``."""
        again = "upload those files again (flightpipe ingest <folder>)"
        if not (self.buckets or self.runs or self.problems):
            return (
                f"nothing to restore under {self.folder}: the twin's buckets and run history "
                "start empty; if the warehouse already holds days, upload the dimension and "
                "daily files again (flightpipe ingest <folder>)"
            )
        line = (
            f"restored {self.versions} object versions in {self.buckets} buckets and "
            f"{self.runs} runs from {self.folder}"
        )
        if self.problems:
            line += f"; reset: {'; '.join(self.problems)}: {again}"
        if self.aborted:
            line += (
                f"; {len(self.aborted)} runs were in flight when the endpoint stopped and are "
                f"ABORTED: {again}"
            )
        return line


def last_restore(state_dir: Path) -> str | None:
    """The line of the endpoint's last restore, if it has started with this module."""
    try:
        return str(json.loads((aws_state_folder(state_dir) / "restored.json").read_text())["line"])
    except (OSError, ValueError, KeyError):
        return None


_STANDARD: Final = "STANDARD"
# A state machine's type is its `type`: moto sets `sm_type` (and so an execution's) to
# STANDARD whatever the type it was created with.
_RUNNING: Final = "RUNNING"


def _executions() -> Iterator[Any]:
    """Every execution of a Standard state machine in moto's (parser) Step Functions."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for regions in list(stepfunctions_parser_backends.values()):
        for backend in list(regions.values()):
            for machine in list(backend.state_machines):
                if machine.type == _STANDARD:
                    yield from list(machine.executions)


def _run_entry(execution: Any, **described: Any) -> dict[str, Any]:
    """An execution as the archive keeps it; ``described`` overrides its DescribeExecution."""
    worker = execution.exec_worker
    history = execution.to_history_output()["events"] if worker and worker.env else []
    described = {**execution.to_describe_output(), **described}
    for name in ("startDate", "stopDate"):
        if described.get(name):  # to the millisecond, as the API shows it (Smithy truncates)
            moment = described[name]
            described[name] = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return {
        "described": described,
        "events": [event for event in history if event["type"] in FAILED_STEP_EVENTS],
    }


class DurableState:
    """The endpoint's AWS state on disk: ``restore`` it, ``install`` the hooks, ``start``
    syncing, ``stop`` (final sync). See the module's docstring."""

    def __init__(self, state_dir: Path, sync_seconds: float = SYNC_SECONDS) -> None:
        self.folder = aws_state_folder(state_dir)
        self.sync_seconds = sync_seconds
        self.s3 = S3State(self.folder / "s3")
        self.archive = RunArchive.under(state_dir)
        self.gate = MutationGate()
        self._finished: list[Any] = []
        self._finished_lock = threading.Lock()
        self._archived: set[str] = set()
        self._sync_lock = threading.Lock()
        self._synced_changes: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self) -> Restored:
        """Put the kept buckets back into moto (before the endpoint serves); record what was
        restored for ``flightpipe local up``."""
        buckets, versions, problems = self.s3.restore()
        self._archived = set(self.archive.runs())
        stopped = self.folder / "stopped.json"
        try:
            aborted = list(json.loads(stopped.read_text())["aborted"])
        except (OSError, ValueError, KeyError):
            aborted = []
        restored = Restored(self.folder, buckets, versions, len(self._archived), problems, aborted)
        _write_json(self.folder / "restored.json", {"line": restored.line, **vars(restored)})
        stopped.unlink(missing_ok=True)
        log.info("%s", restored.line)
        log.info(
            "not kept across a restart: runs in flight, Glue job runs, crawls and catalog "
            "tables, router (Express) executions, bucket settings but versioning, object ACLs "
            "and tags"
        )
        return restored

    def install(self) -> None:
        """Gate S3 requests that change something; note each execution that ends."""
        from moto.s3.responses import S3Response
        from moto.stepfunctions.parser.backend import execution

        gate = self.gate

        def gated(respond: Callable[..., Any]) -> Callable[..., Any]:
            def respond_gated(response: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                if request.method in ("GET", "HEAD", "OPTIONS"):
                    return respond(response, request, *args, **kwargs)
                with gate.mutation():
                    return respond(response, request, *args, **kwargs)

            return respond_gated

        for name in ("key_response", "bucket_response"):
            emulator.replace(S3Response, name, gated(getattr(S3Response, name)))

        communication = execution.BaseExecutionWorkerCommunication
        terminated = communication.terminated
        state = self

        def terminated_noted(comm: Any) -> None:
            terminated(comm)  # sets the outcome: status first, then output, error and cause
            with state._finished_lock:
                state._finished.append(comm.execution)

        emulator.replace(communication, "terminated", terminated_noted)

    def start(self) -> None:
        """Sync in the background about every ``sync_seconds`` until ``stop``."""

        def loop() -> None:
            while not self._stopping.wait(self.sync_seconds):
                try:
                    self.sync(only_if_changed=True)
                except Exception:  # the next round tries again; the endpoint keeps serving
                    log.exception("could not keep the twin's AWS state in %s", self.folder)

        self._thread = threading.Thread(target=loop, name="durable-state", daemon=True)
        self._thread.start()

    def sync(self, only_if_changed: bool = False) -> None:
        """Write what changed since the last sync: S3 versions and finished runs."""
        with self._sync_lock:
            changes = self.gate.changes
            if not (only_if_changed and changes == self._synced_changes):
                snapshot = self.gate.quiet(self.s3.snapshot, _QUIET_TIMEOUT_SECONDS)
                if snapshot is None:
                    log.warning("S3 requests kept running: the twin's S3 state waits a round")
                else:
                    self.s3.write(snapshot)
                    self._synced_changes = changes
            self._archive_finished()

    def _archive_finished(self) -> None:
        with self._finished_lock:
            finished, self._finished = self._finished, []
        self._archive(e for e in finished if e.state_machine.type == _STANDARD)

    def _archive(self, executions: Iterable[Any], **described: Any) -> list[Any]:
        new = [e for e in executions if e.exec_arn not in self._archived]
        self.archive.append(_run_entry(e, **described) for e in new)
        self._archived.update(e.exec_arn for e in new)
        return new

    def stop(self) -> None:
        """Stop syncing, sync a last time, and archive the runs still in flight as ABORTED
        (their execution threads end with the process). Call it while the endpoint serves."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()
        now = dt.datetime.now(dt.UTC)
        in_flight = [e for e in _executions() if e.exec_status == _RUNNING]
        aborted = self._archive(
            in_flight,
            status="ABORTED",
            stopDate=now,
            error=STOPPED_ERROR,
            cause="the twin's AWS endpoint stopped while this run was in flight; its upload "
            "is kept: upload the file again to run it",
        )
        self._archive_finished()  # any that ended while the others were archived
        _write_json(
            self.folder / "stopped.json",
            {"stopped": now, "aborted": [e.name for e in aborted]},
        )
        if aborted:
            log.warning(
                "%d runs were in flight and are archived as ABORTED (a run cannot outlive the "
                "endpoint): %s",
                len(aborted),
                ", ".join(e.name for e in aborted),
            )
