"""Helpers shared by the pages."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import html

from sdt.dashboard.data import has_trials, no_run_message


def empty_figure(message: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(template="plotly_white", xaxis={"visible": False}, yaxis={"visible": False},
                         annotations=[{"text": message, "showarrow": False, "xref": "paper", "yref": "paper",
                                       "x": 0.5, "y": 0.5}], height=300)
    return figure


def notice(store) -> html.Div | None:
    """The 'no run yet' banner, or None when the store has trials."""
    if has_trials(store):
        return None
    return dbc.Alert(no_run_message(store), color="warning", className="no-run")


# The look of every DataTable, matching Bootstrap's tables.
TABLE_STYLE = {
    "style_table": {"overflowX": "auto"},
    "style_cell": {"fontFamily": "var(--bs-body-font-family)", "fontSize": "0.875rem", "padding": "0.3rem 0.5rem",
                   "textAlign": "left"},
    "style_header": {"fontWeight": "600", "backgroundColor": "var(--bs-light)"},
}
