"""The dashboard's data loader and page functions as plain functions, and the launcher's port check."""

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sdt.dashboard import data
from sdt.dashboard.app import create_app, page_for, status_text
from sdt.dashboard.pages import architecture, decisions, hyperparams, metrics, weights

REPO = Path(__file__).resolve().parent.parent


def test_loader_reads_a_real_run(real_run):
    store = data.load_run(real_run)
    assert store["status"] == data.STATUS_OK and not store["stale"]
    assert [t["trial_index"] for t in store["trials"]] == [0, 1, 2]
    assert {e["trial_index"] for e in store["epochs"]} == {0, 1, 2}
    assert store["config"]["objective"] == "val_loss"
    assert {w["trial_index"] for w in store["rule_weights"]} >= {-1}
    assert store["search_spaces"][0]["trial_index"] == -1
    assert store["best_model_path"] and Path(store["best_model_path"]).is_file()
    assert "final" in status_text(store) or "finished" in status_text(store)


def test_metrics_figures_have_points(real_run):
    store = data.load_run(real_run)
    best = data.best_trial(store)["trial_index"]
    assert best == min(store["trials"], key=lambda t: t["objective"])["trial_index"]
    figure = metrics.metrics_figure(store)                  # the best trial: train+val for accuracy and loss
    assert len(figure.data) == 4
    assert all(len(trace.x) == 3 for trace in figure.data)  # 3 epochs
    assert all(trace.name.startswith(f"trial {best} (best) ") for trace in figure.data)
    other = next(t["trial_index"] for t in store["trials"] if t["trial_index"] != best)
    compared = metrics.metrics_figure(store, selected=other)    # plus the selected trial, dashed
    assert len(compared.data) == 8
    assert sum(f"trial {other} " in trace.name and trace.line.dash == "dash" for trace in compared.data) == 4
    # Whole numbers only on the epoch axis.
    assert figure.layout.xaxis.tickformat == "d" and figure.layout.xaxis.dtick == 1
    card = str(metrics.best_trial_card(store))
    assert f"Best trial {best}" in card and "test accuracy" in card and "learning_rate=" in card
    best = metrics.best_so_far_figure(store)
    objectives = [t["objective"] for t in store["trials"]]
    assert list(best.data[0].y) == objectives
    assert list(best.data[1].y) == [min(objectives[:i + 1]) for i in range(3)]
    logged = metrics.best_so_far_figure(store, metrics.LOG)     # val_loss on a log axis
    assert logged.layout.yaxis.type == "log" and list(logged.data[0].y) == objectives
    assert [o["value"] for o in metrics.trial_options(store)] == [0, 1, 2]


def test_best_so_far_is_labelled_by_the_objective():
    store = {"status": "ok", "config": {"objective": "val_accuracy"}, "trials": [
        {"trial_index": 0, "objective": -0.5}, {"trial_index": 1, "objective": -0.7}, {"trial_index": 2, "objective": -0.6}]}
    figure = metrics.best_so_far_figure(store)
    assert list(figure.data[1].y) == [-0.5, -0.7, -0.7]
    assert "-val_accuracy" in figure.layout.yaxis.title.text
    # The log view draws the validation error 1 - accuracy, so a chance-level trial does not flatten the rest.
    logged = metrics.best_so_far_figure(store, metrics.LOG)
    assert list(logged.data[1].y) == pytest.approx([0.5, 0.3, 0.3]) and logged.layout.yaxis.type == "log"
    assert "1 - accuracy" in logged.layout.yaxis.title.text


