"""Optuna TPE as a strategy: same trainer and outputs, initial space only, deterministic resume."""

import json
import os

import pytest

pytest.importorskip("optuna")

from sdt.run import loop as tuner  # noqa: E402
from sdt.strategies.tpe import optuna_distributions  # noqa: E402
from sdt.core.records import Architecture  # noqa: E402
from sdt.space.search_space import default_search_space  # noqa: E402
from tests.fake_training import FakeTrainer, fake_factory  # noqa: E402


def config(**changes):
    return tuner.RunConfig(**{**dict(dataset="digits", max_evals=6, epochs=3, seed=2, initial_points=2,
                                     strategy="tpe"), **changes})


def quiet():
    return open(os.devnull, "w")


def test_distributions_follow_the_space():
    distributions = optuna_distributions(default_search_space())
    assert distributions["learning_rate"].log and distributions["learning_rate"].low == 1e-4
    assert distributions["unit_c1"].low == 16 and distributions["unit_c1"].high == 64
    assert list(distributions["optimizer"].choices) == ["Adam", "Adamax", "RMSprop", "Adadelta"]


def test_tpe_runs_on_the_same_trainer_within_the_initial_space(tmp_path):
    trainer = FakeTrainer()
    summary = tuner.run(config(), tmp_path / "run", make_train=fake_factory(trainer))
    assert summary["strategy"] == "tpe" and len(trainer.calls) == 6
    space = default_search_space(training_size=1293)
    for params, architecture, _ in trainer.calls:
        assert architecture == Architecture() and space.contains(params)
    assert all(t["actions"] == [] for t in summary["trials"])


class Crash(Exception):
    pass


def test_tpe_resumes_like_an_uninterrupted_run(tmp_path):
    reference = tuner.run(config(), tmp_path / "a", make_train=fake_factory(FakeTrainer()))

    def crash_at_four(params, architecture, index):
        if index == 4:
            raise Crash()
        return FakeTrainer()(params, architecture, index)
    with pytest.raises(Crash):
        tuner.run(config(), tmp_path / "b", make_train=fake_factory(crash_at_four))
    resumed = tuner.run(config(), tmp_path / "b", resume=True, make_train=fake_factory(FakeTrainer()))
    assert [t["params"] for t in resumed["trials"]] == [t["params"] for t in reference["trials"]]
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["strategy"] == "tpe"


def test_tpe_keeps_several_trials_running_and_takes_their_results_in_any_order():
    import numpy as np
    from sdt.space.domain import Domain
    from sdt.strategies.tpe import OptunaTPEStrategy

    class State:
        space, architecture, preferences = default_search_space(), Architecture(), ()
    strategy = OptunaTPEStrategy(Domain(default_search_space(), 0, 0), initial_points=2)
    first = strategy.ask(State, np.random.default_rng(0))
    second = strategy.ask(State, np.random.default_rng(1), [(first.params, first.architecture)])
    assert second.decision.facts["told"] == 0 and first.params != second.params
    # The second finishes first: each result goes to its own Optuna trial.
    strategy.tell(second.params, second.architecture, 0.3)
    strategy.tell(first.params, first.architecture, 0.7)
    values = {tuple(sorted(t.params.items())): t.value for t in strategy.study.trials}
    assert values[tuple(sorted(first.params.items()))] == 0.7
    assert values[tuple(sorted(second.params.items()))] == 0.3
    assert len(strategy.study.trials) == 2 and strategy._asked == []
