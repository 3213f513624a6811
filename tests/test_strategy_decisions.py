"""What each strategy decided, recorded per trial (issue 19), and evolution's MRS fitness.

Every ask() returns a Proposal whose Decision (sdt/core/records.py) is stored whole with the
trial: meta-lr's move and p1/p2/p3, evolution's parent, tournament, operators and MRS fitness,
the GP's phase and expected improvement.
"""

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from sdt.core.records import Architecture, Decision, RandomWeightLosses
from sdt.run import loop as tuner
from sdt.run.controller import TrialRecord
from sdt.run.storage import RunStorage
from sdt.space.domain import Domain
from sdt.space.search_space import all_potential_dimensions, default_search_space
from sdt.strategies.evolution import ArchitectureProblem, EvolutionStrategy
from sdt.strategies.meta_lr import MOVES, updated_probabilities
from sdt.strategies.mrs import MRS_THRESHOLD_FRACTION, fitness_of, mrs_fitness
from tests.fake_training import FakeTrainer, fake_factory


def domain():
    space = default_search_space()
    return Domain(all_potential_dimensions(space, 2, 2), 2, 2)


def stored_records(folder):
    with RunStorage.open(folder, read_only=True) as storage:
        return storage.records()


# ---------------------------------------------------------------------------------------
# MRS: DLOPT's training-free fitness
# ---------------------------------------------------------------------------------------

def test_mrs_fitness_is_the_log_probability_under_the_fitted_normal():
    fitness = mrs_fitness([2.0, 2.2, 2.4], threshold=1.0, seconds=0.5)
    assert (fitness.mean, fitness.samples, fitness.seconds) == (pytest.approx(2.2), 3, 0.5)
    assert fitness.std == pytest.approx(0.2)
    assert fitness.log_p == pytest.approx(norm.logcdf((1.0 - 2.2) / 0.2))
    # Losses that reach the threshold more often score higher.
    assert mrs_fitness([1.5, 2.0, 2.5], threshold=1.0).log_p > fitness.log_p
    # Far in the tail it stays finite (log p, not p).
    assert math.isfinite(mrs_fitness([5.0, 5.001], threshold=0.1).log_p)
    with pytest.raises(ValueError, match="at least 2 finite"):
        mrs_fitness([2.0, float("nan")], threshold=1.0)


def test_the_classification_threshold_is_a_fraction_of_the_chance_loss():
    sampled = RandomWeightLosses(losses=(2.3, 2.4, 2.2), chance_loss=math.log(10), seconds=1.0)
    assert fitness_of(sampled).threshold == pytest.approx(MRS_THRESHOLD_FRACTION * math.log(10))


def fake_losses(calls):
    """Random-weight losses that fall as the dense layer widens (a landscape MRS can read)."""
    def losses(params, architecture, seed):
        calls.append((dict(params), architecture, seed))
        centre = 3.0 - params["unit_d"] / 512
        spread = np.random.default_rng(seed).normal(0.0, 0.1, size=5)
        return RandomWeightLosses(tuple(centre + spread), math.log(10), 0.01)
    return losses


def test_mrs_screening_trains_the_best_of_the_offspring_and_records_why():
    calls = []
    strategy = EvolutionStrategy(ArchitectureProblem(domain()), population_size=3, tournament_size=2,
                                 fitness="mrs+trained", offspring=4, random_weight_losses=fake_losses(calls))
    for index in range(6):
        proposal = strategy.ask(None, np.random.default_rng([1, index]))
        facts = proposal.decision.facts
        assert len(calls) == 4 * (index + 1)                     # every candidate scored, none trained
        assert len(facts["screened_log_p"]) == 4
        assert facts["mrs"]["log_p"] == max(facts["screened_log_p"])
        screened = calls[-4:]
        best_width = max(params["unit_d"] for params, _, _ in screened)
        # The chosen one is the screened candidate with the widest dense layer (lowest losses),
        # up to the sampling noise of 5 draws.
        assert proposal.params["unit_d"] >= best_width - 60
        strategy.tell(proposal.params, proposal.architecture, 1.0 + index, proposal.decision)
    # Parents are still selected by the trained objective.
    assert strategy.best.objective == 1.0


def test_trained_fitness_never_estimates():
    calls = []
    strategy = EvolutionStrategy(ArchitectureProblem(domain()), population_size=2, tournament_size=2,
                                 random_weight_losses=fake_losses(calls))
    for index in range(5):
        proposal = strategy.ask(None, np.random.default_rng([2, index]))
        assert "mrs" not in proposal.decision.facts
        strategy.tell(proposal.params, proposal.architecture, 1.0, proposal.decision)
    assert calls == []


