"""Architecture page: the selected trial's saved model in Netron, plus a plain layer summary.

The layer summary reads the .keras zip's config.json directly: TensorFlow is never imported.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from dash import Input, Output, State, dash_table, dcc, html

from sdt.dashboard.data import has_trials
from sdt.dashboard.pages.common import TABLE_STYLE, notice

PATH = "/architecture"
TITLE = "Architecture"
BEST = "best"


def model_options(store) -> list[dict]:
    if not has_trials(store):
        return []
    options = [{"label": "best model (best_model.keras)", "value": BEST}] if store.get("best_model_path") else []
    options += [{"label": f"trial {t['trial_index']}", "value": t["trial_index"]}
                for t in store["trials"] if t.get("model_path")]
    return options


def default_model(store):
    """The best model when the run has one (best_model.keras), else the best trial with a saved
    model (lowest objective), else None."""
    options = model_options(store)
    values = [o["value"] for o in options]
    if BEST in values:
        return BEST
    saved = [t for t in (store or {}).get("trials", []) if t["trial_index"] in values]
    return min(saved, key=lambda t: (t["objective"], t["trial_index"]))["trial_index"] if saved else None


def model_path_for(store, choice) -> str | None:
    """The model file for a choice (a trial index or 'best'), None when there is none on disk."""
    if not has_trials(store) or choice is None:
        return None
    if choice == BEST:
        path = store.get("best_model_path")
    else:
        path = next((t.get("model_path") for t in store["trials"] if t["trial_index"] == choice), None)
    return path if path and Path(path).is_file() else None


def _shape(value):
    return "x".join("?" if v is None else str(v) for v in value) if isinstance(value, (list, tuple)) else value


def layer_summary(path: str | Path) -> list[dict]:
    """One row per layer of a .keras file: name, type and its main settings."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    rows = []
    for layer in config.get("config", {}).get("layers", []):
        settings = layer.get("config", {})
        details = []
        for key in ("filters", "units", "kernel_size", "pool_size", "rate", "activation", "batch_shape"):
            if settings.get(key) is not None:
                details.append(f"{key}={_shape(settings[key])}")
        if settings.get("kernel_regularizer"):
            regulariser = settings["kernel_regularizer"]
            details.append(f"kernel_regularizer={regulariser.get('class_name')}{regulariser.get('config', '')}")
        rows.append({"name": settings.get("name", ""), "type": layer.get("class_name", ""),
                     "settings": ", ".join(details)})
    return rows


def layout():
    return html.Div([
        html.H2("Architecture"),
        html.Div(["Model: ", dcc.Dropdown(id="arch-model", clearable=False,
                                          style={"width": "320px", "display": "inline-block"})]),
        html.Div(id="arch-notice"),
        html.Iframe(id="arch-netron", style={"width": "100%", "height": "600px", "border": "1px solid #ccc"}),
        html.H3("Layer summary"),
        dash_table.DataTable(id="arch-layers", columns=[{"name": c, "id": c} for c in ("name", "type", "settings")],
                             **TABLE_STYLE),
    ])


def register_callbacks(app, viewer) -> None:
    """`viewer.url_for(path)` serves a model file with Netron and returns its URL (None if it cannot)."""

    @app.callback(Output("arch-model", "options"), Output("arch-model", "value"),
                  Input("run-store", "data"), State("arch-model", "value"))
    def _options(store, current):
        options = model_options(store)
        values = [o["value"] for o in options]
        return options, current if current in values else default_model(store)

    @app.callback(Output("arch-netron", "src"), Output("arch-layers", "data"), Output("arch-notice", "children"),
                  Input("arch-model", "value"), Input("run-store", "data"))
    def _show(choice, store):
        banner = notice(store)
        if banner is not None:
            return None, [], banner
        path = model_path_for(store, choice)
        if path is None:
            return None, [], html.Div("No saved model for this choice (a failed trial keeps none).")
        try:
            rows = layer_summary(path)
        except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            rows, message = [], f"cannot read {path}: {err}"
        else:
            message = None
        url = viewer.url_for(path) if viewer is not None else None
        if url is None:
            message = (message + "; " if message else "") + "Netron is not available: see the layer summary."
        return url, rows, html.Div(message) if message else None
