"""The dashboard's app frame: navigation, the run store filled by one loader callback, the page container.

Each page module (dashboard/pages/*.py) has `layout()` and `register_callbacks(app)`; the data shaping
is in plain functions of those modules. The log folder is passed to `create_app`, not kept in globals.
"""

from __future__ import annotations

from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from sdt.core.vocabulary import TrialStatus
from sdt.dashboard import data
from sdt.dashboard.pages import architecture, compare, decisions, hyperparams, metrics, weights

PAGES = (metrics, hyperparams, weights, decisions, architecture, compare)
REFRESH_MS = 3000


def status_text(store) -> str:
    if not store:
        return "loading..."
    running = store.get("running")
    training = (f", training trial {running['trial_index']} (epoch {running['epoch']}/{running['epochs']})"
                if running else "")
    # Trials dispatched and not finished (several with --workers): those without live epochs here.
    others = [t for t in store.get("in_progress") or () if not running or t["trial_index"] != running["trial_index"]]
    if others:
        training += ", in progress: " + ", ".join(f"trial {t['trial_index']} on {t['worker'] or 'a worker'}"
                                                  for t in others)
    if store.get("status") != data.STATUS_OK:
        return data.no_run_message(store) + training
    trials = store["trials"]
    pruned = sum(1 for t in trials if t.get("status") == TrialStatus.PRUNED)
    text = (f"log folder {store['log_folder']}: {len(trials)} trial(s)"
            f"{f' ({pruned} pruned)' if pruned else ''}, objective {data.objective_name(store)}")
    text += training
    if store.get("final"):
        text += f", finished (best trial {store['final'].get('index')})"
    if store.get("stale"):
        text += f" — showing the last good data ({store.get('error')})"
    return text


def page_for(pathname: str | None):
    for page in PAGES:
        if page.PATH == (pathname or "/").rstrip("/") or (page.PATH == "/" and pathname in (None, "", "/")):
            return page
    return None


def create_app(log_folder, viewer=None, refresh_ms: int = REFRESH_MS, compare=()) -> dash.Dash:
    """The Dash app for the run in `log_folder`; `viewer` serves models for Netron (None: layer summary
    only); `compare`: other runs' log folders the Compare page opens with."""
    folder = str(Path(log_folder))
    # Bootstrap's stylesheet is served from sdt/dashboard/assets/ (Dash loads every .css there), not a
    # CDN: the dashboard requests nothing from other hosts.
    app = dash.Dash(__name__, title="Symbolic DNN-Tuner", suppress_callback_exceptions=True)
    nav = dbc.NavbarSimple(
        [dbc.NavItem(dbc.NavLink(page.TITLE, href=page.PATH, active="exact",
                                 id=f"nav-{page.__name__.rsplit('.', 1)[-1]}")) for page in PAGES],
        brand="Symbolic DNN-Tuner", brand_href="/", color="primary", dark=True, fluid=True, className="mb-2")
    app.layout = html.Div([
        dcc.Location(id="url"),
        nav,
        dbc.Container([
            html.Div(id="run-status", className="text-muted small mb-3"),
            dcc.Store(id="run-store"),
            dcc.Store(id="compare-default", data=[str(Path(folder)) for folder in compare]),
            dcc.Interval(id="refresh", interval=refresh_ms),
            html.Div(id="page"),
        ], fluid=True, className="px-4 pb-4"),
    ])

    @app.callback(Output("run-store", "data"), Input("refresh", "n_intervals"), State("run-store", "data"))
    def _load(_, previous):
        fresh = data.refresh(folder, previous)
        return dash.no_update if data.same_data(fresh, previous) else fresh

    @app.callback(Output("run-status", "children"), Input("run-store", "data"))
    def _status(store):
        return status_text(store)

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def _route(pathname):
        page = page_for(pathname)
        return page.layout() if page else html.Div(f"No page at {pathname}")

    for page in PAGES:
        if page is architecture:
            page.register_callbacks(app, viewer)
        else:
            page.register_callbacks(app)
    return app
