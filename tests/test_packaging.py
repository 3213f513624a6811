"""The installable package: what `pip install .` puts into site-packages, and the commands it brings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line.replace(" ", ""))
    return lines


def test_requirements_txt_and_pyproject_pin_the_same_ranges():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(requirement_lines(REPO / "requirements.txt")) == sorted(
        d.replace(" ", "") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    optional = requirement_lines(REPO / "requirements-optuna.txt") + requirement_lines(REPO / "requirements-benchmark.txt")
    assert sorted(set(optional)) == sorted(set(extras["benchmark"]))
    ray, jax = requirement_lines(REPO / "requirements-ray.txt"), requirement_lines(REPO / "requirements-jax.txt")
    assert ray == extras["ray"] and jax == extras["jax"]
    assert requirement_lines(REPO / "requirements-torch.txt") == extras["torch"]
    assert set(requirement_lines(REPO / "requirements-test.txt")) | set(optional) | set(ray) | set(jax) \
        == set(extras["test"])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed as pip installs it (no dependencies: they are this machine's)."""
    # from a copy, so the build leaves nothing in the checkout
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "sdt", source / "sdt", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(source)],
                   check=True, capture_output=True, text=True, timeout=600)
    return target


def test_only_the_sdt_package_lands_in_site_packages(installed):
    top_level = {p.name for p in installed.iterdir()
                 if p.name not in ("bin", "__pycache__") and not p.name.endswith((".dist-info", ".egg-info"))}
    assert top_level == {"sdt"}
    assert (installed / "sdt" / "symbolic" / "diagnosis.pl").is_file()
    assert (installed / "sdt" / "symbolic" / "tuning_rules.pl").is_file()
    assert (installed / "sdt" / "data" / "fashion_mnist_small.npz").stat().st_size > 1_000_000


def run_installed(installed: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_api_and_the_commands_work_from_another_folder(installed, tmp_path):
    code = "import sdt, sys; from sdt import tune; print(sdt.__file__); assert 'main' not in sys.modules"
    result = run_installed(installed, [sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed)
    for command in ([str(installed / "bin" / "sdt"), "--help"], [sys.executable, "-m", "sdt", "--help"]):
        result = run_installed(installed, command, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "--strategy" in result.stdout and "--max-evals" in result.stdout
    script = (installed / "bin" / "sdt-dashboard").read_text()
    assert re.search(r"from sdt\.dashboard\.launcher import main", script)


def test_the_shipped_rules_are_read_from_the_installed_package(installed, tmp_path):
    history = REPO / "tests" / "fixtures" / "histories" / "overfitting.json"
    result = run_installed(installed, [sys.executable, "-m", "sdt", "--diagnose", str(history)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "overfitting" in result.stdout
