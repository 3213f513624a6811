"""Compare page: this run beside other runs (for example sdt against bo from the benchmark).

The other runs are log folders, given to the launcher with `--compare FOLDER` (repeatable) or
typed on the page, comma-separated. Each is read read-only like this run; validation accuracy is
compared whatever each run's objective, so runs with different objectives line up.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html

from sdt.dashboard import data
from sdt.dashboard.pages.common import TABLE_STYLE, empty_figure

PATH = "/compare"
TITLE = "Compare runs"


def folders_of(text: str | None) -> list[str]:
    """The folders of the page's input: comma-separated, blanks dropped, each once."""
    return list(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))


def run_label(store: dict) -> str:
    """A run's name on the page: its folder's last two names (benchmark runs are runs/<arm>_seed<n>)
    and its strategy (with its guidance)."""
    config = store.get("config") or {}
    strategy = config.get("strategy", "?")
    guidance = config.get("guidance")
    if guidance and strategy in ("sdt", "random-sdt"):
        strategy = f"{strategy}, {guidance}"
    folder = Path(store["log_folder"])
    return f"{folder.parent.name}/{folder.name} ({strategy})"


def best_so_far_accuracy(store: dict) -> tuple[list[int], list[float | None]]:
    """Trial indices and the best validation accuracy reached up to each (None before any)."""
    xs, ys, best = [], [], None
    for trial in store.get("trials", []):
        accuracy = trial.get("val_accuracy")
        if accuracy is not None and trial["status"] in ("completed", "pruned"):
            best = accuracy if best is None else max(best, accuracy)
        xs.append(trial["trial_index"])
        ys.append(best)
    return xs, ys


def summary_row(store: dict) -> dict:
    """One run as a row of the comparison table."""
    if store.get("status") != data.STATUS_OK:
        return {"run": store.get("log_folder"), "strategy": "", "trainings": 0,
                "best val_accuracy": "", "test accuracy": "", "training time": "",
                "note": store.get("error") or data.no_run_message(store)}
    config = store.get("config") or {}
    trials = store["trials"]
    best = data.best_trial(store)
    final = store.get("final") or {}
    seconds = sum(t.get("duration_seconds") or 0.0 for t in trials)
    accuracies = [t["val_accuracy"] for t in trials if t.get("val_accuracy") is not None]
    return {"run": run_label(store), "strategy": config.get("strategy", ""), "trainings": len(trials),
            "best val_accuracy": round(max(accuracies), 4) if accuracies else "",
            "test accuracy": round(final["test_accuracy"], 4) if final.get("test_accuracy") is not None else "",
            "training time": f"{seconds / 60:.1f} min",
            "note": "" if best is None else f"best trial {best['trial_index']}"}


def comparison_figure(stores: list[dict]) -> go.Figure:
    """Best validation accuracy so far against the trial, one line per readable run."""
    readable = [s for s in stores if s.get("status") == data.STATUS_OK]
    if not readable:
        return empty_figure("no run to compare yet")
    figure = go.Figure()
    longest = 1
    for store in readable:
        xs, ys = best_so_far_accuracy(store)
        longest = max(longest, len(xs))
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=run_label(store), line={"shape": "hv"}))
    figure.update_layout(template="plotly_white", height=420,
                         xaxis={"title": "trial", "tickmode": "linear", "tick0": 0,
                                "dtick": max(1, -(-longest // 12)), "tickformat": "d"},
                         yaxis={"title": "best validation accuracy so far"}, legend={"orientation": "h", "y": -0.2})
    return figure


def compared_stores(store: dict | None, text: str | None) -> list[dict]:
    """This run's data (already loaded) and each compared folder's, read now."""
    stores = [store] if store and store.get("status") == data.STATUS_OK else []
    own = Path(store["log_folder"]).resolve() if store and store.get("log_folder") else None
    for folder in folders_of(text):
        path = Path(folder).expanduser()
        if own is not None and path.resolve() == own:
            continue
        stores.append(data.refresh(path, None))
    return stores


def layout():
    return html.Div([
        html.H2("Compare runs"),
        html.P("This run beside other runs' log folders (comma-separated; the launcher's --compare fills it in): "
               "the best validation accuracy so far against the trial, and each run's result."),
        dcc.Input(id="compare-folders", type="text", debounce=True, placeholder="/path/to/other/log_folder",
                  style={"width": "80%"}),
        dcc.Graph(id="compare-graph"),
        dash_table.DataTable(id="compare-table", **TABLE_STYLE),
    ])


def register_callbacks(app) -> None:
    @app.callback(Output("compare-folders", "value"), Input("url", "pathname"), State("compare-default", "data"))
    def _default(_, default):
        return ", ".join(default or [])

    @app.callback(Output("compare-graph", "figure"), Output("compare-table", "data"),
                  Input("run-store", "data"), Input("compare-folders", "value"))
    def _update(store, text):
        stores = compared_stores(store, text)
        return comparison_figure(stores), [summary_row(s) for s in stores]
