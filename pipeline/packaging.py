"""The AWS Glue artifact, built from the lock file with no AWS account: ``make package``.

``python -m pipeline.packaging`` writes ``dist/glue/``, what the Glue jobs run:

- ``validation.py`` and ``flight_etl.py``, the jobs' entry scripts, under the names the job
  definitions give them; each calls ``main(sys.argv)`` of its module in the job wheel;
- ``flightpipe.gluewheels.zip``, a "zip of wheels": one top-level ``wheels/`` folder holding
  the job wheel (``flightpipe-glue``), every runtime dependency of the jobs at the version
  ``uv.lock`` pins, as wheels for CPython 3.11 on manylinux x86_64, and ``requirements.txt``
  naming each of them at that version.

and beside it ``dist/reports/``, the quality report's static files (stylesheets, scripts,
fonts) laid out as under the reports bucket's prefix, which the environment's deployment puts
there: a validation job uploads none of them (``quality.reports.write_static_site``).

What is Glue-side is read from one place, the import contract in ``pyproject.toml`` whose
``id`` is ``GLUE_SIDE_CONTRACT``: its source modules (with the ``__init__.py`` of the packages
above them) are the job wheel's only modules. Beside them it carries the quality report's
browser files from ``node_modules``: every page a validation writes checks the scripts GX
links against them (their subresource integrity) before linking the deployed copies. What the
Glue side needs at run time is the ``glue`` dependency group, exported from the lock with its
whole closure, less pyspark and py4j: Glue's Spark runtime is those, and a wheel of either
would shadow Glue's own build.

AWS documents the zip of wheels, how to make it and how a job installs it, in "Using Python
libraries with AWS Glue", Appendix A
(https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html):
``pip3 download -r requirements.txt --dest wheels/ --platform manylinux2014_x86_64
--python-version 311 --only-binary=:all:``, then ``zip -r NAME.gluewheels.zip wheels/``; the
job names the zip in ``--additional-python-modules`` and passes
``--python-modules-installer-option --no-index``, and Glue's pip3 installs what the folder's
``requirements.txt`` names from the wheels beside it, without reaching any index. Packages that
Glue 5.1 itself provides at other versions (boto3, numpy, pandas...) are replaced by the ones
in the zip, so a job runs the versions the tests ran.

This module is not Glue-side: it runs where the repository is (a developer's machine, CI),
drives uv and pip, and reads the jobs' script names from ``pipeline.workflow``; the job wheel
never holds it, and it imports nothing of the twin.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from pipeline.settings import REPO_ROOT
from pipeline.workflow import JOB_SCRIPTS, ZIP_NAME
from quality.site_assets import npm_files

GLUE_SIDE_CONTRACT: Final = "glue-side"
"""The ``id`` of the import contract whose source modules are what runs on Glue."""
GLUE_GROUP: Final = "glue"
"""The dependency group naming what the Glue side imports at run time."""
PROVIDED_BY_GLUE: Final = ("pyspark", "py4j")
"""Glue's Spark runtime: never shipped, whatever depends on it."""

WHEEL_NAME: Final = "flightpipe-glue"
ZIP_FOLDER: Final = "wheels"

OUT_DIR: Final = REPO_ROOT / "dist" / "glue"
SITE_FOLDER: Final = "reports"
"""The report's static files, beside the Glue folder (``dist/reports``)."""
WORK_DIR: Final = REPO_ROOT / "build" / "glue"
"""Downloaded wheels, kept between builds (each checked against the lock's hashes before it
is reused), and what the last build was made from."""

