"""The Glue artifact (``make package``), installed as Glue 5.1 installs it, runs the jobs' code.

Slow (marked ``slow``, and run by ``make test``): the session builds the artifact once, then a
clean virtual environment holding only what Glue's Spark runtime brings, pyspark 3.5.6 with
its py4j and Glue's own Python library (``awsglue``, the PyPI package
``AWSGlueDataplanePython``), and installs the zip into it as a job does, with pip and no index.
Every check then runs in that environment, away from the repository and its virtual
environment: what a job imports can only come from the zip.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from jobs import flight_etl, validation
from pipeline import packaging, workflow
from pipeline.settings import REPO_ROOT
from quality.site_assets import VENDOR, npm_files
from tests.glue import glue_argv, run_id
from tests.test_glue_job import state_machine_arguments

pytestmark = pytest.mark.slow

# What Glue 5.1's Spark runtime is: the only packages the environment holds before the zip.
GLUE_RUNTIME = ("pyspark", "py4j", "awsgluedataplanepython")
NOT_GLUE_SIDE = (
    "pipeline/local/",
    "pipeline/cli.py",
    "pipeline/workflow.py",
    "pipeline/settings.py",
    "pipeline/sample.py",
    "pipeline/packaging.py",
    "pipeline/__main__.py",
    "tests/",
)


@pytest.fixture(scope="session")
def glue_python(artifact: packaging.Artifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a Glue-shaped environment with the zip installed as a job installs
    it: unzipped, then ``pip install --no-index --find-links wheels -r wheels/requirements.txt``
    (``--python-modules-installer-option --no-index``), nothing reachable but the zip's folder."""
    root = tmp_path_factory.mktemp("glue-env")
    venv = root / "venv"
    uv = packaging.find_uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    locked = _locked_versions()
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps"]
        + [f"{name}=={locked[name]}" for name in GLUE_RUNTIME],
        check=True,
    )
    unpacked = root / "zip"
    with zipfile.ZipFile(artifact.zip_path) as archive:
        archive.extractall(unpacked)
    # pip from this project's environment, run by the Glue-shaped interpreter (`--python`), so
    # that environment gets no pip of its own; no pip configuration of this machine (its
    # find-links would offer wheels the zip lacks).
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"),
            *("--no-index", "--find-links", "wheels", "-r", "wheels/requirements.txt"),
        ],
        cwd=unpacked,
        env=env,
        check=True,
    )
    return python


