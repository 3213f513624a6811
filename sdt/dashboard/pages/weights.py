"""Rule-weights page: the probability of every tuning rule (action, problem) across iterations."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative
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
    # A colour of its own for every rule (ten default colours for a dozen rules made some share one),
    # and one line style per problem, so the rules of one problem are seen together.
    names = sorted(series)
    problems = sorted({name.split(" | ")[1] for name in names})
    palette = qualitative.Dark24 + qualitative.Light24
    dashes = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
    figure = go.Figure([go.Scatter(x=series[name][0], y=series[name][1], mode="lines+markers", name=name,
                                   line={"color": palette[position % len(palette)],
                                         "dash": dashes[problems.index(name.split(" | ")[1]) % len(dashes)]})
                        for position, name in enumerate(names)])
    figure.update_layout(template="plotly_white", height=520,
                         xaxis={"title": "trial (-1 = initial)", "tickmode": "linear", "dtick": 1, "tickformat": "d"},
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