def test_hyper_parameter_views(real_run):
    store = data.load_run(real_run)
    parallel = hyperparams.parallel_figure(store)
    labels = [d.label for d in parallel.data[0].dimensions]
    assert "log10(learning_rate)" in labels and "batch_size" in labels
    assert all(len(d.values) == 3 for d in parallel.data[0].dimensions)
    # The objective is the last axis and colours every line; categorical values get labelled positions.
    assert labels[-1] == "val_loss"
    assert list(parallel.data[0].line.color) == [t["objective"] for t in store["trials"]]
    optimizer = next(d for d in parallel.data[0].dimensions if d.label == "optimizer")
    assert [optimizer.ticktext[v] for v in optimizer.values] == [t["params"]["optimizer"] for t in store["trials"]]
    columns, rows = hyperparams.params_table(store)
    assert {"optimizer", "activation"} <= {c["id"] for c in columns}  # categorical parameters too
    assert len(rows) == 3
    bounds = hyperparams.bounds_figure(store)
    assert len(bounds.data) == 2 * len(hyperparams.numeric_bounds(store)) > 0
    assert all(len(trace.x) == 4 for trace in bounds.data if trace.name.startswith("unit_c1"))  # -1, 0, 1, 2


def test_bounds_show_the_learning_rate_moved_by_decr_lr(fake_runs):
    store = data.load_run(fake_runs["high_lr"])
    assert "decr_lr" in {a["action"] for a in store["applied_actions"]}
    lr = hyperparams.numeric_bounds(store)["learning_rate"]
    assert lr[0][0] == -1 and lr[-1][2] < lr[0][2]                     # the high bound moved down
    figure = hyperparams.bounds_figure(store)
    high = next(t for t in figure.data if t.name == "learning_rate high")
    assert high.y[-1] < high.y[0]
    axis = figure.layout[high.yaxis.replace("y", "yaxis")]
    assert axis.type == "log"


def test_weights_figure_has_one_trace_per_rule(fake_runs):
    store = data.load_run(fake_runs["overfitting"])
    rules = {(w["action"], w["problem"]) for w in store["rule_weights"]}
    figure = weights.weights_figure(store)
    assert len(figure.data) == len(rules) > 0
    assert {trace.name for trace in figure.data} == {f"{a} | {p}" for a, p in rules}
    assert all(trace.x[0] == -1 for trace in figure.data)             # initial weights first
    # No two rules drawn alike: a colour per rule; one line style per problem.
    assert len({trace.line.color for trace in figure.data}) == len(figure.data)
    for problem in {name.split(" | ")[1] for name in (trace.name for trace in figure.data)}:
        assert len({trace.line.dash for trace in figure.data if trace.name.endswith(f" | {problem}")}) == 1


def test_decisions_show_explanations_actions_and_outcome(fake_runs):
    store = data.load_run(fake_runs["overfitting"])
    timeline = decisions.decision_timeline(store)
    assert [e["trial_index"] for e in timeline] == [0, 1, 2, 3, 4]
    assert timeline[0]["actions"] and timeline[0]["actions"][0]["action"] == "reg_l2"
    assert timeline[0]["has_next"] and not timeline[-1]["has_next"]
    text = str(decisions.render_timeline(store))
    for row in store["diagnoses"]:
        # Each once, without its name repeated in front (the name is already in bold before it).
        shown = row["explanation"].removeprefix(f"{row['problem']}: ")
        assert shown in text and f"{row['problem']}: {shown}" not in text
    for row in store["applied_actions"]:
        shown = row["description"].removeprefix(f"{row['action']}: ")
        assert shown in text and f"{row['action']}: {shown}" not in text
    # The next training judges an applied action; a trial without one gets no verdict.
    for entry in timeline:
        outcome = decisions.outcome_text(entry)
        if not entry["actions"]:
            assert outcome == ""
        elif not entry["has_next"]:
            assert outcome == "next training: not run yet"
        else:
            # The verdict is the rule learning's: the next objective against this trial's.
            following = timeline[entry["trial_index"] + 1]
            verdict = "helped" if following["objective"] < entry["objective"] else "did not help"
            assert outcome.startswith(f"next training (trial {entry['trial_index'] + 1}): objective ")
            assert f"so the action {verdict} (the rule learning's judgement)" in outcome
    # The candidate actions of each diagnosis, with their rule probabilities.
    for row in store["candidate_actions"]:
        assert f"{row['action']} for {row['problem']} ({row['probability']:.2f})" in text
    assert store["candidate_actions"]
    # Why the strategy proposed each trial (issue 19): its summary and numbers, per trial.
    assert [p["trial_index"] for p in store["proposals"]] == [0, 1, 2, 3, 4]
    for entry, proposal in zip(timeline, store["proposals"]):
        assert entry["proposal"] == proposal and proposal["strategy"] == "gaussian process"
        assert proposal["summary"] in text
    assert "Proposed by gaussian process: initial point 1 of" in text