# Glue 5.1: CPython 3.11 on Amazon Linux 2023, glibc 2.34, x86_64 (the version table of the
# page above). A wheel for glibc 2.34 or older runs there: manylinux_2_5 .. manylinux_2_34, and
# the legacy aliases manylinux1 (2.5), manylinux2010 (2.12) and manylinux2014 (2.17). The
# newest first: pip prefers the first platform it is given.
GLUE_PYTHON: Final = (3, 11)
GLUE_PLATFORMS: Final = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(34, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
GLUE_TAGS: Final = frozenset(
    [
        *cpython_tags(GLUE_PYTHON, abis=["cp311"], platforms=GLUE_PLATFORMS),
        *compatible_tags(GLUE_PYTHON, interpreter="cp311", platforms=GLUE_PLATFORMS),
    ]
)
GLUE_MARKERS: Final = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.0",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.11.0",
    "python_version": "3.11",
    "sys_platform": "linux",
}
"""The environment markers of a Glue 5.1 job, so a requirement is kept or dropped for Glue,
never for the machine that builds (``python_full_version``: any 3.11 release)."""

# Fixed time and mode for every zip entry: the same inputs give the same bytes.
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE: Final = 0o644 << 16
_EPOCH: Final = "315532800"
"""1980-01-01, the earliest time a zip entry can carry, for the wheels built here."""


class PackagingError(RuntimeError):
    """The artifact cannot be built as Glue needs it; the message says which package and why."""


@dataclass(frozen=True)
class Locked:
    """A runtime dependency as the lock pins it, with the files the lock knows for it."""

    name: str
    version: str
    wheels: Mapping[str, str]
    """Each wheel's file name (every platform's) and its sha256."""
    sdist: str | None
    """The sha256 of the sdist, if there is one."""

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def glue_wheels(self) -> list[str]:
        """The lock's wheels of this version that install on Glue."""
        return [wheel for wheel in self.wheels if _tags(wheel) & GLUE_TAGS]


@dataclass(frozen=True)
class Artifact:
    """What a build wrote: the folder, its files, and what the zip holds."""

    out: Path
    scripts: tuple[Path, ...]
    zip_path: Path
    static_site: Path
    """The report's static files as laid out under the reports prefix."""
    job_wheel: str
    """The job wheel's file name inside ``wheels/``."""
    wheels: tuple[str, ...]
    """Every wheel's file name inside ``wheels/``, the job wheel's among them."""


def glue_side(pyproject: Mapping[str, Any]) -> tuple[str, ...]:
    """The Glue side: the source modules of the import contract ``GLUE_SIDE_CONTRACT``."""
    contracts = pyproject.get("tool", {}).get("importlinter", {}).get("contracts", [])
    for contract in contracts:
        if contract.get("id") == GLUE_SIDE_CONTRACT:
            return tuple(contract["source_modules"])
    raise PackagingError(
        f"pyproject.toml has no import contract with id = {GLUE_SIDE_CONTRACT!r}: its "
        "source modules are what the Glue artifact holds"
    )


def glue_side_files(root: Path, modules: Iterable[str]) -> list[PurePosixPath]:
    """The files making up ``modules`` under ``root``, sorted: each package whole (its data
    files too, never bytecode), each module's own file, and the ``__init__.py`` of every
    package above them, without that package's other modules."""
    files: set[PurePosixPath] = set()
    for module in modules:
        parts = module.split(".")
        for depth in range(1, len(parts)):
            files.add(PurePosixPath(*parts[:depth], "__init__.py"))
        package = root.joinpath(*parts)
        if package.is_dir():
            files.update(
                PurePosixPath(path.relative_to(root).as_posix())
                for path in package.rglob("*")
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
            )
        elif package.with_suffix(".py").is_file():
            files.add(PurePosixPath(*parts[:-1], parts[-1] + ".py"))
        else:
            raise PackagingError(f"the Glue side names {module}, which is not in {root}")
    missing = [str(f) for f in files if not root.joinpath(f).is_file()]
    if missing:
        raise PackagingError(f"a Glue-side package lacks its __init__.py: {', '.join(missing)}")
    return sorted(files)


