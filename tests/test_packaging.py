"""Which wheels the Glue artifact may carry, decided from the lock alone (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.packaging import Locked, PackagingError, fetch_wheels, glue_side


def locked(*wheels: str, sdist: bool = False) -> Locked:
    return Locked("demo", "1.0", {w: "0" * 64 for w in wheels}, "1" * 64 if sdist else None)


@pytest.mark.parametrize(
    "wheel",
    [
        "demo-1.0-py3-none-any.whl",
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "demo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl",
        "demo-1.0-cp39-abi3-manylinux_2_28_x86_64.whl",
        "demo-1.0-cp311-cp311-manylinux1_x86_64.whl",
    ],
)
def test_a_wheel_for_cpython_311_on_glibc_234_or_older_x86_64_fits_glue(wheel: str) -> None:
    assert locked(wheel).glue_wheels() == [wheel]


@pytest.mark.parametrize(
    "wheel",
    [
        "demo-1.0-cp311-cp311-manylinux_2_35_x86_64.whl",  # newer glibc than Amazon Linux 2023
        "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",  # another Python
        "demo-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",  # another C library
        "demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",  # another processor
        "demo-1.0-cp311-cp311-linux_x86_64.whl",  # built for one machine, no manylinux promise
        "demo-1.0-cp311-cp311-win_amd64.whl",
    ],
)
def test_a_wheel_for_another_python_or_platform_does_not(wheel: str) -> None:
    assert locked(wheel).glue_wheels() == []


def test_a_compiled_package_without_a_wheel_for_glue_or_an_sdist_fails_the_build_by_name(
    tmp_path: Path,
) -> None:
    package = locked("demo-1.0-cp311-cp311-win_amd64.whl")

    with pytest.raises(PackagingError, match=r"demo==1\.0 \(wheels: demo-1\.0-cp311-cp311-win"):
        fetch_wheels([package], tmp_path, python="unused")


def test_the_glue_side_is_read_from_the_import_contract_that_says_so() -> None:
    pyproject = {
        "tool": {
            "importlinter": {
                "contracts": [
                    {"name": "other", "source_modules": ["pipeline"]},
                    {"id": "glue-side", "name": "x", "source_modules": ["jobs", "quality"]},
                ]
            }
        }
    }

    assert glue_side(pyproject) == ("jobs", "quality")
    with pytest.raises(PackagingError, match="glue-side"):
        glue_side({"tool": {}})
