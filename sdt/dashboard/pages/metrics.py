"""Metrics page: training/validation accuracy and loss per epoch, best-so-far objective per trial."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, dcc, html
from plotly.subplots import make_subplots

from sdt.dashboard.data import has_trials, latest_trial, no_run_message, objective_name
from sdt.dashboard.pages.common import empty_figure

PATH = "/"
TITLE = "Metrics"


def trial_options(store) -> list[dict]:
    options = [{"label": f"trial {t['trial_index']} ({t['status']}"
                         + (f": {t['stop_reason']} after epoch {t.get('stop_epoch')})" if t.get("stop_reason") else ")"),
                "value": t["trial_index"]}
               for t in (store or {}).get("trials", [])]
    running = (store or {}).get("running")
    if running:
        options.append({"label": running_label(running), "value": running["trial_index"]})
    return options


def running_label(running) -> str:
    return f"trial {running['trial_index']} (training: epoch {running['epoch']}/{running['epochs']})"


def epochs_of(store, trial_index: int) -> list[dict]:
    running = store.get("running")
    if running and running["trial_index"] == trial_index:
        return running["rows"]
    return [e for e in store.get("epochs", []) if e["trial_index"] == trial_index]


def metrics_figure(store, selected: int | None = None) -> go.Figure:
    """Accuracy and loss per epoch for the latest trial, or the training in progress, and (dashed)
    for the selected one."""
    running = (store or {}).get("running")
    if not has_trials(store) and not running:
        return empty_figure(no_run_message(store))
    latest = running["trial_index"] if running else latest_trial(store)
    shown = [latest] + ([selected] if selected is not None and selected != latest else [])
    figure = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    colours = {"train": "#1f77b4", "val": "#ff7f0e"}
    for trial_index in shown:
        epochs = epochs_of(store, trial_index)
        x = [e["epoch"] + 1 for e in epochs]
        dash = None if trial_index == latest else "dash"
        tag = f"trial {trial_index}" + ((" (training)" if running else " (latest)") if trial_index == latest else "")
        for col, (train_key, val_key) in enumerate((("accuracy", "val_accuracy"), ("loss", "val_loss")), start=1):
            for split, key in (("train", train_key), ("val", val_key)):
                figure.add_trace(go.Scatter(x=x, y=[e[key] for e in epochs], mode="lines+markers",
                                            name=f"{tag} {'training' if split == 'train' else 'validation'} {train_key}",
                                            line={"color": colours[split], "dash": dash}), row=1, col=col)
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(template="plotly_white", height=420, legend={"orientation": "h", "y": -0.25})
    return figure


def best_so_far_figure(store) -> go.Figure:
    """Objective per trial and the best (lowest) objective so far."""
    if not has_trials(store):
        return empty_figure(no_run_message(store))
    trials = store["trials"]
    x = [t["trial_index"] for t in trials]
    values = [t["objective"] for t in trials]
    best, running = [], None
    for value in values:
        running = value if running is None else min(running, value)
        best.append(running)
    name = objective_name(store)
    label = "-val_accuracy" if name == "val_accuracy" else name
    figure = go.Figure([
        go.Scatter(x=x, y=values, mode="markers", name=f"objective ({label})", marker={"color": "#999"}),
        go.Scatter(x=x, y=best, mode="lines+markers", name="best so far", line={"shape": "hv", "color": "#d62728"}),
    ])
    figure.update_layout(template="plotly_white", height=350, xaxis_title="trial",
                         yaxis_title=f"objective = {label} (lower is better)")
    return figure


def layout():
    return html.Div([
        html.H2("Metrics"),
        html.Div(["Compare with trial: ",
                  dcc.Dropdown(id="metrics-trial", placeholder="latest only", clearable=True,
                               style={"width": "300px", "display": "inline-block"})]),
        dcc.Graph(id="metrics-epochs"),
        html.H3("Best objective so far"),
        dcc.Graph(id="metrics-best"),
    ])


def register_callbacks(app) -> None:
    @app.callback(Output("metrics-trial", "options"), Input("run-store", "data"))
    def _options(store):
        return trial_options(store)

    @app.callback(Output("metrics-epochs", "figure"), Output("metrics-best", "figure"),
                  Input("run-store", "data"), Input("metrics-trial", "value"))
    def _figures(store, selected):
        return metrics_figure(store, selected), best_so_far_figure(store)