def job_wheel_files(root: Path, pyproject: Mapping[str, Any]) -> list[PurePosixPath]:
    """What the job wheel is made of: the Glue side's files, and the files of ``node_modules``
    its quality report serves (``quality.site_assets.npm_files``; every validation copies them
    into the report, and Glue has no npm), at ``node_modules/`` beside ``quality/``."""
    assets = [PurePosixPath("node_modules", path) for path in npm_files()]
    missing = [str(a) for a in assets if not root.joinpath(a).is_file()]
    if missing:
        raise PackagingError(
            f"{', '.join(missing)} missing: `make node` installs the report's browser assets"
        )
    return glue_side_files(root, glue_side(pyproject)) + assets


def locked_runtime(uv: str, root: Path) -> list[Locked]:
    """The ``glue`` group's runtime closure, pinned by ``uv.lock`` (never re-resolved), less
    what Glue provides and what no Glue job installs (a marker false on Glue, say Windows)."""
    exported = _run(
        [
            uv, "export", "--frozen", "--only-group", GLUE_GROUP, "--no-emit-project",
            *(arg for name in PROVIDED_BY_GLUE for arg in ("--no-emit-package", name)),
            "--no-hashes", "--no-header", "--no-annotate", "--format", "requirements.txt",
        ],
        cwd=root,
    )  # fmt: skip
    files = _lock_files(root / "uv.lock")
    locked = []
    for line in exported.splitlines():
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(GLUE_MARKERS):
            continue
        (version,) = (s.version for s in requirement.specifier)
        name = canonicalize_name(requirement.name)
        wheels, sdist = files[name, version]
        locked.append(Locked(name, version, wheels, sdist))
    return locked


def _lock_files(lock: Path) -> dict[tuple[str, str], tuple[dict[str, str], str | None]]:
    """Each locked package's wheels (file name, sha256) and sdist sha256, by name and version."""
    packages = tomllib.loads(lock.read_text(encoding="utf-8"))["package"]
    return {
        (canonicalize_name(p["name"]), p["version"]): (
            {PurePosixPath(w["url"]).name: _sha(w["hash"]) for w in p.get("wheels", [])},
            _sha(p["sdist"]["hash"]) if "sdist" in p else None,
        )
        for p in packages
    }


def _sha(lock_hash: str) -> str:
    algorithm, _, digest = lock_hash.partition(":")
    if algorithm != "sha256":
        raise PackagingError(f"uv.lock holds a {algorithm} hash; pip checks sha256 here")
    return digest


def _tags(wheel: str) -> frozenset[Tag]:
    return parse_wheel_filename(wheel)[3]


def fetch_wheels(packages: Sequence[Locked], cache: Path, python: str) -> list[Path]:
    """A wheel for Glue of each package, in ``cache``: one of the lock's files where one fits
    Glue (pip picks it as Glue's pip would, and checks it against the lock's hashes), else, for
    a pure-Python package published as an sdist only, a wheel built here from the locked sdist.

    A package with neither (compiled code and no manylinux wheel for CPython 3.11) fails the
    build: Glue cannot compile code when a job starts. Files no package uses any more leave
    ``cache``.
    """
    cache.mkdir(parents=True, exist_ok=True)
    unusable = [p for p in packages if not p.glue_wheels() and p.sdist is None]
    if unusable:
        raise PackagingError(
            "no wheel for Glue 5.1 (CPython 3.11, manylinux x86_64) and no sdist to build one "
            "from: "
            + "; ".join(f"{p.pin} (wheels: {', '.join(p.wheels) or 'none'})" for p in unusable)
        )
    missing = [p for p in packages if _cached(p, cache) is None]
    if downloads := [p for p in missing if p.glue_wheels()]:
        _pip_download(downloads, cache, python)
    for package in missing:
        if not package.glue_wheels():
            _build_pure_wheel(package, cache, python)
    wheels = []
    for package in packages:
        wheel = _cached(package, cache)
        if wheel is None:
            raise PackagingError(f"pip left no wheel of {package.pin} for Glue in {cache}")
        wheels.append(wheel)
    kept = {w.name for w in wheels} | {_built_from(w).name for w in wheels}
    for stale in cache.iterdir():
        if stale.name not in kept:
            stale.unlink()
    return wheels