def test_mrs_fitness_alone_selects_parents_by_the_training_free_fitness():
    calls = []
    strategy = EvolutionStrategy(ArchitectureProblem(domain()), population_size=2, tournament_size=2,
                                 fitness="mrs", offspring=1, random_weight_losses=fake_losses(calls))
    first = strategy.ask(None, np.random.default_rng([3, 0]))
    second = strategy.ask(None, np.random.default_rng([3, 1]))
    better_mrs, worse_mrs = sorted((first, second), key=lambda p: -p.decision.facts["mrs"]["log_p"])
    # The member with the better MRS fitness is told the worse trained objective...
    strategy.tell(better_mrs.params, better_mrs.architecture, 9.0, better_mrs.decision)
    strategy.tell(worse_mrs.params, worse_mrs.architecture, 0.1, worse_mrs.decision)
    # ... and still wins every tournament of the whole population.
    for index in range(2, 6):
        child = strategy.ask(None, np.random.default_rng([3, index]))
        assert child.decision.facts["parent"] == 0 and sorted(child.decision.facts["tournament"]) == [0, 1]


def evolution_config(**options):
    return tuner.RunConfig(dataset="digits", max_evals=8, epochs=3, seed=4, strategy="evolution",
                           strategy_options={"population_size": 3, **options})


def test_a_run_records_parents_operators_and_mrs_and_resume_reuses_the_recorded_fitness(tmp_path, monkeypatch):
    from sdt.neural import network
    calls = []
    monkeypatch.setattr(network, "random_weight_losses",
                        lambda params, architecture, dataset, seed, model_builder=None:
                        fake_losses(calls)(params, architecture, seed))
    reference = tuner.run(evolution_config(fitness="mrs", offspring=3), tmp_path / "a",
                          make_train=fake_factory(FakeTrainer()))
    assert len(calls) == 8 * 3
    records = stored_records(tmp_path / "a")
    for record in records:
        facts = record.decision.facts
        assert record.decision.strategy == "evolution" and facts["fitness"] == "mrs"
        assert len(facts["screened_log_p"]) == 3
        if record.index < 3:
            assert facts["phase"] == "random" and facts["parent"] is None
        else:
            assert facts["phase"] == "child" and facts["parent"] in facts["tournament"]
            assert all(0 <= i < record.index for i in facts["tournament"]) and facts["operators"]
            assert f"child of trial {facts['parent']}" in record.decision.summary

    class Interrupt(Exception):
        pass

    def crash_on_sixth(params, architecture, index):
        if index == 5:
            raise Interrupt()
        return FakeTrainer()(params, architecture, index)
    with pytest.raises(Interrupt):
        tuner.run(evolution_config(fitness="mrs", offspring=3), tmp_path / "b", make_train=fake_factory(crash_on_sixth))
    calls.clear()
    resumed = tuner.run(evolution_config(fitness="mrs", offspring=3), tmp_path / "b", resume=True,
                        make_train=fake_factory(FakeTrainer()))
    # Only the candidates of the two trainings never proposed: the stored ones replay, and the
    # interrupted sixth is trained again as it was proposed (its running row), not proposed again.
    assert len(calls) == 2 * 3
    assert [t["params"] for t in resumed["trials"]] == [t["params"] for t in reference["trials"]]
    assert [r.decision for r in stored_records(tmp_path / "b")] == [r.decision for r in records]


def test_random_weight_losses_of_the_real_network_vary_by_draw_and_repeat_by_seed():
    from sdt.data.datasets import load_dataset
    from sdt.neural.network import random_weight_losses
    from sdt.space.search_space import default_search_space as space
    dataset = load_dataset("digits", seed=0)
    params = {d.name: d.python_value(d.low if d.kind != "categorical" else d.categories[0]) for d in space()}
    first = random_weight_losses(params, Architecture(), dataset, seed=3, samples=4, examples=64)
    again = random_weight_losses(params, Architecture(), dataset, seed=3, samples=4, examples=64)
    other = random_weight_losses(params, Architecture(), dataset, seed=4, samples=4, examples=64)
    assert first.losses == again.losses and first.losses != other.losses
    assert len(set(first.losses)) == 4 and all(math.isfinite(v) and v > 0 for v in first.losses)
    assert first.chance_loss == pytest.approx(math.log(10))
    # Random Glorot weights guess at about chance level, within a factor of it.
    assert 0.3 * first.chance_loss < np.mean(first.losses) < 5 * first.chance_loss