def in_glue(python: Path, code: str, *args: Any) -> Any:
    """Run ``code`` in the Glue-shaped environment, isolated (``-I``: no repository on the
    path, no user site) in a folder of its own; ``args`` arrive as JSON in ``sys.argv[1:]``
    and whatever ``code`` prints is read back as JSON."""
    result = subprocess.run(
        [str(python), "-I", "-c", code, *(json.dumps(a) for a in args)],
        cwd=python.parent,
        env={k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {canonicalize_name(p["name"]): p["version"] for p in lock["package"]}


def _wheel_files(artifact: packaging.Artifact) -> dict[str, bytes]:
    with zipfile.ZipFile(artifact.zip_path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_artifact_is_the_two_entry_scripts_and_one_zip_of_wheels(
    artifact: packaging.Artifact,
) -> None:
    assert sorted(p.name for p in artifact.out.iterdir()) == sorted(
        [workflow.VALIDATION_SCRIPT, workflow.LOAD_SCRIPT, "flightpipe.gluewheels.zip"]
    )
    files = _wheel_files(artifact)
    # AWS's layout: one top-level wheels/ folder, its requirements.txt naming every wheel in it
    # at its version, and nothing else.
    assert {PurePosixPath(name).parent for name in files} == {PurePosixPath("wheels")}
    wheels = {PurePosixPath(n).name for n in files if n.endswith(".whl")}
    pinned = {parse_wheel_filename(w)[0] + "==" + str(parse_wheel_filename(w)[1]) for w in wheels}
    assert files["wheels/requirements.txt"].decode().splitlines() == sorted(
        pinned, key=lambda pin: pin.partition("==")[0]
    )
    assert set(files) == {f"wheels/{w}" for w in wheels} | {"wheels/requirements.txt"}


def test_the_job_wheel_holds_the_glue_side_and_nothing_else(
    artifact: packaging.Artifact,
) -> None:
    job_wheel = _wheel_files(artifact)[f"wheels/{artifact.job_wheel}"]
    with zipfile.ZipFile(io.BytesIO(job_wheel)) as wheel:
        files = sorted(n for n in wheel.namelist() if ".dist-info/" not in n)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    glue_side = packaging.glue_side(pyproject)
    modules = [f for f in files if f.endswith(".py")]
    assert modules == [str(f) for f in packaging.glue_side_files(REPO_ROOT, glue_side)]
    assert {"jobs/validation.py", "jobs/flight_etl.py", "quality/gate.py"} <= set(modules)
    assert [f for f in files if f.startswith(NOT_GLUE_SIDE)] == []
    # Besides the modules, only the report's browser files, where the report looks for them.
    assets = sorted(f for f in files if not f.endswith(".py"))
    assert assets == [f"node_modules/{path}" for path in npm_files()]


def test_the_zip_carries_no_spark_glue_has_its_own(artifact: packaging.Artifact) -> None:
    files = _wheel_files(artifact)
    names = {parse_wheel_filename(PurePosixPath(n).name)[0] for n in files if n.endswith(".whl")}
    assert names.isdisjoint({"pyspark", "py4j"})
    assert "spark" not in files["wheels/requirements.txt"].decode()


def test_every_dependency_is_a_wheel_for_glue_at_the_locked_version(
    artifact: packaging.Artifact,
) -> None:
    locked = _locked_versions()
    for name in artifact.wheels:
        project, version, _, tags = parse_wheel_filename(name)
        if name != artifact.job_wheel:
            assert str(version) == locked[project], name
        assert tags & packaging.GLUE_TAGS, f"{name} does not install on CPython 3.11 manylinux"


def test_glue_runs_the_versions_the_tests_ran(glue_python: Path) -> None:
    installed = in_glue(
        glue_python,
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
    )
    ours = {canonicalize_name(n): v for n, v in installed.items() if n != packaging.WHEEL_NAME}
    here = _locked_versions()
    assert {name: here[name] for name in ours} == ours
    assert set(GLUE_RUNTIME) <= set(ours)


def test_every_module_of_the_job_wheel_imports_on_glue(glue_python: Path) -> None:
    """Each module of the wheel imports, from the wheel; and every module any of them imports
    anywhere (inside a function too, as the entrypoints import boto3 and awsglue) is there."""
    found = in_glue(glue_python, _IMPORT_EVERYTHING, packaging.WHEEL_NAME)
    assert found["not_from_the_wheel"] == []
    assert found["missing"] == []
    assert {"boto3", "great_expectations", "awsglue", "pyspark"} <= set(found["imported"])


_IMPORT_EVERYTHING = """
import ast, importlib, importlib.metadata, importlib.util, json, sys
from pathlib import Path

files = [f for f in importlib.metadata.files(json.loads(sys.argv[1])) if f.suffix == ".py"]
modules = [".".join(f.with_suffix("").parts).removesuffix(".__init__") for f in files]
not_from_the_wheel = [
    m for m in modules
    if not Path(importlib.import_module(m).__file__).is_relative_to(Path(sys.prefix))
]
imported = set()
for file in files:
    for node in ast.walk(ast.parse(Path(file.locate()).read_text())):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # for the type checker only
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
missing = sorted(m for m in imported if importlib.util.find_spec(m) is None)
print(json.dumps({
    "not_from_the_wheel": not_from_the_wheel, "missing": missing, "imported": sorted(imported)
}))
"""


def test_a_validation_on_glue_gates_a_file_and_writes_its_report_page(glue_python: Path) -> None:
    """The gate runs (GX on pandas, from the zip), and its page loads only the deployed static
    files, once the scripts GX pins were checked against the wheel's copies (their integrity)."""
    written = in_glue(glue_python, _VALIDATE)

    assert written["outcome"] == "passed"
    assert written["page"].endswith(".html")
    assert written["external"] == []


_VALIDATE = """
import datetime as dt, json, re, tempfile
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname
from pipeline.core.settings import QualitySettings
from quality.gate import check_daily_file
from quality.reports import QualityReports

data = b"Carrier,OriginAirportID,DestAirportID,DepDelay,ArrDelay\\nDL,10397,12892,5,-3\\n"
verdict = check_daily_file(
    "2024-01-02.csv", data, [10397, 12892], QualitySettings(), dt.date(2024, 1, 3)
)
page = QualityReports(Path(tempfile.mkdtemp())).record("s3://raw/2024-01-02.csv", "v1", verdict)
html = Path(url2pathname(urlsplit(page).path)).read_text()
print(json.dumps({
    "outcome": str(verdict.outcome),
    "page": page,
    # What a page loads (scripts, images, stylesheets), not the links a reader may follow.
    "external": re.findall(r'(?:\\bsrc=|<link\\b[^>]*\\bhref=)"(https?://[^"]+)"', html),
}))
"""


def test_the_reports_static_site_is_built_beside_for_the_deployment(
    artifact: packaging.Artifact,
) -> None:
    site = artifact.static_site / "uncommitted" / "data_docs" / "local_site"
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}

    assert {VENDOR + path for path in npm_files()} <= files
    assert "static/images/logo-long.png" in files  # GX's own static folder too
    assert all(f.startswith("static/") for f in files)


@pytest.mark.parametrize(
    ("script", "state", "module"),
    [
        (workflow.VALIDATION_SCRIPT, "Validate upload", validation),
        (workflow.LOAD_SCRIPT, "Load validated files", flight_etl),
    ],
)
def test_each_entry_module_parses_the_argument_vector_glue_hands_it(
    glue_python: Path, script: str, state: str, module: Any
) -> None:
    passed = state_machine_arguments(state)
    argv = glue_argv(script, passed, job_name="flightpipe-dev-job")

    parsed = in_glue(glue_python, _PARSE, module.__name__, argv)

    # What the job's own parser makes of it (Glue's getResolvedOptions under it) on Glue is
    # what it makes of it here, where the entrypoint tests run; and it holds the run's values.
    assert parsed == _parsed(*module.parse_arguments(argv))
    settings = json.loads(passed["--settings"])
    if module is flight_etl:
        assert parsed["settings"] == settings
        assert (parsed["run"]["JOB_NAME"], parsed["run"]["JOB_RUN_ID"]) == (
            "flightpipe-dev-job",
            run_id(1),
        )
        assert {f"--{name}": parsed["run"][name] for name in module.GLUE_ARGUMENTS[1:]} == {
            name: value for name, value in passed.items() if name != "--job-bookmark-option"
        }
    else:
        buckets = {"dim": passed["--dimension_bucket"], "reports": passed["--reports_bucket"]}
        settings["storage"]["buckets"] = buckets
        settings["storage"]["reports_url"] = passed["--reports_url"]
        assert parsed["settings"] == settings
        assert parsed["run"] == {
            "bucket": passed["--bucket"],
            "key": passed["--key"],
            "version": passed["--version_id"],
        }


_PARSE = """
import dataclasses, importlib, json, sys

job = importlib.import_module(json.loads(sys.argv[1]))
settings, run = job.parse_arguments(json.loads(sys.argv[2]))
print(json.dumps({
    "settings": settings.model_dump(mode="json"),
    "run": run if isinstance(run, dict) else dataclasses.asdict(run),
}))
"""


def _parsed(settings: Any, run: Any) -> dict[str, Any]:
    """``_PARSE``'s output, for a parse in this process."""
    return {
        "settings": settings.model_dump(mode="json"),
        "run": run if isinstance(run, dict) else dataclasses.asdict(run),
    }


@pytest.mark.parametrize("script", [workflow.VALIDATION_SCRIPT, workflow.LOAD_SCRIPT])
def test_each_entry_script_runs_main_of_its_module_in_the_wheel_with_sys_argv(
    artifact: packaging.Artifact, glue_python: Path, script: str
) -> None:
    path = artifact.out / script
    argv = glue_argv(str(path), {"--env": "dev"}, job_name="flightpipe-dev-job")

    called = in_glue(glue_python, _RUN_SCRIPT, str(path), argv)

    assert called == {
        "module": workflow.JOB_SCRIPTS[script],
        "argv": argv,
        "from_the_wheel": True,
    }


# Runs the script as Glue does (as __main__, with the run's sys.argv), its module's `main`
# replaced by a recorder: the real one would reach for AWS.
_RUN_SCRIPT = """
import importlib, json, runpy, sys
from pathlib import Path

script, argv = json.loads(sys.argv[1]), json.loads(sys.argv[2])
source = Path(script).read_text()
module_name = next(l.split()[1] for l in source.splitlines() if l.startswith("from "))
module = importlib.import_module(module_name)
calls = []
module.main = lambda args: calls.append(list(args))
sys.argv = argv
runpy.run_path(script, run_name="__main__")
(called,) = calls
print(json.dumps({
    "module": module_name,
    "argv": called,
    "from_the_wheel": Path(module.__file__).is_relative_to(Path(sys.prefix)),
}))
"""
