"""Decisions page: per trial, why the strategy proposed it, the diagnosed problems, the actions
applied and whether the next trial improved."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, html

from sdt.dashboard.data import has_trials
from sdt.dashboard.pages.common import notice

PATH = "/decisions"
TITLE = "Decisions"


def decision_timeline(store) -> list[dict]:
    """One entry per trial: problems (+explanations), applied actions (+descriptions), next trial's outcome."""
    if not has_trials(store):
        return []
    trials = store["trials"]
    by_index = {t["trial_index"]: t for t in trials}
    proposals = {p["trial_index"]: p for p in store.get("proposals", [])}
    entries = []
    for trial in trials:
        index = trial["trial_index"]
        following = by_index.get(index + 1)
        entries.append({
            "trial_index": index, "status": trial["status"], "objective": trial["objective"],
            "stop": trial.get("stop_explanation"), "stop_epoch": trial.get("stop_epoch"),
            "proposal": proposals.get(index),
            "problems": [{"problem": d["problem"], "probability": d["probability"], "explanation": d["explanation"]}
                         for d in store.get("diagnoses", []) if d["trial_index"] == index],
            "candidates": [{"action": c["action"], "problem": c["problem"], "probability": c["probability"]}
                           for c in store.get("candidate_actions", []) if c["trial_index"] == index],
            "actions": [{"action": a["action"], "problem": a["problem"], "description": a["description"],
                         "changes": a["changes"]}
                        for a in store.get("applied_actions", []) if a["trial_index"] == index],
            # None: no next trial yet (or its improvement is unknown).
            "next_improved": None if following is None else following.get("improved"),
            "next_objective": None if following is None else following["objective"],
            "has_next": following is not None,
        })
    return entries


def helped(entry: dict) -> bool | None:
    """The rule learning's judgement of the actions applied after this trial: the next training's
    objective is lower than this one's (None without a next training)."""
    if not entry["actions"] or entry.get("next_objective") is None:
        return None
    return entry["next_objective"] < entry["objective"]


def outcome_text(entry: dict) -> str:
    """How the next training judged the action applied (nothing to judge when none was applied)."""
    if not entry["actions"]:
        return ""
    if not entry["has_next"]:
        return "next training: not run yet"
    nxt = entry["trial_index"] + 1
    if entry.get("next_objective") is None:
        return f"next training (trial {nxt}): improvement unknown"
    verdict = "helped" if helped(entry) else "did not help"
    best = "; a new best" if entry["next_improved"] else ""
    return (f"next training (trial {nxt}): objective {entry['next_objective']:.4g} against {entry['objective']:.4g} "
            f"here, so the action {verdict} (the rule learning's judgement){best}")


def _fact_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fact_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fact_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def proposal_block(proposal: dict | None) -> list:
    """Why the strategy proposed the trial: its summary, and its numbers under it."""
    if proposal is None:
        return []
    facts = [html.Li(f"{name}: {_fact_text(value)}") for name, value in proposal["facts"].items()]
    return [html.Div(f"Proposed by {proposal['strategy']}: {proposal['summary']}", className="decision-proposal"),
            html.Details([html.Summary("numbers"), html.Ul(facts)], className="decision-proposal-facts")]


def _change_text(change: dict) -> str:
    return f"{change['target']}: {change['before']} -> {change['after']}"


def render_timeline(store) -> list:
    banner = notice(store)
    if banner is not None:
        return [banner]
    items = []
    for entry in reversed(decision_timeline(store)):           # newest first
        problems = [html.Li([html.B(p["problem"]), f" (p={p['probability']:.2f}): ",
                             html.Span(p["explanation"].removeprefix(f"{p['problem']}: "))])
                    for p in entry["problems"]] or [html.Li("no problem diagnosed")]
        actions = [html.Li([html.B(a["action"]), f" for {a['problem']}: ",
                            html.Span(a["description"].removeprefix(f"{a['action']}: ")),
                            html.Ul([html.Li(_change_text(c)) for c in a["changes"]])])
                   for a in entry["actions"]] or [html.Li("no action applied")]
        candidates = ([html.Div("Candidate actions (rule probability): " + ", ".join(
            f"{c['action']} for {c['problem']} ({c['probability']:.2f})" for c in entry["candidates"]),
            className="decision-candidates")] if entry["candidates"] else [])
        judged = helped(entry)
        colour = "#2e7d32" if judged else ("#c62828" if judged is False else "#555")
        outcome = outcome_text(entry)
        stopped = ([html.Div(["Stopped after epoch ", str(entry["stop_epoch"]), ": ", html.Span(entry["stop"])],
                             className="decision-stop")] if entry.get("stop") else [])
        items.append(dbc.Card(dbc.CardBody([
            html.H5(f"Trial {entry['trial_index']} — {entry['status']}, objective {entry['objective']:.4g}",
                    className="card-title"),
            *proposal_block(entry.get("proposal")),
            *stopped,
            html.Div("Diagnosed problems:"), html.Ul(problems, className="decision-problems"),
            *candidates,
            html.Div("Actions applied (before -> after):"), html.Ul(actions, className="decision-actions"),
            *([html.Div(outcome, className="decision-outcome", style={"color": colour, "fontWeight": "bold"})]
              if outcome else []),
        ]), className="decision-entry mb-3", style={"borderLeft": "4px solid var(--bs-primary)"}))
    return items


def layout():
    return html.Div([html.H2("Decisions"), html.Div(id="decisions-timeline")])


def register_callbacks(app) -> None:
    @app.callback(Output("decisions-timeline", "children"), Input("run-store", "data"))
    def _update(store):
        return render_timeline(store)