def _cached(package: Locked, cache: Path) -> Path | None:
    """The wheel of ``package`` already in ``cache``: one of the lock's own files (by name and
    sha256), or one built here from the locked sdist (its sha256 recorded beside it)."""
    for name in package.glue_wheels():
        if (cache / name).is_file() and _sha256(cache / name) == package.wheels[name]:
            return cache / name
    for wheel in sorted(cache.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        built_from = _built_from(wheel)
        if (
            (name, str(version)) == (package.name, package.version)
            and built_from.is_file()
            and built_from.read_text() == package.sdist
        ):
            return wheel
    return None


def _built_from(wheel: Path) -> Path:
    """Where a wheel built here records the sha256 of the sdist it was built from."""
    return wheel.with_name(wheel.name + ".sdist-sha256")


def _pip_download(packages: Sequence[Locked], cache: Path, python: str) -> None:
    """``pip download`` as AWS's Appendix A does, for Glue's interpreter and platforms, each
    file checked against the lock's hashes; no dependencies: the closure is already listed."""
    with tempfile.TemporaryDirectory() as work:
        requirements = Path(work, "requirements.txt")
        requirements.write_text(
            "".join(
                p.pin + "".join(f" --hash=sha256:{h}" for h in sorted(p.wheels.values())) + "\n"
                for p in packages
            )
        )
        _run(
            [
                python, "-m", "pip", "download", "--quiet", "--dest", str(cache), "--no-deps",
                "--only-binary=:all:", "--require-hashes", "-r", str(requirements),
                "--implementation", "cp", "--python-version", "311", "--abi", "cp311",
                *(arg for platform in GLUE_PLATFORMS for arg in ("--platform", platform)),
            ]
        )  # fmt: skip


def _build_pure_wheel(package: Locked, cache: Path, python: str) -> None:
    """A wheel built from the locked sdist, kept only when it is pure Python (platform
    ``any``): a compiled one would be built for this machine, not for Glue."""
    assert package.sdist is not None
    with tempfile.TemporaryDirectory() as work:
        requirements = Path(work, "requirements.txt")
        requirements.write_text(f"{package.pin} --hash=sha256:{package.sdist}\n")
        _run(
            [
                python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-binary=:all:",
                "--require-hashes", "-r", str(requirements), "--wheel-dir", work,
            ],
            # The wheel's files carry this time rather than the build's (where the backend
            # honours it), so a rebuild gives the same wheel.
            env={**os.environ, "SOURCE_DATE_EPOCH": _EPOCH},
        )  # fmt: skip
        (built,) = Path(work).glob("*.whl")
        if not all(tag.platform == "any" for tag in _tags(built.name)):
            raise PackagingError(
                f"{package.pin} has no wheel for Glue 5.1 (CPython 3.11, manylinux x86_64) "
                f"and its sdist builds compiled code ({built.name}): Glue cannot compile it "
                "when a job starts; pin a version that publishes a manylinux wheel"
            )
        shutil.copyfile(built, cache / built.name)
        # The built wheel's bytes are in no lock: the locked sdist's hash vouches for it.
        _built_from(cache / built.name).write_text(package.sdist)


def build_job_wheel(root: Path, pyproject: Mapping[str, Any], uv: str, out: Path) -> Path:
    """The job wheel, by hatchling (the version uv.lock pins, from this environment): a
    project of its own holding a copy of the Glue side's files and nothing else.

    It requires the ``glue`` group, by name; the zip's ``requirements.txt`` pins the versions.
    """
    project = pyproject["project"]
    modules = glue_side(pyproject)
    with tempfile.TemporaryDirectory() as work:
        source = Path(work, WHEEL_NAME)
        for file in job_wheel_files(root, pyproject):
            target = source / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / file, target)
        packages = sorted({module.split(".")[0] for module in modules})
        (source / "pyproject.toml").write_text(
            textwrap.dedent(
                f"""\
                [project]
                name = "{WHEEL_NAME}"
                version = "{project["version"]}"
                description = "The flightpipe jobs as AWS Glue 5.1 runs them."
                requires-python = "{project["requires-python"]}"
                dependencies = {json.dumps(pyproject["dependency-groups"][GLUE_GROUP])}

                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"

                [tool.hatch.build.targets.wheel]
                packages = {json.dumps(packages)}

                [tool.hatch.build.targets.wheel.force-include]
                "node_modules" = "node_modules"
                """
            )
        )
        _run(
            [
                uv, "build", "--wheel", "--no-build-isolation", "--python", sys.executable,
                "--out-dir", work, "--quiet", str(source),
            ],
            # Hatchling's wheels are reproducible; this fixes the time their files carry.
            env={**os.environ, "SOURCE_DATE_EPOCH": _EPOCH},
        )  # fmt: skip
        (wheel,) = Path(work).glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, out / wheel.name))


