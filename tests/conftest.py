"""Shared setup of the tests: headless Chromium options for dash[testing]'s dash_duo, run fixtures,
and one test at a time of those that start several training processes (marker `processes`)."""

from __future__ import annotations

import fcntl
import os
import shutil

import pytest

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run",
                  "--window-size=1400,1000")


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def pytest_configure(config):
    # Plain `python3 -m pytest -q` must drive the browser headless: set what `--webdriver Chrome --headless` would.
    if hasattr(config.option, "headless"):
        config.option.headless = True
        config.option.webdriver = "Chrome"


@pytest.hookimpl(optionalhook=True)   # dash[testing]'s hook; the suite also runs without it
def pytest_setup_options():
    """dash[testing] hook: the Chrome options for dash_duo."""
    from selenium.webdriver.chrome.options import Options
    options = Options()
    binary = chromium_binary()
    if binary:
        options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return options


@pytest.fixture(autouse=True)
def one_multiprocess_test_at_a_time(request, tmp_path_factory):
    """A test marked `processes` (several training processes at once: Ray workers and clusters,
    side-by-side trainings) holds a lock shared by every xdist worker of the session while it runs,
    so two such tests never overlap: each starts up to three TensorFlow processes, which on two
    cores and beside another of them starve each other (and Ray's health checks) for minutes."""
    if request.node.get_closest_marker("processes") is None:
        yield
        return
    # The session's temporary root, shared by its xdist workers (each has a folder inside it).
    lock_path = tmp_path_factory.getbasetemp().parent / "sdt-processes.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def browser_duo(request):
    """dash_duo when a Chromium and its driver are installed; else skip (locally) or fail (CI=true)."""
    missing = [name for name, found in (("chromium", chromium_binary()), ("chromedriver", shutil.which("chromedriver")))
               if not found]
    if missing:
        reason = (f"browser test needs {' and '.join(missing)} "
                  "(Debian: apt-get install -y chromium chromium-driver)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; CI=true makes a missing browser a failure")
        pytest.skip(reason)
    return request.getfixturevalue("dash_duo")


@pytest.fixture(scope="session")
def fake_runs(tmp_path_factory):
    """Two instant runs with the fake trainer: 'overfitting' curves, and 'high_lr' curves (decr_lr moves the lr range)."""
    from sdt.cli import main
    from tests.fake_training import FakeTrainer, fake_factory

    folders = {}
    for name, history in (("overfitting", "overfitting"), ("high_lr", "high_lr")):
        folder = tmp_path_factory.mktemp(f"fake_{name}") / "run"
        # Edit guidance: the dashboard's bounds figure must show decr_lr moving the range.
        main.run(main.RunConfig(dataset="digits", max_evals=5, epochs=3, seed=1, initial_points=2,
                                guidance="edit"), folder,
                 make_train=fake_factory(FakeTrainer(lambda p, a, i, h=history: h)))
        folders[name] = folder
    return folders


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    """A real, short Keras run on digits (a few seconds): saved models, real curves."""
    from sdt.cli import main

    folder = tmp_path_factory.mktemp("real") / "run"
    main.run(main.RunConfig(dataset="digits", max_evals=3, epochs=3, seed=0, initial_points=2), folder)
    return folder
