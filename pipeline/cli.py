"""The ``flightpipe`` command.

Exit status: 0 when everything asked for succeeded, 1 when a file was refused or a step failed,
2 for a usage error. Results go to stdout; progress and logs go to stderr.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from pipeline.logs import configure_logging
from pipeline.settings import Environment, Settings, load_settings

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

out = Console(soft_wrap=True)
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
    """Print rows as a table, CSV or JSON on stdout."""
    if fmt is Format.CSV:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    elif fmt is Format.JSON:
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        sys.stdout.write(json.dumps(records, default=str, indent=2) + "\n")
    else:
        table = Table(title=title or None)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


# --- local services -------------------------------------------------------------------------


@local_app.command("up")
def local_up() -> None:
    """Start the local S3 endpoint and PostgreSQL, and create the buckets and tables."""
    twin = _twin()
    with err.status("starting the local twin"):
        twin.start()
    local_status(Format.TABLE)


@local_app.command("down")
def local_down() -> None:
    """Stop the local services (their data stays in the state folder)."""
    _twin().services.down()
    err.print("local services stopped")


@local_app.command("status")
def local_status(fmt: FormatOption = Format.TABLE) -> None:
    """Show whether each local service is running, and where."""
    statuses = _twin().services.status()
    rows = [(s.name, "running" if s.running else "stopped", s.address, s.detail) for s in statuses]
    _emit(("service", "state", "address", "data"), rows, fmt)


# --- pipeline -------------------------------------------------------------------------------


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
    """Upload files to the local buckets and run the pipeline on them until done."""
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
    keys: dict[str, Path] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    ) as progress:
        if inputs.dimension is not None:
            twin.upload_dimension(inputs.dimension)
        upload = progress.add_task("uploading", total=len(inputs.daily))
        for path in inputs.daily:
            keys[twin.upload_daily(path)] = path
            progress.advance(upload)
        progress.add_task("starting Spark", total=None)
        _ = twin.spark
        progress.add_task(f"loading {len(inputs.daily)} file(s)", total=None)
        result = twin.load()
    elapsed = time.monotonic() - started

    rows = []
    for key in keys:
        if key in result.rows_by_key:
            rows.append((key, "loaded", result.rows_by_key[key], ""))
        elif key in result.refused:
            rows.append((key, "refused", 0, result.refused[key]))
        else:
            rows.append((key, "not loaded", 0, "no new version of this file was found"))
    _emit(("file", "outcome", "rows", "reason"), rows, fmt, title="Files")
    if fmt is Format.TABLE:
        per_day = twin.rows_per_day(result.rows_by_key)
        _emit(
            ("flight_date", "flights", "cancelled", "unknown airport"), per_day, fmt, "Rows per day"
        )
        summary = [
            ("files", len(keys)),
            ("files loaded", len(result.rows_by_key)),
            ("rows loaded", result.rows),
            ("flights with an unknown airport", sum(r[3] for r in per_day)),
            ("time taken", f"{elapsed:.1f} s"),
        ]
        _emit(("measure", "value"), summary, fmt, title="Summary")
    if any(outcome != "loaded" for _, outcome, _, _ in rows):
        raise typer.Exit(1)


@app.command()
def load() -> None:
    """Run the ETL job once over whatever is new in the local raw bucket."""
    twin = _twin()
    twin.start()
    result = twin.load()
    rows = [(key, "loaded", n, "") for key, n in sorted(result.rows_by_key.items())]
    rows += [(key, "refused", 0, reason) for key, reason in sorted(result.refused.items())]
    _emit(("file", "outcome", "rows", "reason"), rows, Format.TABLE, title=result.job_run_id)
    if result.refused:
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

    twin = _twin()
    twin.start()
    try:
        columns, rows = twin.warehouse.query(sql)
    except psycopg.Error as exc:
        err.print(f"[red]query failed:[/] {str(exc).strip()}")
        raise typer.Exit(1) from exc
    _emit(columns, rows, fmt)


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
    from pipeline.sample import SampleSpec, write_sample

    spec = SampleSpec(days=days, flights_per_day=flights_per_day, start=start.date(), seed=seed)
    with err.status(f"writing {days} day(s) of flights"):
        files = write_sample(out_dir, spec)
    err.print(f"wrote {files.dimension} and {len(files.daily)} daily file(s), {files.rows} flights")
    out.print(str(out_dir))


def unreadable_file_message(java_error: str) -> str | None:
    """A one-paragraph explanation of a Spark read failure: which file, which rule, the fix."""
    file = re.search(r"Encountered error while reading file (\S+?)\.? Details", java_error)
    if file is None:
        return None
    rule = re.search(r"\[MALFORMED_RECORD_IN_PARSING[^\]]*\] ([^\n]+)", java_error)
    detail = rule.group(1).strip() if rule else java_error.splitlines()[0]
    return (
        f"{file.group(1)}: a row does not fit the daily-file contract ({detail}). "
        "Nothing of this run was loaded. Fix the file (numbers in the delay and airport "
        "columns, one value per header column) and upload it again."
    )


def main() -> None:
    """Console entry point; turns known failures into a message and exit status 1."""
    from py4j.protocol import Py4JJavaError

    from jobs.flights import MissingColumnError
    from pipeline.contract import NotADailyFileError
    from pipeline.local.postgres import LoadInProgressError
    from pipeline.local.services import ServiceError

    try:
        app()
    except (
        LoadInProgressError,
        ServiceError,
        NotADailyFileError,
        MissingColumnError,
        FileNotFoundError,
    ) as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except Py4JJavaError as exc:
        message = unreadable_file_message(str(exc))
        if message is None:
            raise
        err.print(f"[red]error:[/] {message}", highlight=False)
        sys.exit(1)
