"""The distribution: ``triage`` on PyPI is an unrelated project, so this one is published as
``triage-forensics`` (import package and command stay ``triage``). The sdist and the wheel
build, the wheel built from the sdist installs into a fresh virtual environment, and the
installed ``triage`` command runs from there (not from this checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import REPO

DIST = "triage-forensics"


def test_distribution_name_is_not_the_unrelated_pypi_triage() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == DIST
    assert project["scripts"] == {"triage": "triage.cli:main"}
    readme = (REPO / "README.md").read_text()
    assert "pip install triage-forensics" in readme or "pipx install triage-forensics" in readme
    assert "pip install triage " not in readme and "pipx install triage " not in readme


def test_sdist_and_wheel_build_and_the_wheel_installs_in_a_fresh_venv(tmp_path: Path) -> None:
    # a copy of what the sdist needs, so the build writes nothing into the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "triage", src / "triage",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    dist = tmp_path / "dist"
    # --no-isolation: setuptools and build come from the test dependencies (offline, fast)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(dist), str(src)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    wheels = list(dist.glob("triage_forensics-*-py3-none-any.whl"))
    sdists = list(dist.glob("triage_forensics-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    with zipfile.ZipFile(wheels[0]) as whl:
        names = whl.namelist()
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = whl.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert f"Name: {DIST}\n" in meta
    assert "triage = triage.cli:main" in entry
    assert "triage/cli/main.py" in names and "triage/reports/html.py" in names

    # a fresh venv (system site packages give it the heavy binary dependencies, so the test
    # stays offline and fast; --no-deps) - what pipx does, with pip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)
    py = venv / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           str(wheels[0])], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    where = subprocess.run([str(py), "-c", "import triage; print(triage.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not this checkout
    proc = subprocess.run([str(venv / "bin" / "triage"), "--help"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: triage" in proc.stdout and "scan" in proc.stdout
    proc = subprocess.run([str(venv / "bin" / "triage"), "--version"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.stdout.startswith("triage ")