def test_decisions_show_meta_lrs_move_and_probabilities(tmp_path):
    from sdt.run import loop as tuner
    from tests.fake_training import FakeTrainer, fake_factory
    config = tuner.RunConfig(dataset="digits", max_evals=3, epochs=3, seed=5, strategy="meta-lr")
    tuner.run(config, tmp_path / "run", make_train=fake_factory(FakeTrainer()))
    store = data.load_run(tmp_path / "run")
    text = str(decisions.render_timeline(store))
    assert "Proposed by meta-lr: heuristic start" in text
    second = store["proposals"][1]["facts"]
    assert f"move {second['move']} drawn" in text
    assert "probabilities: [" + ", ".join(f"{p:.4g}" for p in second["probabilities"]) + "]" in text
    assert "did not improve" not in text and "improved the best" not in text   # meta-lr applies no action


def test_architecture_summary_reads_the_keras_zip_without_tensorflow(real_run):
    store = data.load_run(real_run)
    options = [o["value"] for o in architecture.model_options(store)]
    assert options == [architecture.BEST, 0, 1, 2]
    assert architecture.default_model(store) == architecture.BEST          # the best model opens first
    without_best = {**store, "best_model_path": None}
    best_trial = min(store["trials"], key=lambda t: t["objective"])["trial_index"]
    assert architecture.default_model(without_best) == best_trial
    rows = architecture.layer_summary(architecture.model_path_for(store, 2))
    types = [r["type"] for r in rows]
    assert types[0] == "InputLayer" and "Conv2D" in types and types[-1] == "Dense"
    assert architecture.model_path_for(store, architecture.BEST) == store["best_model_path"]


def test_missing_or_empty_folder_says_how_to_start_a_run(tmp_path):
    store = data.load_run(tmp_path / "nowhere")
    assert store["status"] == data.STATUS_MISSING
    message = data.no_run_message(store)
    assert "No run found" in message and "python3 main.py --log-folder" in message
    for figure in (metrics.metrics_figure(store), hyperparams.parallel_figure(store),
                   weights.weights_figure(store), metrics.best_so_far_figure(store)):
        assert len(figure.data) == 0 and "python3 main.py" in figure.layout.annotations[0].text
    assert "python3 main.py" in str(decisions.render_timeline(store))


def test_a_run_without_trials_is_reported_as_such(fake_runs, tmp_path):
    # Copy the schema and the initial rows of a run but no trial.
    source = sqlite3.connect(fake_runs["overfitting"] / "run.sqlite")
    folder = tmp_path / "fresh"
    folder.mkdir()
    target = sqlite3.connect(folder / "run.sqlite")
    source.backup(target)
    source.close()
    with target:
        for table in ("trials", "epochs", "diagnoses", "applied_actions"):
            target.execute(f"DELETE FROM {table}")
    target.close()
    store = data.load_run(folder)
    assert store["status"] == data.STATUS_EMPTY
    assert "no completed trial yet" in data.no_run_message(store)
    assert len(weights.weights_figure(store).data) > 0            # initial weights are there already


