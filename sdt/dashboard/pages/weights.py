"""Rule-weights page: the probability of every tuning rule (action, problem) across iterations."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from sdt.dashboard.data import no_run_message
from sdt.dashboard.pages.common import empty_figure

PATH = "/weights"
TITLE = "Rule weights"


def weight_series(store) -> dict[str, tuple[list[int], list[float]]]:
    """'action | problem' -> (trial indices, weights), -1 = initial weights."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in (store or {}).get("rule_weights", []):
        xs, ys = series.setdefault(f"{row['action']} | {row['problem']}", ([], []))
        xs.append(row["trial_index"])
        ys.append(row["weight"])
    return series


def weights_figure(store) -> go.Figure:
    series = weight_series(store)
    if not series:
        return empty_figure(no_run_message(store) or "no rule weights stored")
    figure = go.Figure([go.Scatter(x=xs, y=ys, mode="lines+markers", name=name)
                        for name, (xs, ys) in sorted(series.items())])
    figure.update_layout(template="plotly_white", height=520, xaxis={"title": "trial (-1 = initial)", "dtick": 1},
                         yaxis={"title": "rule probability", "range": [0, 1.05]},
                         legend={"title": "action | problem"})
    return figure


def layout():
    return html.Div([
        html.H2("Rule weights"),
        html.P("Probability of each tuning rule (action for a problem), learned by LFI after each trial."),
        dcc.Graph(id="weights-graph"),
    ])


def register_callbacks(app) -> None:
    @app.callback(Output("weights-graph", "figure"), Input("run-store", "data"))
    def _update(store):
        return weights_figure(store)
