"""Tests of sdt/evolution.py: valid mutants for 28x28 inputs, domain limits, elitism, the loop and resume."""

import json
import re

import numpy as np
import pytest

from sdt.run import loop as tuner
from sdt.core.errors import ConfigurationError
from sdt.strategies.evolution import (
    ADD_CONV_BLOCK, ADD_DENSE_LAYER, ARCHITECTURE_OPERATORS, ArchitectureProblem, EvolutionStrategy, Genome,
)
from sdt.space.domain import Domain
from sdt.core.records import L2_FACTOR, MAX_EXTRA_DENSE_LAYERS, Architecture
from sdt.space.search_space import NETWORK_PARAMETERS, all_potential_dimensions, default_search_space
from sdt.strategies.registry import make_strategy
from tests.fake_training import FakeTrainer, fake_factory


def domain(max_conv_blocks=2, max_dense_layers=MAX_EXTRA_DENSE_LAYERS):
    """A domain like tuner.prepare's, with two extra conv blocks (every input now takes three; two
    keep the number of shapes to build small)."""
    space = default_search_space()
    return Domain(all_potential_dimensions(space, max_conv_blocks, max_dense_layers),
                  max_conv_blocks, max_dense_layers)


def mutants(problem, count, seed=0):
    """`count` genomes from chains of mutations started at random genomes."""
    rng = np.random.default_rng(seed)
    genomes = []
    genome = problem.random_genome(rng)
    for i in range(count):
        genome = problem.random_genome(rng) if i % 25 == 0 else problem.mutate(genome, rng)
        genomes.append(genome)
    return genomes


def assert_valid(problem, genome):
    assert problem.validity_errors(genome) == []
    params, architecture = problem.decode(genome)
    expected = set(NETWORK_PARAMETERS) | set(architecture.extra_width_names())
    assert set(params) == expected | ({L2_FACTOR} if architecture.l2 else set())
    for name, value in params.items():
        assert problem.domain.hyper_parameters[name].contains(value)
        assert problem.domain.hyper_parameters[name].in_domain(value)


# ---------------------------------------------------------------------------------------
# The problem: mutants are valid networks inside the domain
# ---------------------------------------------------------------------------------------

def test_mutants_stay_valid_and_inside_the_domain():
    problem = ArchitectureProblem(domain())
    genomes = mutants(problem, 1000)
    for genome in genomes:
        assert_valid(problem, genome)
    architectures = {g.architecture for g in genomes}
    # The search reaches the limits in every direction.
    assert max(a.extra_conv_blocks for a in architectures) == 2
    assert max(a.extra_dense_layers for a in architectures) == MAX_EXTRA_DENSE_LAYERS
    assert {a.l2 for a in architectures} == {a.batch_norm for a in architectures} == {True, False}
    assert {a.augmentation for a in architectures} == {True, False}
    assert {g.params["optimizer"] for g in genomes} == {"Adam", "Adamax", "RMSprop", "Adadelta"}


def test_decoded_mutants_build_for_28x28_inputs():
    from sdt.neural.network import build_model
    problem = ArchitectureProblem(domain())
    built = set()
    for genome in mutants(problem, 400, seed=1):
        key = (genome.architecture.extra_conv_blocks, genome.architecture.extra_dense_layers,
               genome.architecture.l2, genome.architecture.augmentation)
        if key in built:
            continue
        built.add(key)
        params, architecture = problem.decode(genome)
        model = build_model(params, architecture, (28, 28, 1), 10)
        assert model.output_shape == (None, 10)
        assert len([l for l in model.layers if l.name.startswith("block_extra") and l.name.endswith("_conv1")]) \
            == architecture.extra_conv_blocks
        assert len([l for l in model.layers if re.fullmatch(r"dense_extra\d+", l.name)]) \
            == architecture.extra_dense_layers
        assert bool(model.losses) == architecture.l2
    assert len(built) >= 20        # of the 3 x 4 x 2 x 2 = 48 shapes


def test_a_domain_without_conv_blocks_gets_no_extra_conv_block():
    # A user's model without new_conv_layer: the domain allows no extra conv block.
    problem = ArchitectureProblem(domain(max_conv_blocks=0))
    genomes = mutants(problem, 300)
    assert all(g.architecture.extra_conv_blocks == 0 for g in genomes)
    assert ADD_CONV_BLOCK not in problem.applicable_operators(Architecture())