def test_mrs_fitness_needs_the_runs_estimate():
    from sdt.core.errors import ConfigurationError
    from sdt.strategies.registry import make_strategy
    with pytest.raises(ConfigurationError, match="--fitness mrs"):
        make_strategy("evolution", domain(), 2, {"fitness": "mrs"}, budget=8)
    with pytest.raises(ConfigurationError, match="--fitness must be one of trained, mrs, mrs\\+trained"):
        tuner.RunConfig(strategy="evolution", strategy_options={"fitness": "naswot"}).validate()


# ---------------------------------------------------------------------------------------
# meta-lr: the move and p1/p2/p3 of every trial
# ---------------------------------------------------------------------------------------

def test_meta_lr_records_the_move_and_the_probabilities_it_drew_from(tmp_path):
    config = tuner.RunConfig(dataset="digits", max_evals=8, epochs=3, seed=5, strategy="meta-lr",
                             objective="val_loss", strategy_options={"meta_lr_patience": 20})
    tuner.run(config, tmp_path / "run", make_train=fake_factory(FakeTrainer()))
    records = stored_records(tmp_path / "run")
    first = records[0].decision.facts
    assert first["move"] is None and first["probabilities"] == pytest.approx([1 / 3] * 3)
    probabilities = tuple(first["probabilities"])
    for previous, record in zip(records, records[1:]):
        facts = record.decision.facts
        assert record.decision.strategy == "meta-lr" and facts["move"] in MOVES
        # p1/p2/p3 are those the poster's update left after the previous training...
        if previous.index > 0:
            move = MOVES.index(previous.decision.facts["move"])
            if previous.params["learning_rate"] == previous.decision.facts["from_learning_rate"]:
                move = MOVES.index("keep")                 # a blocked move is credited as a keep
            probabilities = updated_probabilities(probabilities, move, facts["previous_success"], 0.1)
        assert facts["probabilities"] == pytest.approx(list(probabilities))
        # ... the draw picked the move they give, and the learning rate followed it.
        p1, p2, _ = facts["probabilities"]
        drawn = 0 if facts["uniform"] < p1 else (1 if facts["uniform"] < p1 + p2 else 2)
        assert MOVES[drawn] == facts["move"]
        assert facts["from_learning_rate"] == previous.params["learning_rate"]
        factor = {"increase": 2.0, "keep": 1.0, "decrease": 0.5}[facts["move"]]
        expected = min(max(previous.params["learning_rate"] * factor, 1e-4), 1e-3)
        assert record.params["learning_rate"] == pytest.approx(expected)
        assert facts["clipped"] == (not math.isclose(previous.params["learning_rate"] * factor, expected))
        assert facts["previous_success"] == (previous.objective <= records[previous.index - 1].objective
                                             if previous.index > 0 else None)
        assert f"move {facts['move']} drawn" in record.decision.summary


# ---------------------------------------------------------------------------------------
# The GP and the record itself
# ---------------------------------------------------------------------------------------

def test_bo_records_its_initial_points_then_the_expected_improvement_it_chose_by(tmp_path):
    config = tuner.RunConfig(dataset="digits", max_evals=5, epochs=3, seed=6, strategy="bo", initial_points=3)
    tuner.run(config, tmp_path / "run", make_train=fake_factory(FakeTrainer()))
    records = stored_records(tmp_path / "run")
    assert [r.decision.facts["phase"] for r in records] == ["initial"] * 3 + ["model"] * 2
    assert [r.decision.facts.get("point") for r in records[:3]] == [1, 2, 3]
    for record in records[3:]:
        facts = record.decision.facts
        assert facts["expected_improvement"] >= 0 and facts["predicted_std"] > 0
        assert facts["best_objective"] == pytest.approx(min(r.objective for r in records[:record.index]))
        assert facts["prior_weight"] == 1.0 and "expected improvement" in record.decision.summary


def test_a_decision_is_persisted_whole():
    decision = Decision("meta-lr", "move increase drawn", {"probabilities": [0.5, 0.25, 0.25], "move": "increase"})
    record = TrialRecord(index=0, params={"learning_rate": 1e-3}, architecture=Architecture(),
                         result=__import__("sdt.core.records", fromlist=["TrainingResult"]).TrainingResult("failed"),
                         objective=1.0, improved=None, decision=decision)
    assert TrialRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    # Records written before decisions existed load with none.
    data = record.to_dict()
    del data["decision"]
    assert TrialRecord.from_dict(data).decision is None
