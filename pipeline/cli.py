"""The ``flightpipe`` command.

Exit status: 0 when everything asked for succeeded, 1 when a file was quarantined or a step failed,
2 for a usage error. Results go to stdout; progress and logs go to stderr.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
import time
import webbrowser
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from pipeline import workflow
from pipeline.core.contract import NotADailyFileError
from pipeline.core.logs import configure_logging
from pipeline.core.uploads import Upload, run_name
from pipeline.local.durable import last_restore
from pipeline.sample import SampleSpec, write_sample
from pipeline.settings import Environment, Settings, load_settings

if TYPE_CHECKING:
    from pipeline.local.runs import Run
    from pipeline.local.twin import LocalTwin
    from pipeline.smoke import Target

app = typer.Typer(
    help="flightpipe: incremental airline-flight pipeline, on AWS or on its local twin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(
    help="Start, stop and inspect the local twin's services.", no_args_is_help=True
)
app.add_typer(local_app, name="local")


def _stdout_console() -> Console:
    """The console for results: a terminal's width, or no width limit when stdout is not one.

    Rich would fold every cell to 80 columns for a pipe or a file, and a row spread over lines
    is lost to ``grep``. Without a limit each row stays one line, only as long as its values
    need (tables do not expand to the console's width).
    """
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = sys.maxsize
    return console


out = _stdout_console()
err = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


class State:
    settings: Settings


_state = State()


@app.callback()
def _configure(
    env: Annotated[
        Environment | None,
        typer.Option(
            "--env", help="Environment whose settings to use (default: FLIGHTPIPE_ENV or local)."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")
    ] = False,
) -> None:
    _state.settings = load_settings(env)
    configure_logging(json_lines=_state.settings.env is not Environment.LOCAL, verbose=verbose)


def _twin() -> Any:
    from pipeline.local.twin import LocalTwin

    if _state.settings.env is not Environment.LOCAL:
        err.print(f"[red]this command runs on the local twin; --env is {_state.settings.env}[/]")
        raise typer.Exit(2)
    return LocalTwin(_state.settings)


def _emit(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: Format, title: str = ""
) -> None:
    """Print rows as a table, CSV or JSON on stdout.

    CSV and JSON carry every value whole. A table puts each value on one line (``_cell``); on
    a terminal too narrow for it the other columns fold first and the ``file`` column keeps its
    keys whole, unless even they do not fit (then rich crops them).
    """
    if fmt is Format.CSV:
        # The csv module ends rows with CRLF (RFC 4180) unless told otherwise; shell tools want LF.
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    elif fmt is Format.JSON:
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        sys.stdout.write(json.dumps(records, default=str, indent=2) + "\n")
    else:
        table = Table(title=title or None)
        for column in columns:
            # Rich narrows the columns that may wrap before the others.
            table.add_column(column, overflow="fold", no_wrap=column == "file")
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        out.print(table)


_URI = re.compile(r"s3://[^/\s]+/(\S+)")


def _cell(value: object) -> str:
    """A value as a table shows it: an object's URI as its key, several lines as one."""
    if value is None:
        return ""
    text = str(value)
    uri = _URI.fullmatch(text)
    if uri is not None:
        return uri.group(1)
    return " / ".join(text.splitlines())


FormatOption = Annotated[
    Format,
    typer.Option(
        "--format",
        "-f",
        help="Output format. A table shows objects by key and each value on one line (one line"
        " per row when piped); csv and json carry whole values: s3:// URIs, every line.",
    ),
]


# --- local services -------------------------------------------------------------------------


@local_app.command("up")
def local_up() -> None:
    """Start the local AWS endpoint and PostgreSQL; create buckets, tables and resources.

    The resources are what CDK creates on AWS: Glue database, crawlers and jobs, the SNS
    topic, the EventBridge rules and both state machines, from the same definitions. One line
    on stderr says what the AWS endpoint restored from the state folder when it started.
    """
    twin = _twin()
    with err.status("starting the local twin and creating its resources"):
        twin.start()
        resources = twin.resources
    restored = last_restore(twin.settings.local.state_dir)
    if restored:
        err.print(restored, markup=False, highlight=False)
    local_status(Format.TABLE)
    names = resources.names
    rows = [
        ("state machine (main)", resources.main_arn),
        ("state machine (router)", resources.router_arn),
        ("glue jobs", f"{names.validation_job}, {names.load_job}"),
        (
            "glue crawlers",
            f"{names.flight_crawler}, {names.dimension_crawler}, {names.warehouse_crawler} "
            f"-> database {names.database}",
        ),
        ("event rules", f"{names.upload_rule}, {names.dimension_rule}"),
        ("alert topic", resources.topic_arn),
    ]
    _emit(("resource", "name"), rows, Format.TABLE)


@local_app.command("down")
def local_down() -> None:
    """Stop the local services (their data stays in the state folder)."""
    _twin().services.down()
    err.print("local services stopped")


@local_app.command("status")
def local_status(fmt: FormatOption = Format.TABLE) -> None:
    """Show whether each local service is running, and where."""
    statuses = _twin().services.status()
    rows = [(s.name, s.state, s.address, s.owner, s.detail) for s in statuses]
    _emit(("service", "state", "address", "state folder", "data"), rows, fmt)


@local_app.command("clean")
def local_clean() -> None:
    """Stop the local services and remove all the twin keeps: its state folder (objects, run
    history, reports, loaded days) and, under root, its PostgreSQL folder."""
    for folder in _twin().services.clean():
        err.print(f"removed {folder}")


# --- pipeline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """One uploaded file's row in the ingest summary: what its run did with it."""

    file: str
    outcome: str
    rows: int = 0
    reason: str = ""
    report: str = ""
    alert: str = ""
    run: str = ""
    """The run's execution name (``flightpipe runs`` lists it)."""
    loaded_key: str = ""
    """The validated copy whose rows were loaded."""

    @property
    def loaded(self) -> bool:
        return self.outcome in ("loaded", "loaded with warnings")

    @property
    def succeeded(self) -> bool:
        return self.loaded or self.outcome == "in use"

    @classmethod
    def of(cls, run: Run, upload: Upload, twin: LocalTwin, alerts: Sequence[str]) -> FileOutcome:
        """The outcome of an upload's run, with the quality report's word on the file.

        ``alerts`` are the messages published to the alert topic; a failed run's is among them.
        """
        settings = twin.settings
        summary = twin.reports.summary(upload.uri, upload.version)
        base = cls(
            upload.key,
            run.status.lower(),
            reason=summary.reason if summary else "",
            report=(summary.report or "") if summary else "",
            run=run.name,
        )
        if not run.finished:
            timeout = settings.local.follow_timeout_seconds
            reason = f"the run was still {run.status} after {timeout:.0f} s"
            return replace(base, outcome="not finished", reason=reason)
        if run.status != "SUCCEEDED":
            alert = next((message for message in alerts if run.arn in message), "")
            return cls._failed(base, run, alert)
        if upload.bucket == settings.dimension_bucket:
            return replace(base, outcome="in use")
        key = settings.storage.validated_prefix + upload.name
        if twin.promoted_version(key) != upload.version:
            reason = "a newer upload of this file is validated and loaded instead"
            return replace(base, outcome="superseded", reason=reason)
        warned = summary is not None and summary.outcome == "warnings"
        return replace(
            base,
            outcome="loaded with warnings" if warned else "loaded",
            rows=twin.loaded_rows(key) or 0,
            reason=base.reason if warned else "",
            loaded_key=key,
        )

    @staticmethod
    def _failed(base: FileOutcome, run: Run, alert: str) -> FileOutcome:
        """A failed run's outcome: quarantined by the gate, rejected at load, or failed."""
        # The failure path makes a failed job run's error message the run's cause.
        if run.failed_step == "validation" and (
            run.cause.startswith("QuarantinedError")
            or run.error == workflow.QUARANTINED_BY_ANOTHER_RUN
        ):
            return replace(base, outcome="quarantined", alert=alert)
        if run.failed_step == "load" and run.error == workflow.REJECTED_AT_LOAD:
            return replace(base, outcome="rejected at load", reason=run.cause, alert=alert)
        reason = f"{run.failed_step}: {run.error}: {run.cause}"
        return replace(base, outcome="failed", reason=reason, alert=alert)


def _follow(twin: LocalTwin, uploads: Sequence[Upload], what: str) -> list[Run]:
    """Follow the runs the uploads started until they finish, with a progress bar."""
    names = [run_name(u.bucket, u.key, u.version) for u in uploads]
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(what, total=len(names), states="")

        def show(runs: Iterable[Run]) -> None:
            counts = Counter(run.status.lower() for run in runs)
            progress.update(
                task,
                completed=sum(n for status, n in counts.items() if status not in _UNFINISHED),
                states=", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
            )

        return twin.runs.follow(
            names,
            twin.settings.local.follow_timeout_seconds,
            twin.settings.timing.poll_interval_seconds,
            show,
        )


_UNFINISHED = ("running", "not started")


def _alert_messages(twin: LocalTwin) -> list[str]:
    return [alert["message"] for alert in twin.alerts()]


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Daily files (YYYY-MM-DD.csv) or folders.")],
    dim: Annotated[
        Path | None,
        typer.Option(
            "--dim",
            help="Airport dimension file; default: airport_codes.csv in a given folder, if any.",
        ),
    ] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Upload files to the local buckets and follow the runs their upload events start.

    Each upload's event starts one run of the state machine: validate, crawl, load. A file
    that fails a blocking expectation is quarantined, its run fails and an alert names it;
    the other files still load. A refused dimension leaves the last good one in use. The
    dimension's run finishes before the daily files are uploaded, as they are validated
    against it.
    """
    from pipeline.local.twin import find_inputs

    twin = _twin()
    started = time.monotonic()
    try:
        inputs = find_inputs(paths, dim, _state.settings.storage.dimension_key)
    except FileNotFoundError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    with err.status("starting the local twin"):
        twin.start()
        _ = twin.resources
    outcomes: list[FileOutcome] = []
    if inputs.dimension is not None:
        upload = twin.upload_dimension(inputs.dimension)
        [run] = _follow(twin, [upload], "airport dimension")
        outcomes.append(FileOutcome.of(run, upload, twin, _alert_messages(twin)))
    uploads = [twin.upload_daily(path) for path in inputs.daily]
    runs = _follow(twin, uploads, "runs")
    alerts = _alert_messages(twin)
    outcomes += [FileOutcome.of(r, u, twin, alerts) for r, u in zip(runs, uploads, strict=True)]
    elapsed = time.monotonic() - started

    columns: tuple[str, ...] = ("file", "outcome", "rows", "reason")
    rows: list[tuple[Any, ...]] = [(o.file, o.outcome, o.rows, o.reason) for o in outcomes]
    if fmt is not Format.TABLE:  # report pages are long paths: whole in CSV and JSON only
        columns = (*columns, "report", "run")
        rows = [(*row, o.report, o.run) for row, o in zip(rows, outcomes, strict=True)]
    _emit(columns, rows, fmt, title="Files")
    for alert in (o.alert for o in outcomes if o.alert):
        err.print("[bold red]alert for on-call[/]")
        err.print(alert, highlight=False, markup=False)
    if fmt is Format.TABLE:
        loaded = {o.loaded_key: o.rows for o in outcomes if o.loaded}
        per_day = twin.rows_per_day(loaded)
        _emit(
            ("flight_date", "flights", "cancelled", "unknown airport"), per_day, fmt, "Rows per day"
        )
        summary = [
            ("files", len(inputs.daily)),
            ("files loaded", len(loaded)),
            ("files quarantined", sum(o.outcome == "quarantined" for o in outcomes)),
            ("rows loaded", sum(loaded.values())),
            ("flights with an unknown airport", sum(r[3] for r in per_day)),
            ("quality report", str(twin.reports.index)),
            ("time taken", f"{elapsed:.1f} s"),
        ]
        _emit(("measure", "value"), summary, fmt, title="Summary")
    if not all(o.succeeded for o in outcomes):
        raise typer.Exit(1)


@app.command()
def runs(
    fmt: FormatOption = Format.TABLE,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest runs to show.")] = 50,
) -> None:
    """List the state machine's runs, newest first: file, status, duration and failed step."""
    twin = _twin()
    twin.start()
    listed = twin.runs.all()[:limit]
    columns: tuple[str, ...] = (
        "started",
        "file",
        "version",
        "status",
        "seconds",
        "failed step",
        "error",
        "run",
    )
    rows: list[tuple[Any, ...]] = [
        (
            r.started.isoformat(timespec="seconds") if r.started else "",
            r.file,
            r.version,
            r.status,
            r.seconds,
            r.failed_step,
            f"{r.error}: {r.cause}" if r.error else "",
            r.name,
        )
        for r in listed
    ]
    if fmt is Format.TABLE:  # short rows: the error's first line, the name's start
        columns = tuple(c for c in columns if c != "version")
        rows = [
            (started, file, status, seconds, step, error.split("\n", 1)[0], name[:12])
            for started, file, _, status, seconds, step, error, name in rows
        ]
    _emit(columns, rows, fmt, title="Runs")


@app.command()
def alerts(
    fmt: FormatOption = Format.TABLE,
    failed_only: Annotated[
        bool, typer.Option("--failed", help="Only failure alerts, as on-call receives them.")
    ] = False,
) -> None:
    """Show the messages published to the alert topic: failure alerts and success messages."""
    twin = _twin()
    twin.start()
    messages = [
        a
        for a in twin.alerts()
        if not failed_only or a.get("attributes", {}).get("outcome") == "failed"
    ]
    rows = [(a["time"], a.get("subject") or "", a["message"]) for a in messages]
    _emit(("time", "subject", "message"), rows, fmt, title="Alerts")


@app.command()
def load() -> None:
    """Run the ETL job once over whatever is new in the local raw bucket.

    A file whose rows the load cannot take is set aside (quarantined, with the reason) and
    listed as rejected; the others load.
    """
    twin = _twin()
    twin.start()
    result = twin.load()
    rows = [(key, "loaded", n, "") for key, n in sorted(result.rows_by_key.items())]
    rows += [(key, "refused", 0, reason) for key, reason in sorted(result.refused.items())]
    rows += [(r.file.key, "rejected", 0, r.reason) for r in result.rejected]
    _emit(("file", "outcome", "rows", "reason"), rows, Format.TABLE, title=result.job_run_id)
    if result.refused or result.rejected:
        raise typer.Exit(1)


@app.command()
def query(
    sql: Annotated[
        str, typer.Argument(help='Read-only SQL, e.g. "SELECT count(*) FROM flight_processed".')
    ],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Run read-only SQL on the warehouse."""
    import psycopg

    from pipeline.local.postgres import QueryRefusedError

    twin = _twin()
    twin.start()
    try:
        columns, rows = twin.warehouse.ask(sql, _state.settings.warehouse.query_timeout_seconds)
    except (psycopg.Error, QueryRefusedError) as exc:
        err.print(f"[red]query failed:[/] {str(exc).strip()}")
        raise typer.Exit(1) from exc
    _emit(columns, rows, fmt)


@app.command()
def report(
    open_site: Annotated[
        bool, typer.Option("--open", help="Open the report site in a web browser.")
    ] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Show where the data-quality report is, and the latest validation of every file."""
    reports = _twin().reports
    if not reports.index.exists():
        err.print("no validations yet: `flightpipe ingest` validates every file it uploads")
        raise typer.Exit(1)
    location = f"quality report: {reports.index}"
    (out if fmt is Format.TABLE else err).print(location, highlight=False)
    latest = reports.latest()
    columns: tuple[str, ...] = ("file", "outcome", "failed expectations", "validated at")
    rows: list[tuple[Any, ...]] = [
        (s.file, s.outcome, "; ".join(s.failed), s.validated_at) for s in latest
    ]
    if fmt is not Format.TABLE:  # report pages are long paths: whole in CSV and JSON only
        columns = (*columns, "page")
        rows = [(*row, s.report) for row, s in zip(rows, latest, strict=True)]
    _emit(columns, rows, fmt)
    if open_site and not webbrowser.open(reports.index.as_uri()):
        err.print("[yellow]no web browser found here; open the path above in one[/]")


@app.command()
def status(fmt: FormatOption = Format.TABLE) -> None:
    """Show what the warehouse holds: files, days, rows and the last run."""
    twin = _twin()
    twin.start()
    loaded = twin.loaded()
    rows = [
        ("files loaded", loaded.files),
        ("days", loaded.days),
        ("rows", loaded.rows),
        ("first day", loaded.first_day),
        ("last day", loaded.last_day),
        ("last run", loaded.last_run),
        ("last loaded at", loaded.last_loaded_at),
    ]
    _emit(("measure", "value"), rows, fmt)


# --- after a deployment ---------------------------------------------------------------------


def _target() -> Target:
    """The environment the global ``--env`` names: on AWS through the caller's credentials
    (after a deployment, the smoke role's), locally the twin, started if need be."""
    from pipeline.smoke import Target

    settings = _state.settings
    if settings.env is not Environment.LOCAL:
        return Target.on_aws(settings)
    from pipeline.local.objects import TWIN_BUCKETS

    twin = _twin()
    twin.start()
    resources = twin.resources
    return Target(
        settings=twin.settings,
        client=cache(twin.client),
        buckets={p: twin.settings.bucket(p) for p in TWIN_BUCKETS},
        main_arn=resources.main_arn,
        router_arn=resources.router_arn,
        operations_topic_arn=resources.operations_topic_arn,
        reports=twin.reports,
    )


@app.command()
def smoke(
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=1,
            help="Seconds to wait for the smoke run to succeed (within the smoke role's hour).",
        ),
    ] = 2400.0,
) -> None:
    """Send one synthetic day (1987-09-30, reserved) through the environment's pipeline, check
    its rows are queryable, then remove every trace of it. Airports come from the dimension in
    use; with none in use it fails saying so."""
    from pipeline.smoke import SmokeError, smoke_tested
    from pipeline.smoke import smoke as run_smoke

    try:
        smoke_tested(_state.settings)  # before any AWS call
        target = _target()
        result = run_smoke(target, timeout, lambda line: err.print(line, highlight=False))
    except SmokeError as exc:
        err.print(f"[red]smoke test failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc
    rows = [
        ("file", result.upload.uri),
        ("run", result.run),
        ("rows queryable", result.rows),
        ("seconds", round(result.seconds, 1)),
        ("removed after", f"{result.removed} objects and report files, and the day's rows"),
    ]
    _emit(("measure", "value"), rows, Format.TABLE, title=f"Smoke test: {target.settings.env}")


@app.command()
def health(fmt: FormatOption = Format.TABLE) -> None:
    """Check the environment without changing anything: its buckets, state machines, Glue
    jobs and crawlers, and the newest runs' statuses. Exit status 1 when something is missing
    or a state machine is not active."""
    from pipeline.smoke import health as check_health

    checks = check_health(_target())
    rows = [(c.what, "ok" if c.healthy else "FAILED", c.detail) for c in checks]
    _emit(("check", "result", "detail"), rows, fmt, title=f"Health: {_state.settings.env}")
    if not all(c.healthy for c in checks):
        raise typer.Exit(1)


@app.command("deployment-failed")
def deployment_failed(
    run_url: Annotated[
        str, typer.Option("--run-url", help="The address of the workflow run that failed.")
    ] = "",
) -> None:
    """Tell the environment's operations topic that its deployment failed (CD runs this)."""
    from pipeline.smoke import deployment_failed as notify

    target = _target()
    message_id = notify(target, run_url)
    err.print(f"told {target.operations_topic_arn} (message {message_id})", highlight=False)


class Machine(StrEnum):
    MAIN = "main"
    ROUTER = "router"


@app.command()
def definition(
    env: Annotated[
        Environment | None,
        typer.Option("--env", help="Environment to render for (default: the global --env)."),
    ] = None,
    machine: Annotated[
        Machine, typer.Option("--machine", help="The main state machine, or the event router.")
    ] = Machine.MAIN,
) -> None:
    """Print a state machine's ASL (JSON), its ${Name} placeholders left for CDK to fill."""
    settings = _state.settings if env is None else load_settings(env)
    build = workflow.main_definition if machine is Machine.MAIN else workflow.router_definition
    sys.stdout.write(workflow.render(build(settings)) + "\n")


@app.command()
def sample(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the files into.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Number of daily files.")] = 3,
    flights_per_day: Annotated[int, typer.Option("--flights-per-day", min=1)] = 3000,
    start: Annotated[
        dt.datetime, typer.Option("--start", formats=["%Y-%m-%d"], help="First flight date.")
    ] = dt.datetime(2024, 1, 1),
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Write a realistic sample: airport_codes.csv and N daily files."""
    spec = SampleSpec(days=days, flights_per_day=flights_per_day, start=start.date(), seed=seed)
    with err.status(f"writing {days} day(s) of flights"):
        files = write_sample(out_dir, spec)
    err.print(f"wrote {files.dimension} and {len(files.daily)} daily file(s), {files.rows} flights")
    out.print(str(out_dir))


def unreadable_file_message(java_error: str) -> str | None:
    """A one-paragraph explanation of a Spark read failure: which file, which rule, the fix."""
    from pipeline.local.objects import ObjectCache

    file = re.search(r"Encountered error while reading file (\S+?)\.? Details", java_error)
    if file is None:
        return None
    rule = re.search(r"\[MALFORMED_RECORD_IN_PARSING[^\]]*\] ([^\n]+)", java_error)
    detail = rule.group(1).strip() if rule else java_error.splitlines()[0]
    return (
        f"{ObjectCache.named(file.group(1))}: a row does not fit the daily-file contract "
        f"({detail}). "
        "Nothing of this run was loaded. Fix the file (numbers in the delay and airport "
        "columns, one value per header column) and upload it again."
    )


def main() -> None:
    """Console entry point; turns known failures into a message and exit status 1."""
    import psycopg
    from py4j.protocol import Py4JJavaError

    from jobs.flights import MissingColumnError
    from pipeline.local.postgres import LoadInProgressError
    from pipeline.local.services import ServiceError

    try:
        app()
    except psycopg.OperationalError as exc:
        err.print(
            f"[red]error:[/] the warehouse did not answer ({escape(str(exc).strip())}). "
            "`flightpipe local status` shows whether it runs; `flightpipe local up` starts it."
        )
        sys.exit(1)
    except (
        LoadInProgressError,
        ServiceError,
        NotADailyFileError,
        MissingColumnError,
        FileNotFoundError,
    ) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except Py4JJavaError as exc:
        message = unreadable_file_message(str(exc))
        if message is None:
            raise
        err.print(f"[red]error:[/] {escape(message)}", highlight=False)
        sys.exit(1)