def write_zip(path: Path, wheels: Sequence[Path], requirements: str) -> None:
    """The zip of wheels: ``wheels/`` with the wheels and ``requirements.txt``, entries in
    name order with a fixed time and mode (wheels are stored: they are zips already)."""
    entries = sorted([(w.name, w.read_bytes()) for w in wheels])
    entries.append(("requirements.txt", requirements.encode()))
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(f"{ZIP_FOLDER}/{name}", date_time=_ZIP_TIME)
            info.external_attr = _ZIP_MODE
            info.compress_type = (
                zipfile.ZIP_STORED if name.endswith(".whl") else zipfile.ZIP_DEFLATED
            )
            archive.writestr(info, data)
    partial.replace(path)


def entry_script(module: str) -> str:
    """A job's entry script: Glue runs it as ``__main__`` with the run's argument vector."""
    return textwrap.dedent(
        f'''\
        """AWS Glue entry script: the job is ``{module}`` in the job wheel
        (--additional-python-modules {ZIP_NAME})."""

        import sys

        from {module} import main

        if __name__ == "__main__":
            main(sys.argv)
        '''
    )


def build(
    out: Path = OUT_DIR,
    work: Path = WORK_DIR,
    *,
    wheels: Path | None = None,
    uv: str | None = None,
) -> Artifact:
    """Build the artifact into ``out``, or leave it as it is when nothing it is made from
    changed since the last build (the lock, pyproject.toml, the job wheel's files, this module).

    ``work`` records the last build; the downloaded wheels are kept in ``wheels`` (by default
    ``work/wheels``), which builds into other folders may share.
    """
    uv = uv or find_uv()
    root = REPO_ROOT
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    inputs = _inputs_digest(root, pyproject, out)
    stamp = work / "built.json"
    built = json.loads(stamp.read_text()) if stamp.exists() else {}
    site = out.parent / SITE_FOLDER
    if (
        built.get("inputs") == inputs
        and _outputs(out) == built["outputs"]
        and _tree_digest(site) == built["site"]
    ):
        return _artifact(out, built)
    version = pyproject["project"]["version"]
    packages = locked_runtime(uv, root)
    dependencies = fetch_wheels(packages, wheels or work / "wheels", sys.executable)
    with tempfile.TemporaryDirectory() as job_dir:
        job_wheel = build_job_wheel(root, pyproject, uv, Path(job_dir))
        out.mkdir(parents=True, exist_ok=True)
        # Every wheel in the folder, each at its version: Glue's pip installs exactly these.
        pins = sorted([(p.name, p.version) for p in packages] + [(WHEEL_NAME, version)])
        requirements = "".join(f"{name}=={pinned}\n" for name, pinned in pins)
        write_zip(out / ZIP_NAME, [*dependencies, job_wheel], requirements)
    for script, module in JOB_SCRIPTS.items():
        (out / script).write_text(entry_script(module))
    write_site(site)
    if built.get("out") == str(out.resolve()):
        # What the last build here wrote and this one did not (a script renamed) goes, so the
        # folder is the artifact and nothing else; files it never wrote stay.
        for stale in set(built["outputs"]) - set(_outputs(out)):
            (out / stale).unlink(missing_ok=True)
    built = {
        "inputs": inputs,
        "out": str(out.resolve()),
        "outputs": _outputs(out),
        "site": _tree_digest(site),
        "job_wheel": job_wheel.name,
        "wheels": sorted(w.name for w in [*dependencies, job_wheel]),
    }
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(built, indent=2))
    return _artifact(out, built)