def test_a_database_being_written_does_not_break_a_refresh(fake_runs, tmp_path):
    good = data.refresh(fake_runs["overfitting"], None)
    # An exclusive write lock in another connection: readers cannot even read the WAL index.
    writer = sqlite3.connect(fake_runs["overfitting"] / "run.sqlite", timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM epochs WHERE trial_index = 0")
        during = data.refresh(fake_runs["overfitting"], good)      # must not raise
        assert during["status"] == data.STATUS_OK and len(during["trials"]) == len(good["trials"])
    finally:
        writer.rollback()
        writer.close()
    # A file that is not a database at all (a half-created one): keeps the last good data, marked stale.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.sqlite").write_bytes(b"not a database" * 100)
    kept = data.refresh(broken, good)
    assert kept["stale"] and kept["error"] and kept["trials"] == good["trials"]
    first = data.refresh(broken, None)
    assert first["stale"] and "not readable yet" in data.no_run_message(first)


def test_the_loader_never_writes(fake_runs):
    path = fake_runs["overfitting"] / "run.sqlite"
    before = path.stat().st_mtime_ns, path.stat().st_size
    data.load_run(fake_runs["overfitting"])
    assert (path.stat().st_mtime_ns, path.stat().st_size) == before


def test_app_builds_and_routes(real_run):
    app = create_app(real_run)
    assert app.layout is not None
    assert page_for("/") is metrics and page_for("/decisions") is decisions and page_for("/nope") is None


def test_launcher_exits_with_one_line_when_the_port_is_taken(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(REPO / "dashboard" / "launcher.py"), "--port", str(port),
                                 "--log-folder", str(tmp_path)], capture_output=True, text=True, timeout=60,
                                cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "already in use" in lines[0]


@pytest.mark.parametrize("arguments, message", [
    (["--port", "99999"], "argument --port: must be a whole number from 1 to 65535, got 99999"),
    (["--port", "-1"], "argument --port: must be a whole number from 1 to 65535, got -1"),
    (["--port", "x"], "argument --port: must be a whole number from 1 to 65535, got 'x'"),
    (["--host", "999.1.1.1"], "--host '999.1.1.1' is not an address of this machine"),
])
def test_launcher_refuses_bad_ports_and_hosts_with_one_line(tmp_path, arguments, message):
    result = subprocess.run([sys.executable, str(REPO / "dashboard" / "launcher.py"), *arguments,
                             "--log-folder", str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_loader_shows_the_stored_records(fake_runs):
    from sdt.run.storage import read_records
    store = data.load_run(fake_runs["high_lr"])
    records = read_records(fake_runs["high_lr"])
    assert [t["trial_index"] for t in store["trials"]] == [r.index for r in records]
    assert [t["objective"] for t in store["trials"]] == [r.objective for r in records]
    assert [(a["trial_index"], a["action"], a["description"]) for a in store["applied_actions"]] == [
        (r.index, a.action, a.description) for r in records if r.outcome for a in r.outcome.applied]
    assert len(store["epochs"]) == sum(len(r.result.history["loss"]) for r in records)
    assert {(d["trial_index"], d["problem"]) for d in store["diagnoses"]} == {
        (r.index, f.name) for r in records for f in r.diagnosis.problems}


def test_a_database_of_an_older_version_is_reported_not_raised(fake_runs, tmp_path):
    source = sqlite3.connect(fake_runs["overfitting"] / "run.sqlite")
    folder = tmp_path / "old"
    folder.mkdir()
    target = sqlite3.connect(folder / "run.sqlite")
    source.backup(target)
    source.close()
    with target:
        target.execute("UPDATE run SET value='1' WHERE key='schema_version'")
    target.close()
    store = data.refresh(folder, None)
    assert store["stale"] and "older version" in store["error"]


def test_netron_serves_the_model_selected_last_even_after_another(real_run):
    """Issue 18, item 1: open trial 2, then trial 0, then trial 2 again: Netron's page must hand the
    browser trial 2's model, not the last other one it served."""
    import urllib.request
    from sdt.dashboard.netron_viewer import NetronViewer
    store = data.load_run(real_run)
    paths = {index: architecture.model_path_for(store, index) for index in (0, 2)}
    assert Path(paths[0]).read_bytes() != Path(paths[2]).read_bytes()
    viewer = NetronViewer()
    try:
        urls = [viewer.url_for(paths[index]) for index in (2, 0, 2)]
        assert urls[0] != urls[1] and urls[0] == urls[2]              # the iframe reloads on each change
        assert len({url.split("/?")[0] for url in urls}) == 1         # one origin: one cookie answer
        page = urllib.request.urlopen(urls[2], timeout=30).read().decode()
        served = page.split('<meta name="file" content="/data/')[1].split('"')[0]
        data_url = urls[2].split("/?")[0] + "/data/" + served
        assert urllib.request.urlopen(data_url, timeout=30).read() == Path(paths[2]).read_bytes()
    finally:
        viewer.stop()


def test_netrons_page_is_served_without_its_calls_to_other_hosts(real_run):
    """Issue 18, item 1: Netron's page would ask ipinfo.io, show a cookie prompt and report to Google
    Analytics; the viewer serves its script without those start-up steps."""
    import urllib.request
    import netron
    from sdt.dashboard.netron_viewer import NETRON_START_UP_STEPS, NetronViewer
    original = (Path(netron.__file__).parent / "browser.js").read_bytes()
    assert all(step in original for step in NETRON_START_UP_STEPS)     # what is removed is there to remove
    store = data.load_run(real_run)
    viewer = NetronViewer()
    try:
        url = viewer.url_for(architecture.model_path_for(store, 0))
        served = urllib.request.urlopen(url.split("?")[0] + "browser.js", timeout=30).read()
        assert not any(step in served for step in NETRON_START_UP_STEPS)
        assert served == original.replace(b"await age();", b"").replace(b"await consent();", b"") \
            .replace(b"await telemetry();", b"").replace(b"await capabilities();", b"")
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert 'src="https://' not in page and "href=\"https://fonts" not in page
    finally:
        viewer.stop()


def test_compare_puts_other_runs_beside_this_one(real_run, fake_runs, tmp_path):
    from sdt.dashboard.pages import compare
    store = data.load_run(real_run)
    text = f"{fake_runs['overfitting']}, {real_run} , {tmp_path / 'nothing'}"
    assert compare.folders_of(text) == [str(fake_runs["overfitting"]), str(real_run), str(tmp_path / "nothing")]
    stores = compare.compared_stores(store, text)
    # This run once (its own folder typed again is not loaded twice), the other run, the missing one.
    assert [s["log_folder"] for s in stores] == [str(real_run), str(fake_runs["overfitting"]), str(tmp_path / "nothing")]
    figure = compare.comparison_figure(stores)
    assert len(figure.data) == 2                                       # the missing folder draws nothing
    other = stores[1]
    xs, ys = compare.best_so_far_accuracy(other)
    accuracies = [t["val_accuracy"] for t in other["trials"]]
    assert list(figure.data[1].y) == ys == [max(accuracies[:i + 1]) for i in range(len(accuracies))]
    rows = [compare.summary_row(s) for s in stores]
    assert rows[0]["trainings"] == 3 and rows[0]["test accuracy"] == round(store["final"]["test_accuracy"], 4)
    assert rows[1]["best val_accuracy"] == round(max(accuracies), 4) and rows[1]["strategy"] == "sdt"
    assert "sdt, edit" in rows[1]["run"]
    assert rows[2]["trainings"] == 0 and "No run found" in rows[2]["note"]


def test_the_launcher_takes_runs_to_compare(tmp_path):
    from sdt.dashboard import launcher
    args = launcher.parse_args(["--log-folder", str(tmp_path), "--compare", "a", "--compare", "b"])
    assert args.compare == ["a", "b"]
    app = create_app(tmp_path, compare=[tmp_path / "a"])
    assert "compare-default" in str(app.layout) and str(tmp_path / "a") in str(app.layout)


def test_bootstraps_stylesheet_is_served_by_the_dashboard_itself(tmp_path):
    """The pages' design (dash-bootstrap-components) needs Bootstrap's CSS: served from the package's
    assets, never from a CDN (no request leaves the machine)."""
    app = create_app(tmp_path)
    client = app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "/assets/bootstrap.min.css" in page and "cdn." not in page
    stylesheet = client.get("/assets/bootstrap.min.css")
    assert stylesheet.status_code == 200 and b"Bootstrap" in stylesheet.get_data()[:200]
