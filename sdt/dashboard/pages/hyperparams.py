"""Hyper-parameters page: values per trial (parallel coordinates + table), search-space bounds over iterations."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from dash import Input, Output, dash_table, dcc, html
from plotly.subplots import make_subplots

from sdt.dashboard.data import has_trials, latest_trial, no_run_message, objective_label
from sdt.dashboard.pages.common import TABLE_STYLE, empty_figure
from sdt.space.search_space import LOG_UNIFORM

PATH = "/hyperparameters"
TITLE = "Hyper-parameters"


def log_scale_names(store) -> set[str]:
    """The dimensions searched on a log scale, as the run's stored search spaces declare them."""
    return {dim["name"] for entry in store.get("search_spaces", [])
            for dim in (entry["space"] or {}).get("dimensions", []) if dim.get("prior") == LOG_UNIFORM}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parallel_figure(store) -> go.Figure:
    """Parallel coordinates: one axis per hyper-parameter every trial has (categorical ones as
    labelled positions, log-scale ones as log10), then the objective; each trial's line is coloured
    by its objective (dark: low, the best), so good regions of every axis show at a glance."""
    if not has_trials(store):
        return empty_figure(no_run_message(store))
    trials = store["trials"]
    names = sorted(k for k in trials[0]["params"] if all(k in t["params"] for t in trials))
    log_scale = log_scale_names(store)
    indices = [t["trial_index"] for t in trials]
    step = max(1, math.ceil(len(indices) / 12))
    dimensions = [{"label": "trial", "values": indices,
                   "tickvals": list(range(min(indices), max(indices) + 1, step))}]     # whole trial numbers
    for name in names:
        values = [t["params"][name] for t in trials]
        if all(_is_number(v) for v in values):
            if name in log_scale and all(v > 0 for v in values):
                dimensions.append({"label": f"log10({name})", "values": [math.log10(v) for v in values]})
            else:
                dimensions.append({"label": name, "values": values})
        else:
            categories = sorted({str(v) for v in values})
            dimensions.append({"label": name, "values": [categories.index(str(v)) for v in values],
                               "tickvals": list(range(len(categories))), "ticktext": categories,
                               "range": [-0.5, len(categories) - 0.5] if len(categories) == 1 else None})
    objectives = [t["objective"] for t in trials]
    label = objective_label(store)
    dimensions.append({"label": label, "values": objectives})
    figure = go.Figure(go.Parcoords(
        line={"color": objectives, "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": label}}},
        dimensions=[{k: v for k, v in d.items() if v is not None} for d in dimensions]))
    figure.update_layout(template="plotly_white", height=440, margin={"l": 60, "r": 80, "t": 60})
    return figure


def params_table(store) -> tuple[list[dict], list[dict]]:
    """(columns, rows) with every parameter of every trial, categorical ones included; `epochs` and
    `stopped` say how long each trial trained and, for a pruned one, why the stop rules ended it."""
    if not has_trials(store):
        return [], []
    trials = store["trials"]
    names = sorted({k for t in trials for k in t["params"]})
    columns = [{"name": c, "id": c} for c in ["trial", "status", "objective", "epochs", "stopped", "finished", *names]]
    rows = []
    for t in trials:
        row = {"trial": t["trial_index"], "status": t["status"], "objective": round(t["objective"], 5),
               "epochs": t.get("epochs_run"), "stopped": stopped_text(t), "finished": finished_text(t)}
        for name in names:
            value = t["params"].get(name)
            row[name] = f"{value:.4g}" if isinstance(value, float) else value
        rows.append(row)
    return columns, rows


def finished_text(trial: dict) -> str:
    """When a trial finished, to the second in UTC ("" for records written before the time was kept)."""
    finished = trial.get("finished_at")
    return "" if not finished else finished[:19].replace("T", " ") + " UTC"


def stopped_text(trial: dict) -> str:
    """Why and when the stop rules ended a pruned trial ("" for any other)."""
    if not trial.get("stop_reason"):
        return ""
    return f"{trial['stop_reason']} after epoch {trial.get('stop_epoch')}"


def numeric_bounds(store) -> dict[str, list[tuple[int, float, float]]]:
    """Per numeric dimension: (trial_index, low, high) for every stored search space (-1 = initial)."""
    bounds: dict[str, list[tuple[int, float, float]]] = {}
    for entry in store.get("search_spaces", []):
        for dim in (entry["space"] or {}).get("dimensions", []):
            if "low" in dim and "high" in dim and _is_number(dim["low"]) and _is_number(dim["high"]):
                bounds.setdefault(dim["name"], []).append((entry["trial_index"], dim["low"], dim["high"]))
    return bounds


def bounds_figure(store) -> go.Figure:
    """One panel per numeric dimension: its [low, high] band against the trial index."""
    bounds = numeric_bounds(store)
    if not bounds:
        return empty_figure(no_run_message(store) or "no search space stored yet")
    names = list(bounds)
    log_scale = log_scale_names(store)
    cols = 3
    rows = math.ceil(len(names) / cols)
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=names, vertical_spacing=min(0.3 / rows, 0.15))
    for i, name in enumerate(names):
        row, col = i // cols + 1, i % cols + 1
        x = [b[0] for b in bounds[name]]
        figure.add_trace(go.Scatter(x=x, y=[b[1] for b in bounds[name]], mode="lines+markers", name=f"{name} low",
                                    line={"color": "#1f77b4", "shape": "hv"}, showlegend=False), row=row, col=col)
        figure.add_trace(go.Scatter(x=x, y=[b[2] for b in bounds[name]], mode="lines+markers", name=f"{name} high",
                                    line={"color": "#1f77b4", "shape": "hv"}, fill="tonexty",
                                    fillcolor="rgba(31,119,180,0.2)", showlegend=False), row=row, col=col)
        if name in log_scale:
            figure.update_yaxes(type="log", row=row, col=col)
    figure.update_xaxes(title_text="after trial (-1 = initial)", tickmode="linear", dtick=1, tickformat="d")
    figure.update_layout(template="plotly_white", height=260 * rows, margin={"t": 40})
    return figure


def layout():
    return html.Div([
        html.H2("Hyper-parameters"),
        html.P("Each line is a trial, coloured by its objective (dark: lower, better); the last axis is the objective."),
        dcc.Graph(id="hp-parallel"),
        dash_table.DataTable(id="hp-table", page_size=20, sort_action="native", **TABLE_STYLE),
        html.H3("Search-space bounds over the iterations"),
        html.P("The band is [low, high] of each numeric dimension after each trial's tuning actions."),
        dcc.Graph(id="hp-bounds"),
    ])


def register_callbacks(app) -> None:
    @app.callback(Output("hp-parallel", "figure"), Output("hp-table", "columns"), Output("hp-table", "data"),
                  Output("hp-table", "style_data_conditional"), Output("hp-bounds", "figure"),
                  Input("run-store", "data"))
    def _update(store):
        columns, rows = params_table(store)
        latest = latest_trial(store) if has_trials(store) else None
        highlight = [{"if": {"filter_query": f"{{trial}} = {latest}"}, "backgroundColor": "#ffe0b2",
                      "fontWeight": "bold"}] if latest is not None else []
        return parallel_figure(store), columns, rows, highlight, bounds_figure(store)
