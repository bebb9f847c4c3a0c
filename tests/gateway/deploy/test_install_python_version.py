"""install.sh refuses an interpreter the bundle's wheels are not built for, before it creates anything.
(The bundle test installs with the right one: tests/constructs/test_gateway_bundle.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from constructs.gateway_bundle import TARGET_PYTHON

ROOT = Path(__file__).resolve().parents[3]


def bundle_with_fake_python(tmp_path: Path, reports: str) -> tuple[Path, Path]:
    """install.sh and python-version as the bundle has them, and a `python` that answers `reports`
    to the version check and records every call."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy2(ROOT / "gateway" / "deploy" / "install.sh", bundle / "install.sh")
    (bundle / "python-version").write_text(TARGET_PYTHON + "\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\necho "{reports}"\n')
    python.chmod(0o755)
    return bundle, python


@pytest.mark.parametrize("reports", ["CPython 3.9", "CPython 3.12", "PyPy 3.11"])
def test_another_python_is_refused_with_a_clear_message(tmp_path: Path, reports: str) -> None:
    bundle, python = bundle_with_fake_python(tmp_path, reports)
    prefix = tmp_path / "prefix"
    completed = subprocess.run(
        ["sh", str(bundle / "install.sh")],
        env={**os.environ, "AIGW_PREFIX": str(prefix), "AIGW_PYTHON": str(python)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 3
    assert f"{python} is {reports}; this bundle's wheels are built for CPython {TARGET_PYTHON}" in completed.stderr
    assert f"install python{TARGET_PYTHON} and python{TARGET_PYTHON}-pip" in completed.stderr
    assert not prefix.exists()  # no venv, nothing installed
    assert "-m venv" not in (tmp_path / "calls").read_text()


def test_a_missing_python_is_refused(tmp_path: Path) -> None:
    bundle, _ = bundle_with_fake_python(tmp_path, "CPython 3.11")
    completed = subprocess.run(
        ["sh", str(bundle / "install.sh")],
        env={**os.environ, "AIGW_PREFIX": str(tmp_path / "prefix"), "AIGW_PYTHON": str(tmp_path / "no-python")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 3 and "is not a Python that runs" in completed.stderr
