"""Every dashboard page once in a real headless Chromium (dash[testing]'s dash_duo); a screenshot per page.

Screenshots go to test-artifacts/dashboard/ (git-ignored); docs/screenshots/<page>.png is written only when
missing, so the tests never dirty the git tree.
"""

import shutil
import time
from pathlib import Path

import pytest

from sdt.dashboard.app import create_app
from sdt.dashboard.netron_viewer import NetronViewer

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
DOCS = REPO / "docs" / "screenshots"


def save_screenshot(duo, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = duo.driver.execute_script("return document.documentElement.scrollHeight")
    duo.driver.set_window_size(1400, min(max(int(height) + 140, 1000), 3000))   # the whole page
    time.sleep(0.5)
    duo.driver.save_screenshot(str(path))
    duo.driver.set_window_size(1400, 1000)
    DOCS.mkdir(parents=True, exist_ok=True)
    if not (DOCS / f"{name}.png").exists():
        shutil.copyfile(path, DOCS / f"{name}.png")
    return path


def open_page(duo, nav_id):
    duo.find_element(f"#{nav_id}").click()


def plot_points(duo, graph_id):
    """Number of data points of the graph's figure as the browser holds it."""
    return duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "if (!g || !g.data) return 0;"
        "return g.data.reduce((n, t) => n + ((t.x || (t.dimensions && t.dimensions[0].values) || []).length), 0);",
        f"#{graph_id}")


def wait_for_plot(duo, graph_id, timeout=60):
    duo.wait_for_element(f"#{graph_id} .main-svg", timeout=timeout)
    deadline = time.time() + timeout
    while time.time() < deadline and plot_points(duo, graph_id) == 0:
        time.sleep(0.2)
    assert plot_points(duo, graph_id) > 0, f"{graph_id} drew no data"


def test_every_page_in_a_browser(browser_duo, real_run, fake_runs):
    duo = browser_duo
    viewer = NetronViewer()
    try:
        duo.start_server(create_app(real_run, viewer=viewer, compare=[fake_runs["overfitting"]]))
        duo.wait_for_contains_text("#run-status", "3 trial(s)", timeout=60)

        wait_for_plot(duo, "metrics-epochs")
        wait_for_plot(duo, "metrics-best")
        save_screenshot(duo, "metrics")

        open_page(duo, "nav-hyperparams")
        wait_for_plot(duo, "hp-parallel")
        wait_for_plot(duo, "hp-bounds")
        duo.wait_for_element("#hp-table td", timeout=60)
        save_screenshot(duo, "hyperparameters")

        open_page(duo, "nav-weights")
        wait_for_plot(duo, "weights-graph")
        save_screenshot(duo, "weights")

        open_page(duo, "nav-decisions")
        duo.wait_for_element(".decision-entry", timeout=60)
        text = duo.find_element("#decisions-timeline").text
        from sdt.run.storage import read_records
        records = read_records(real_run)
        assert "Trial 0" in text
        # Every diagnosed problem and every applied action of the run is on the page.
        assert all(name in text for r in records if r.diagnosis for name in r.diagnosis.problem_names())
        assert all(a.name in text for r in records for a in r.chosen)
        assert any(r.diagnosis and r.diagnosis.problems for r in records)     # the check above can fail
        # An applied action is judged by the next training; a trial without one gets no verdict.
        judged = [r.index for r in records if r.chosen and r.index + 1 < len(records)]
        assert all(f"next training (trial {i + 1})" in text for i in judged)
        # (Counted by the verdict's own words: a `local` action's region may say "for the next
        # training only near trial k's values".)
        verdicts = text.count("next training (trial") + text.count("next training: not run yet")
        assert verdicts == len([r for r in records if r.chosen])
        assert "Proposed by gaussian process: initial point 1 of 2" in text
        save_screenshot(duo, "decisions")

        open_page(duo, "nav-architecture")
        duo.wait_for_element("#arch-layers td", timeout=60)
        assert "Conv2D" in duo.find_element("#arch-layers").text
        src = duo.driver.execute_script("return document.querySelector('#arch-netron').src")
        assert src.startswith("http://127.0.0.1:")
        # Netron draws the model at once: no cookie prompt, and (issue 18) no request to any host
        # but this machine (127.0.0.1; dash_duo serves the dashboard as localhost), from the
        # dashboard's page or from Netron's.
        duo.driver.switch_to.frame(duo.find_element("#arch-netron"))
        try:
            deadline = time.time() + 30
            while time.time() < deadline and not duo.driver.find_elements("css selector", "#canvas g"):
                time.sleep(0.3)
            assert duo.driver.find_elements("css selector", "#canvas g"), "Netron drew no graph"
            assert not [b for b in duo.driver.find_elements("css selector", "#message-button") if b.is_displayed()]
            netron_requests = duo.driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
        finally:
            duo.driver.switch_to.default_content()
        dashboard_requests = duo.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert netron_requests and dashboard_requests
        elsewhere = [url for url in netron_requests + dashboard_requests
                     if not url.startswith(("http://127.0.0.1:", "http://localhost:", "data:", "blob:"))]
        assert elsewhere == [], elsewhere
        save_screenshot(duo, "architecture")

        # Issue 18, item 1: trial 2, then trial 0, then trial 2 again: Netron draws the network of
        # the model selected, the same as the layer summary beside it.
        widths = {r.index: r.params["unit_c1"] for r in records}
        assert widths[0] != widths[2]
        for index in (2, 0, 2):
            duo.select_dcc_dropdown("#arch-model", value=f"trial {index}")
            duo.wait_for_contains_text("#arch-layers", f"filters={widths[index]},", timeout=60)
            duo.driver.switch_to.frame(duo.find_element("#arch-netron"))
            try:
                deadline, drawn = time.time() + 60, ""
                while time.time() < deadline and f"1×{widths[index]}" not in drawn:
                    time.sleep(0.3)
                    drawn = duo.driver.execute_script(
                        "const c = document.querySelector('#canvas'); return c ? c.textContent : ''")
                assert f"3×3×1×{widths[index]}" in drawn, (index, drawn[:300])
                assert f"3×3×1×{widths[2 - index]}" not in drawn
            finally:
                duo.driver.switch_to.default_content()

        open_page(duo, "nav-compare")
        wait_for_plot(duo, "compare-graph")
        lines = duo.driver.execute_script(
            "return document.querySelector('#compare-graph .js-plotly-plot').data.length")
        assert lines == 2
        duo.wait_for_contains_text("#compare-table", "sdt, edit", timeout=60)
        save_screenshot(duo, "compare")
        assert duo.get_logs() == [], duo.get_logs()
    finally:
        viewer.stop()