def test_every_operator_gives_a_valid_child_and_new_layers_get_widths_from_the_domain():
    problem = ArchitectureProblem(domain())
    rng = np.random.default_rng(4)
    genome = problem.random_genome(rng)
    seen = set()
    for _ in range(300):
        operators = problem.applicable_operators(genome.architecture)
        operator = operators[int(rng.integers(0, len(operators)))]
        child = problem.mutate_architecture(genome, operator, rng)
        assert_valid(problem, child)
        # Widths that stay keep their value; a dense layer added gets unit_d2.. within unit_d's bounds.
        for name in set(genome.params) & set(child.params):
            assert child.params[name] == genome.params[name]
        if operator == ADD_DENSE_LAYER:
            new = f"unit_d{child.architecture.extra_dense_layers + 1}"
            assert 256 <= child.params[new] <= 512
        seen.add(operator)
        genome = child
    assert seen == set(ARCHITECTURE_OPERATORS)


def test_a_mutant_differs_from_its_parent():
    problem = ArchitectureProblem(domain())
    rng = np.random.default_rng(7)
    parent = problem.random_genome(rng)
    assert all(problem.mutate(parent, rng) != parent for _ in range(200))


def test_an_operator_that_does_not_apply_is_refused():
    problem = ArchitectureProblem(domain(max_conv_blocks=0))
    genome = problem.random_genome(np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not apply"):
        problem.mutate_architecture(genome, ADD_CONV_BLOCK, np.random.default_rng(0))


def test_a_domain_without_the_width_dimensions_is_refused():
    # The baselines' domain (initial space alone) has no unit_c3../unit_d2../l2_factor.
    with pytest.raises(ValueError, match="lacks the dimensions"):
        ArchitectureProblem(Domain(default_search_space(), 0, 3))


# ---------------------------------------------------------------------------------------
# The algorithm: tournament, replacement, elitism (scripted objectives)
# ---------------------------------------------------------------------------------------

def told(strategy, objectives, seed=0):
    """Tell `objectives` for candidates the strategy asked for itself; returns the genomes."""
    genomes = []
    for i, objective in enumerate(objectives):
        proposal = strategy.ask(None, np.random.default_rng([seed, i]))
        params, architecture = proposal.params, proposal.architecture
        strategy.tell(params, architecture, objective)
        genomes.append(strategy.problem.encode(params, architecture))
    return genomes


def test_replacement_keeps_the_best_and_discards_worse_children():
    strategy = EvolutionStrategy(ArchitectureProblem(domain()), population_size=3, tournament_size=2)
    script = [5.0, 1.0, 3.0,        # the random initial population
              10.0,                 # worse than the worst (5): discarded
              4.0,                  # replaces 5
              0.5,                  # replaces 4, new best
              3.0,                  # ties the worst (3, index 2): replaces it
              9.0]                  # discarded
    expected = [[5.0], [5.0, 1.0], [5.0, 1.0, 3.0], [5.0, 1.0, 3.0], [4.0, 1.0, 3.0],
                [0.5, 1.0, 3.0], [0.5, 1.0, 3.0], [0.5, 1.0, 3.0]]
    best_so_far = []
    for i, objective in enumerate(script):
        told(strategy, [objective], seed=i)
        assert [m.objective for m in strategy.population] == expected[i]
        best_so_far.append(min(script[:i + 1]))
        assert strategy.best.objective == best_so_far[-1]           # elitism: the best is never lost
    assert [m.index for m in strategy.population] == [5, 1, 6]


def test_elitism_under_random_objectives():
    strategy = EvolutionStrategy(ArchitectureProblem(domain()), population_size=4, tournament_size=3)
    objectives = list(np.random.default_rng(3).uniform(0, 10, 60))
    for i, objective in enumerate(objectives):
        told(strategy, [objective], seed=i)
        assert strategy.best.objective == min(objectives[:i + 1])
        assert len(strategy.population) == min(i + 1, 4)


def test_tournament_winner_is_the_best_of_the_drawn_members():
    strategy = EvolutionStrategy(ArchitectureProblem(domain()), population_size=4, tournament_size=4)
    told(strategy, [3.0, 1.0, 2.0, 4.0])
    # A tournament of the whole population always picks the best...
    assert all(strategy.tournament(np.random.default_rng(i)).objective == 1.0 for i in range(30))
    # ... a tournament of two never picks the worst, and picks each other member sometimes.
    strategy.tournament_size = 2
    winners = {strategy.tournament(np.random.default_rng(i)).objective for i in range(200)}
    assert winners == {1.0, 2.0, 3.0}


def test_children_come_from_the_population_after_the_initial_phase():
    problem = ArchitectureProblem(domain())
    strategy = EvolutionStrategy(problem, population_size=3, tournament_size=3)
    told(strategy, [2.0, 1.0, 3.0])
    best = strategy.best.genome
    # With the whole population in the tournament every child is a mutant of the best: at most
    # one architecture operator away, and most shared hyper-parameters unchanged.
    for i in range(20):
        proposal = strategy.ask(None, np.random.default_rng([9, i]))
        params, architecture = proposal.params, proposal.architecture
        child = problem.encode(params, architecture)
        assert child != best
        a, b = child.architecture, best.architecture
        assert (abs(a.extra_conv_blocks - b.extra_conv_blocks) + abs(a.extra_dense_layers - b.extra_dense_layers)
                + (a.l2 != b.l2) + (a.batch_norm != b.batch_norm) + (a.augmentation != b.augmentation)) <= 1
        changed = [name for name in NETWORK_PARAMETERS if child.params[name] != best.params[name]]
        assert len(changed) <= 4


@pytest.mark.parametrize("options", [dict(population_size=1), dict(population_size=3, tournament_size=4),
                                     dict(tournament_size=0)])
def test_invalid_algorithm_options_are_refused(options):
    # A population of one has nothing to select; a tournament larger than the population cannot be drawn.
    with pytest.raises(ValueError):
        EvolutionStrategy(ArchitectureProblem(domain()), **options)


def test_run_config_refuses_a_tournament_larger_than_the_population():
    with pytest.raises(ConfigurationError, match=r"--tournament-size must be in \[1, --population-size \(3\)\]"):
        tuner.RunConfig(strategy="evolution", strategy_options=dict(population_size=3, tournament_size=5)).validate()
    with pytest.raises(ConfigurationError, match="--population-size must be >= 2"):
        tuner.RunConfig(strategy="evolution", strategy_options=dict(population_size=1, tournament_size=1)).validate()


def test_registry_builds_it_with_options():
    strategy = make_strategy("evolution", domain(), 4, {"population_size": 5, "tournament_size": 3}, budget=9)
    assert (strategy.population_size, strategy.tournament_size, strategy.budget) == (5, 3, 9)


# ---------------------------------------------------------------------------------------
# Through the loop (fake trainer)
# ---------------------------------------------------------------------------------------

def config(**changes):
    base = dict(dataset="digits", max_evals=10, epochs=3, seed=3, strategy="evolution")
    options = {"population_size": changes.pop("population_size", 4)}
    if "tournament_size" in changes:
        options["tournament_size"] = changes.pop("tournament_size")
    base.update(changes)
    return tuner.RunConfig(**base, strategy_options=options)


def run(folder, trainer, **changes):
    return tuner.run(config(**changes), folder, make_train=fake_factory(trainer))


def test_runs_end_to_end_training_its_own_architectures(tmp_path):
    trainer = FakeTrainer()
    summary = run(tmp_path / "run", trainer)
    assert summary["strategy"] == "evolution" and len(summary["trials"]) == len(trainer.calls) == 10
    context = tuner.prepare(config(), tmp_path / "run")
    problem = ArchitectureProblem(context.domain)
    # 8x8 digits take every extra conv block too: added blocks do not pool (issue 13)
    assert context.domain.max_extra_conv_blocks == 3 and context.domain.max_extra_dense_layers == 3
    for params, architecture, _ in trainer.calls:
        assert_valid(problem, Genome(params, architecture))
    assert len({architecture for _, architecture, _ in trainer.calls}) > 1
    assert all(t["actions"] == [] for t in summary["trials"])          # the symbolic block only explains
    assert [t["architecture"] for t in summary["trials"]] == [a.to_dict() for _, a, _ in trainer.calls]


class Interrupt(Exception):
    pass


def test_resume_after_interruption_continues_identically(tmp_path):
    run(tmp_path / "a", FakeTrainer())

    def crash_on_sixth(params, architecture, index):
        if index == 5:                # after the initial population of 4
            raise Interrupt()
        return FakeTrainer()(params, architecture, index)
    with pytest.raises(Interrupt):
        run(tmp_path / "b", crash_on_sixth)

    resumed = FakeTrainer()
    summary = tuner.run(config(), tmp_path / "b", resume=True, make_train=fake_factory(resumed))
    assert [c[2] for c in resumed.calls] == [5, 6, 7, 8, 9]
    reference = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert [t["params"] for t in summary["trials"]] == [t["params"] for t in reference["trials"]]
    assert [t["architecture"] for t in summary["trials"]] == [t["architecture"] for t in reference["trials"]]


@pytest.mark.slow
def test_a_real_tiny_run(tmp_path):
    summary = tuner.run(config(max_evals=2, epochs=1), tmp_path / "run")
    assert [t["status"] for t in summary["trials"]] == ["completed", "completed"]
    assert summary["best"]["test_accuracy"] is not None
    assert (tmp_path / "run" / "best_model.keras").exists()


def test_switches_a_model_does_not_support_stay_off():
    # A user's model without reg_l2 / add_batch_norm / data_augmentation in its `supports`: no L2, BN
    # or augmentation.
    strategy = make_strategy("evolution", domain(0, 0), 4, unsupported_actions=frozenset(
        {"reg_l2", "add_batch_norm", "data_augmentation", "new_fc_layer", "new_conv_layer"}))
    problem = strategy.problem
    assert problem.fixed_features == {"l2", "batch_norm", "augmentation"}
    assert problem.applicable_operators(Architecture()) == []
    for genome in mutants(problem, 200):
        assert genome.architecture == Architecture() and problem.is_valid(genome)


# ---------------------------------------------------------------------------------------
# Mutation: log-scale steps, the rates, the operators recorded (issue 19)
# ---------------------------------------------------------------------------------------

def test_a_log_uniform_dimension_mutates_by_steps_on_a_log_scale():
    from sdt.strategies.evolution import MUTATION_SCALE
    problem = ArchitectureProblem(domain())
    dimension = problem.space["learning_rate"]                 # log-uniform, [1e-4, 1e-3]
    low, high = float(dimension.low), float(dimension.high)
    start = 1.5e-4
    rng = np.random.default_rng(11)
    ratios = np.log([problem.mutate_value(dimension, start, rng) / start for _ in range(4000)])
    sigma = MUTATION_SCALE * np.log(high / low)                # one standard deviation, in log units
    # Upward, one sigma on the log scale is exceeded by P(z > 1) = 0.159 of the steps (a linear
    # step of MUTATION_SCALE of the range from 1.5e-4 would exceed it 0.31 of the time).
    assert abs(np.mean(ratios > sigma) - 0.159) < 0.03
    # Downward the bound clips: P(z < ln(1e-4 / 1.5e-4) / sigma) = 0.19 land on it (linear: 0.39).
    assert abs(np.mean(np.isclose(ratios, np.log(low / start))) - 0.19) < 0.03


def test_each_hyper_parameter_mutates_with_probability_one_over_their_number():
    problem = ArchitectureProblem(domain())
    rng = np.random.default_rng(5)
    parent = problem.random_genome(rng)
    names = [n for n in parent.params if not problem.space[n].is_fixed]
    draws = 6000
    changed = dict.fromkeys(names, 0)
    for _ in range(draws):
        child = problem.mutate_params(parent, rng)
        for name in names:
            changed[name] += child.params[name] != parent.params[name]
    expected = draws / len(names)
    # Binomial sd is about 0.3 of 10 % of the expectation; an integer step that rounds back to the
    # same value is a mutation that changed nothing (a few per cent for the narrowest ranges).
    for name, count in changed.items():
        assert 0.8 * expected < count < 1.15 * expected, (name, count, expected)


def test_about_half_of_the_children_get_an_architecture_operator_and_the_operators_say_what_changed():
    from sdt.strategies.evolution import ARCHITECTURE_MUTATION_RATE
    problem = ArchitectureProblem(domain())
    rng = np.random.default_rng(8)
    parent = problem.random_genome(rng)
    architecture_changes = 0
    draws = 3000
    for _ in range(draws):
        child, operators = problem.mutate_with_operators(parent, rng)
        architectural = [op for op in operators if op in ARCHITECTURE_OPERATORS]
        assert len(architectural) <= 1
        architecture_changes += bool(architectural)
        assert (child.architecture != parent.architecture) == bool(architectural)
        kept = set(child.params) & set(parent.params)
        mutated = {op.removeprefix("mutate_") for op in operators if op.startswith("mutate_")}
        assert mutated & kept == {name for name in kept if child.params[name] != parent.params[name]}
        assert mutated - kept <= set(child.params) - set(parent.params)     # a new layer's width, mutated too
    assert abs(architecture_changes / draws - ARCHITECTURE_MUTATION_RATE) < 0.03