def write_site(site: Path) -> None:
    """The report's static files in ``site``, replacing whatever a last build left there."""
    from quality.reports import write_static_site  # GX: only when the site is rebuilt

    with tempfile.TemporaryDirectory(dir=site.parent if site.parent.exists() else None) as work:
        write_static_site(Path(work, "site"))
        shutil.rmtree(site, ignore_errors=True)
        site.parent.mkdir(parents=True, exist_ok=True)
        Path(work, "site").rename(site)


def _tree_digest(folder: Path) -> str | None:
    """One digest of every file under ``folder`` (names and contents), or None without it."""
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(_sha256(path).encode())
    return digest.hexdigest()


def _artifact(out: Path, built: Mapping[str, Any]) -> Artifact:
    return Artifact(
        out=out,
        scripts=tuple(out / script for script in JOB_SCRIPTS),
        zip_path=out / ZIP_NAME,
        static_site=out.parent / SITE_FOLDER,
        job_wheel=built["job_wheel"],
        wheels=tuple(built["wheels"]),
    )


def _inputs_digest(root: Path, pyproject: Mapping[str, Any], out: Path) -> str:
    digest = hashlib.sha256(str(out.resolve()).encode())
    sources = [PurePosixPath("pyproject.toml"), PurePosixPath("uv.lock")]
    sources += job_wheel_files(root, pyproject)
    for file in sources:
        digest.update(f"\0{file}\0".encode() + (root / file).read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(json.dumps(JOB_SCRIPTS).encode())
    return digest.hexdigest()


def _outputs(out: Path) -> dict[str, str]:
    names = [*JOB_SCRIPTS, ZIP_NAME]
    return {name: _sha256(out / name) for name in names if (out / name).is_file()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_uv() -> str:
    """uv: the one running this (``uv run`` says which in ``UV``), else the repository's own
    (``make`` puts it under ``.flightpipe/tools``), else the first on ``PATH``."""
    candidates = [os.environ.get("UV"), str(REPO_ROOT / ".flightpipe/tools/uv/bin/uv")]
    for candidate in [*candidates, shutil.which("uv")]:
        if candidate and Path(candidate).is_file():
            return candidate
    raise PackagingError("uv is not installed: `make setup` installs it")


def _run(
    command: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run a build step; its failure is a ``PackagingError`` quoting the step's own output."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(
            f"{' '.join(command[:3])} ... failed ({result.returncode}):\n"
            + (result.stderr or result.stdout).strip()
        )
    return result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.packaging", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where to write (dist/glue)")
    args = parser.parse_args(argv)
    try:
        artifact = build(args.out)
    except PackagingError as exc:
        print(f"make package: {exc}", file=sys.stderr)
        return 1
    for path in [*artifact.scripts, artifact.zip_path]:
        print(f"{path}  {path.stat().st_size:,} bytes")
    files = [p for p in artifact.static_site.rglob("*") if p.is_file()]
    print(f"{artifact.static_site}/  {len(files)} files of the report's static site")
    print(f"{ZIP_NAME}: {len(artifact.wheels)} wheels, the job's {artifact.job_wheel} among them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
