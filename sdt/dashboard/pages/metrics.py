"""Metrics page: training/validation accuracy and loss per epoch, best-so-far objective per trial."""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, dcc, html
from plotly.subplots import make_subplots

from sdt.dashboard.data import (
    best_trial, has_trials, latest_trial, no_run_message, objective_label, objective_name,
)
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


def shown_trial(store) -> tuple[int | None, str]:
    """The trial the Metrics page opens on, and how it is tagged: the training in progress, else the
    best trial (what a user comes to see), else the latest (a run with no scored training yet)."""
    running = (store or {}).get("running")
    if running:
        return running["trial_index"], "training"
    best = best_trial(store)
    if best is not None:
        return best["trial_index"], "best"
    return latest_trial(store), "latest"


def integer_ticks(count: int) -> dict:
    """Axis settings that label whole numbers only (trials, epochs: never "epoch 1.5")."""
    return {"tickmode": "linear", "tick0": 0, "dtick": max(1, math.ceil(count / 12)), "tickformat": "d"}


def metrics_figure(store, selected: int | None = None) -> go.Figure:
    """Accuracy and loss per epoch of the training in progress or else the best trial, and (dashed)
    of the selected one."""
    running = (store or {}).get("running")
    if not has_trials(store) and not running:
        return empty_figure(no_run_message(store))
    main, tag_word = shown_trial(store)
    shown = [main] + ([selected] if selected is not None and selected != main else [])
    figure = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    colours = {"train": "#1f77b4", "val": "#ff7f0e"}
    longest = 1
    for trial_index in shown:
        epochs = epochs_of(store, trial_index)
        x = [e["epoch"] + 1 for e in epochs]
        longest = max(longest, len(x))
        dash = None if trial_index == main else "dash"
        tag = f"trial {trial_index}" + (f" ({tag_word})" if trial_index == main else "")
        for col, (train_key, val_key) in enumerate((("accuracy", "val_accuracy"), ("loss", "val_loss")), start=1):
            for split, key in (("train", train_key), ("val", val_key)):
                figure.add_trace(go.Scatter(x=x, y=[e[key] for e in epochs], mode="lines+markers",
                                            name=f"{tag} {'training' if split == 'train' else 'validation'} {train_key}",
                                            line={"color": colours[split], "dash": dash}), row=1, col=col)
    figure.update_xaxes(title_text="epoch", **{**integer_ticks(longest), "tick0": 1})
    figure.update_layout(template="plotly_white", height=420, legend={"orientation": "h", "y": -0.25})
    return figure


LINEAR, LOG = "linear", "log"


def best_so_far_figure(store, scale: str = LINEAR) -> go.Figure:
    """Objective per trial and the best (lowest) objective so far.

    `scale` LOG draws what the objective measures on a log axis, so chance-level trainings do not
    flatten the good ones: the validation loss, or the validation error 1 - accuracy."""
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
    label = objective_label(store)
    title = f"objective = {label} (lower is better)"
    if scale == LOG:
        if name == "val_accuracy":        # the objective is -accuracy: draw the error 1 - accuracy
            values, best = [1.0 + v for v in values], [1.0 + v for v in best]
            label, title = "1 - val_accuracy", "validation error 1 - accuracy (log scale, lower is better)"
        else:
            title = f"{label} (log scale, lower is better)"
        floor = 1e-4                       # a perfect score has no logarithm
        values, best = [max(v, floor) for v in values], [max(v, floor) for v in best]
    figure = go.Figure([
        go.Scatter(x=x, y=values, mode="markers", name=f"objective ({label})", marker={"color": "#999"}),
        go.Scatter(x=x, y=best, mode="lines+markers", name="best so far", line={"shape": "hv", "color": "#d62728"}),
    ])
    figure.update_layout(template="plotly_white", height=350, xaxis={"title": "trial", **integer_ticks(len(x))},
                         yaxis={"title": title, "type": scale})
    return figure


def best_trial_card(store) -> html.Div:
    """The best trial at a glance: its metrics, test accuracy when the run has finished, and what it trained."""
    best = best_trial(store)
    if best is None:
        return html.Div()
    final = (store or {}).get("final") or {}
    test = (f", test accuracy {final['test_accuracy']:.4f}" if final.get("index") == best["trial_index"]
            and final.get("test_accuracy") is not None else "")
    pruned = f" (pruned after epoch {best.get('stop_epoch')})" if best["status"] == "pruned" else ""
    metrics = (f"validation accuracy {best['val_accuracy']:.4f}, validation loss {best['val_loss']:.4f}{test}"
               if best.get("val_accuracy") is not None and best.get("val_loss") is not None else "")
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
    added = [f"{k}={v}" for k, v in best["architecture"].items() if v]
    return dbc.Card(dbc.CardBody([
        html.H4(f"Best trial {best['trial_index']}{pruned}", className="card-title"),
        html.Div(metrics, className="best-metrics fw-semibold"),
        html.Div(f"hyper-parameters: {params}", className="best-params small"),
        html.Div(f"network: the paper's CNN{' + ' + ', '.join(added) if added else ''}",
                 className="best-network small"),
    ]), id="best-trial-card", className="best-trial-card mb-3 border-success")


def layout():
    return html.Div([
        html.H2("Metrics"),
        html.Div(id="metrics-best-card"),
        html.Div(["Compare with trial: ",
                  dcc.Dropdown(id="metrics-trial", placeholder="the best (or running) trial only", clearable=True,
                               style={"width": "300px", "display": "inline-block"})]),
        dcc.Graph(id="metrics-epochs"),
        html.H3("Best objective so far"),
        dcc.RadioItems(id="metrics-scale", value=LINEAR, inline=True,
                       options=[{"label": " objective ", "value": LINEAR},
                                {"label": " loss / error on a log scale", "value": LOG}]),
        dcc.Graph(id="metrics-best"),
    ])


def register_callbacks(app) -> None:
    @app.callback(Output("metrics-trial", "options"), Input("run-store", "data"))
    def _options(store):
        return trial_options(store)

    @app.callback(Output("metrics-epochs", "figure"), Output("metrics-best", "figure"),
                  Output("metrics-best-card", "children"),
                  Input("run-store", "data"), Input("metrics-trial", "value"), Input("metrics-scale", "value"))
    def _figures(store, selected, scale):
        return metrics_figure(store, selected), best_so_far_figure(store, scale or LINEAR), best_trial_card(store)
