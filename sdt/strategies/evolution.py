"""The `evolution` strategy: DLOPT-style evolutionary search of hyper-parameters and architecture.

As in DLOPT (Camero, Toutouh and Alba), the *problem* is kept apart from the *algorithm*:

- `ArchitectureProblem` knows the network: what a candidate is (a `Genome`: the
  hyper-parameters the network uses plus its `Architecture`), how to draw one at random,
  how to mutate one, how to decode it for the trainer and how to check it is valid. Every
  bound comes from the run's `Domain`: the *current* bounds of its hyper-parameters (the
  initial space plus the l2_factor / unit_c3.. / unit_d2.. templates, the same ranges the
  other strategies start from) and its max_extra_conv_blocks / max_extra_dense_layers
  (0 where the model cannot add such layers).
- `EvolutionStrategy` knows nothing of networks: a population, tournament selection,
  mutation of the winner, steady-state replacement with elitism, a budget of trainings.

Genome and decoding: a genome holds exactly the hyper-parameters its network reads (the
paper's nine, unit_c3.. for each extra conv block, unit_d2.. for each extra dense layer,
l2_factor when L2 is on) and the architecture (extra conv blocks, extra dense layers, L2,
batch normalisation, augmentation). Decoding is therefore the identity, and a told
(params, architecture) pair *is* a genome: the population is rebuilt on resume by replaying
tell() alone.

Mutation operators (`ArchitectureProblem.mutate`):

- hyper-parameter mutation, each active hyper-parameter with probability 1/(their number):
  a numeric one gets a Gaussian step of `MUTATION_SCALE` of its range (measured on a log
  scale for log-uniform dimensions), clipped into its bounds and rounded for integers; a
  categorical one switches to another category drawn uniformly;
- with probability `ARCHITECTURE_MUTATION_RATE`, one architecture operator drawn uniformly
  among those applicable: add / remove the last extra conv block, add / remove the last
  extra dense layer (an added layer's width is drawn uniformly from its dimension), toggle
  L2 (switching it on draws l2_factor), toggle batch normalisation, toggle augmentation;
- switches a user's model does not support (`fixed_features`, from its `supports`) stay off,
  and the domain already gives it no extra layers;
- a child identical to its parent gets one more hyper-parameter mutation (up to 10 tries),
  so no training is spent on a copy.

Algorithm (`EvolutionStrategy`): the first `population_size` trainings are random candidates
(hyper-parameters drawn from the current bounds with their priors, architecture drawn
uniformly). After that each candidate is the mutation of the winner of a tournament of
`tournament_size` members drawn without replacement (lowest objective wins, ties to the
earlier member). Replacement is steady-state: a trained child replaces the worst member when
it is at least as good (ties favour the child, so a flat landscape still drifts), otherwise
it is discarded. Only the worst is ever replaced, so the best candidate is never lost
(elitism). The budget is the run's number of trainings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from sdt.core.errors import ConfigurationError
from sdt.space.domain import Domain, sample_params
from sdt.strategies.base import Option, Strategy, StrategySetup, at_least
from sdt.strategies.mrs import MRSFitness, fitness_of
from sdt.core.records import (
    ARCHITECTURE_FEATURES, COUNT, SWITCH, Architecture, ArchitectureFeature, Decision, Proposal,
    RandomWeightLosses, switches_of_actions,
)
from sdt.space.search_space import CATEGORICAL, INTEGER, LOG_UNIFORM, Dimension, SearchSpace

# The name its decisions carry (sdt/core/records.py Decision).
DECIDER = "evolution"
# Population without a budget; with one, a third of it within these bounds (default_population_size).
DEFAULT_POPULATION_SIZE = 6
MIN_DEFAULT_POPULATION, MAX_DEFAULT_POPULATION = 3, 10
DEFAULT_TOURNAMENT_SIZE = 2
# What ranks candidates (--fitness): the trained objective; DLOPT's training-free MRS fitness alone;
# MRS to screen each training's candidates and the trained objective to select parents.
FITNESS_TRAINED, FITNESS_MRS, FITNESS_SCREENED = "trained", "mrs", "mrs+trained"
FITNESSES = (FITNESS_TRAINED, FITNESS_MRS, FITNESS_SCREENED)
DEFAULT_FITNESS = FITNESS_TRAINED
# Candidates drawn and scored by MRS per training (with an MRS fitness).
DEFAULT_OFFSPRING = 4
# Standard deviation of a numeric mutation, as a fraction of the dimension's (log-)range.
MUTATION_SCALE = 0.2
# Probability that a child also gets one architecture mutation.
ARCHITECTURE_MUTATION_RATE = 0.5
# A child equal to its parent is mutated again up to this many times (rounding or a bound can
# undo a step); a parent whose every gene is fixed can only yield copies.
_COPY_RETRIES = 10

# Names of the architecture operators, in the order they are considered.
# One operator per direction of every architecture feature (sdt/core/records.py): a COUNT
# feature adds or removes one layer, a SWITCH feature toggles.
def _operators(feature: ArchitectureFeature) -> tuple[str, ...]:
    if feature.kind == COUNT:
        return (f"add_{feature.name}", f"remove_{feature.name}")
    return (f"toggle_{feature.name}",)


ARCHITECTURE_OPERATORS = tuple(op for feature in ARCHITECTURE_FEATURES for op in _operators(feature))
ADD_CONV_BLOCK = "add_extra_conv_blocks"
ADD_DENSE_LAYER = "add_extra_dense_layers"
SWITCHES = tuple(feature.name for feature in ARCHITECTURE_FEATURES if feature.kind == SWITCH)
# The on/off features of an Architecture a genome may switch.


@dataclass(frozen=True)
class Genome:
    """One candidate network: the hyper-parameters it reads and its architecture."""

    params: dict[str, Any]
    architecture: Architecture


# ---------------------------------------------------------------------------------------
# The problem: encoding, random candidates, mutation, validity
# ---------------------------------------------------------------------------------------

class ArchitectureProblem:
    """Candidates of the paper's CNN grown within a run's Domain."""

    def __init__(self, domain: Domain, fixed_features: frozenset[str] = frozenset()):
        """`fixed_features`: SWITCH features that stay off (a user's model that does not support them)."""
        unknown = sorted(set(fixed_features) - set(SWITCHES))
        if unknown:
            raise ValueError(f"fixed_features must be among {list(SWITCHES)}, got {unknown}")
        self.domain = domain
        self.fixed_features = frozenset(fixed_features)
        self.space: SearchSpace = domain.hyper_parameters
        self.limits = {feature.name: domain.limit(feature) for feature in ARCHITECTURE_FEATURES}
        needed = [name for feature in ARCHITECTURE_FEATURES
                  for name in ([feature.width_name(i) for i in range(self.limits[feature.name])]
                               if feature.kind == COUNT else feature.parameters)]
        missing = [name for name in needed if name not in self.space]
        if missing:
            raise ValueError(f"the evolution domain lacks the dimensions {missing} its architectures need")
        extra = set(needed)
        # The hyper-parameters every candidate uses, whatever its architecture.
        self.base_names = [name for name in self.space.names if name not in extra]

    # ------------------------------------------------------------------ encoding
    def active_names(self, architecture: Architecture) -> list[str]:
        """The hyper-parameters a network with `architecture` reads, in domain order."""
        names = set(self.base_names) | set(architecture.extra_width_names()) | set(architecture.active_parameters())
        return [name for name in self.space.names if name in names]

    def encode(self, params: dict[str, Any], architecture: Architecture) -> Genome:
        """The genome of a told training (its params restricted to the active ones)."""
        return Genome({name: self.space[name].python_value(params[name])
                       for name in self.active_names(architecture)}, architecture)

    def decode(self, genome: Genome) -> tuple[dict[str, Any], Architecture]:
        """What the trainer receives: the genome's hyper-parameters and architecture."""
        return dict(genome.params), genome.architecture

    def validity_errors(self, genome: Genome) -> list[str]:
        """Why `genome` is not a valid candidate of this problem (empty when it is)."""
        errors = []
        architecture = genome.architecture
        for feature in ARCHITECTURE_FEATURES:
            value = getattr(architecture, feature.name)
            if feature.kind == COUNT and not 0 <= value <= self.limits[feature.name]:
                errors.append(f"{feature.name} must be in [0, {self.limits[feature.name]}], got {value}")
            if feature.name in self.fixed_features and value:
                errors.append(f"{feature.name} must stay off (fixed), got on")
        expected = set(self.active_names(architecture))
        if set(genome.params) != expected:
            errors.append(f"expected hyper-parameters {sorted(expected)}, got {sorted(genome.params)}")
        for name, value in genome.params.items():
            if name in self.space and not self.space[name].contains(value):
                errors.append(f"{name}={value!r} lies outside {self.space[name].describe_bounds()}")
        return errors

    def is_valid(self, genome: Genome) -> bool:
        return not self.validity_errors(genome)

    # ------------------------------------------------------------------ random candidates
    def random_value(self, name: str, rng: np.random.Generator) -> Any:
        return sample_params(SearchSpace((self.space[name],)), 1, rng)[0][name]

    def random_genome(self, rng: np.random.Generator) -> Genome:
        """Hyper-parameters from the current bounds (priors respected), architecture uniform."""
        architecture = Architecture(**{
            feature.name: (int(rng.integers(0, self.limits[feature.name] + 1)) if feature.kind == COUNT
                           else bool(rng.integers(0, 2)) and feature.name not in self.fixed_features)
            for feature in ARCHITECTURE_FEATURES})
        params = sample_params(self.space, 1, rng)[0]
        return self.encode(params, architecture)

    # ------------------------------------------------------------------ mutation
    def mutate_value(self, dimension: Dimension, value: Any, rng: np.random.Generator) -> Any:
        """A new value of one hyper-parameter near `value`, inside the current bounds."""
        if dimension.kind == CATEGORICAL:
            others = [c for c in dimension.categories if c != value]
            return value if not others else others[int(rng.integers(0, len(others)))]
        low, high = float(dimension.low), float(dimension.high)
        if low == high:
            return dimension.python_value(low)
        if dimension.prior == LOG_UNIFORM:
            scaled = math.log(float(value)) + rng.normal(0.0, MUTATION_SCALE * (math.log(high) - math.log(low)))
            new = math.exp(scaled)
        else:
            new = float(value) + rng.normal(0.0, MUTATION_SCALE * (high - low))
        new = min(max(new, low), high)
        if dimension.kind == INTEGER:
            new = min(max(int(round(new)), int(dimension.low)), int(dimension.high))
        return dimension.python_value(new)

    def applicable_operators(self, architecture: Architecture) -> list[str]:
        return [operator for operator in ARCHITECTURE_OPERATORS if self._operated(architecture, operator) is not None]

    def _operated(self, architecture: Architecture, operator: str) -> Architecture | None:
        """`architecture` after `operator`, or None when the operator does not apply to it."""
        verb, _, name = operator.partition("_")
        value = getattr(architecture, name)
        if verb == "add" and value < self.limits[name]:
            return replace(architecture, **{name: value + 1})
        if verb == "remove" and value > 0:
            return replace(architecture, **{name: value - 1})
        if verb == "toggle" and name not in self.fixed_features:
            return replace(architecture, **{name: not value})
        return None

    def mutate_architecture(self, genome: Genome, operator: str, rng: np.random.Generator) -> Genome:
        """Apply one architecture operator; hyper-parameters follow (new widths drawn, old ones dropped)."""
        architecture = genome.architecture
        new_architecture = (self._operated(architecture, operator) if operator in ARCHITECTURE_OPERATORS
                            else None)
        if new_architecture is None:
            raise ValueError(f"operator {operator!r} does not apply to {architecture}")
        params = {}
        for name in self.active_names(new_architecture):
            params[name] = genome.params[name] if name in genome.params else self.random_value(name, rng)
        return Genome(params, new_architecture)

    def mutate_params(self, genome: Genome, rng: np.random.Generator, force: bool = False) -> Genome:
        """Each active hyper-parameter mutates with probability 1/n; `force`: exactly one does."""
        names = [n for n in genome.params if not self.space[n].is_fixed]
        if not names:
            return genome
        params = dict(genome.params)
        if force:
            chosen = [names[int(rng.integers(0, len(names)))]]
        else:
            draws = rng.random(len(names))
            chosen = [name for name, draw in zip(names, draws) if draw < 1.0 / len(names)]
        for name in chosen:
            params[name] = self.mutate_value(self.space[name], params[name], rng)
        return Genome(params, genome.architecture)

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """A child of `genome` (see the module docstring for the operators and their rates)."""
        return self.mutate_with_operators(genome, rng)[0]

    def mutate_with_operators(self, genome: Genome, rng: np.random.Generator) -> tuple[Genome, tuple[str, ...]]:
        """A child of `genome` and what made it: the architecture operator applied, if any (a name
        of ARCHITECTURE_OPERATORS), then `mutate_<name>` for each hyper-parameter whose value changed."""
        child = genome
        operators: list[str] = []
        if rng.random() < ARCHITECTURE_MUTATION_RATE:
            applicable = self.applicable_operators(child.architecture)
            if applicable:      # none when the model's network is fixed
                operator = applicable[int(rng.integers(0, len(applicable)))]
                child = self.mutate_architecture(child, operator, rng)
                operators.append(operator)
        before = child
        child = self.mutate_params(child, rng)
        for _ in range(_COPY_RETRIES):
            if child != genome:
                break
            child = self.mutate_params(child, rng, force=True)
        operators.extend(f"mutate_{name}" for name in child.params
                         if name in before.params and child.params[name] != before.params[name])
        return child, tuple(operators)


# ---------------------------------------------------------------------------------------
# The algorithm: population, tournament, steady-state replacement with elitism
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """A trained candidate in the population; `index` is its position among the told trainings.

    `fitness` is what selection compares (lower is better): the trained objective, or with
    `--fitness mrs` minus the MRS log p."""

    genome: Genome
    objective: float
    index: int
    fitness: float = math.nan

    def __post_init__(self) -> None:
        if math.isnan(self.fitness):
            object.__setattr__(self, "fitness", self.objective)


@dataclass(frozen=True)
class Candidate:
    """One proposal before it is trained: its genome and where it came from."""

    genome: Genome
    parent: int | None = None               # the tournament winner's trial index; None for a random one
    tournament: tuple[int, ...] = ()        # the trial indices of the members drawn
    operators: tuple[str, ...] = ()         # what turned the parent into the child
    mrs: MRSFitness | None = None           # its training-free fitness, when screened


def default_population_size(budget: int | None) -> int:
    """A third of the budget, between MIN_DEFAULT_POPULATION and MAX_DEFAULT_POPULATION, so
    evolution has about two thirds of the trainings (DEFAULT_POPULATION_SIZE without a budget)."""
    if budget is None:
        return DEFAULT_POPULATION_SIZE
    return min(max(round(budget / 3), MIN_DEFAULT_POPULATION), MAX_DEFAULT_POPULATION)


def _check_tournament(value, options) -> str | None:
    population = options["population_size"]
    if population is None:          # derived from the budget when the strategy is built
        return None if value >= 1 else "must be >= 1"
    return None if 1 <= value <= population else f"must be in [1, --population-size ({population})]"


class EvolutionStrategy(Strategy):
    """Steady-state evolutionary algorithm on any problem with random_genome / mutate / encode / decode."""

    searches_architecture = True
    options = (
        Option("population_size", int, None,
               "evolution: candidates kept; the first this many trainings are random",
               lambda value, options: None if value is None or value >= 2 else "must be >= 2",
               shown_default=f"a third of the budget, between {MIN_DEFAULT_POPULATION} and {MAX_DEFAULT_POPULATION}"),
        Option("tournament_size", int, DEFAULT_TOURNAMENT_SIZE,
               "evolution: members drawn per tournament, the best becomes the parent", _check_tournament),
        Option("fitness", str, DEFAULT_FITNESS,
               "evolution: what ranks candidates: trained (the trained objective), mrs (DLOPT's training-free "
               "MRS fitness alone) or mrs+trained (MRS screens each training's candidates, the trained "
               "objective selects parents)",
               lambda value, options: None if value in FITNESSES else f"must be one of {', '.join(FITNESSES)}"),
        Option("offspring", int, DEFAULT_OFFSPRING,
               "evolution, with --fitness mrs or mrs+trained: candidates drawn and scored by MRS for each "
               "training; the one with the best MRS fitness is trained", at_least(1)),
    )

    @classmethod
    def build(cls, setup: StrategySetup) -> "EvolutionStrategy":
        options = cls.check_options(setup.options)
        population = options["population_size"]
        if population is None:
            population = default_population_size(setup.budget)
            if options["tournament_size"] > population:
                raise ConfigurationError(f"--tournament-size must be in [1, the population ({population}, a third "
                                         f"of the budget)], got {options['tournament_size']}; set --population-size")
        if options["fitness"] != FITNESS_TRAINED and setup.random_weight_losses is None:
            raise ConfigurationError(f"--fitness {options['fitness']} needs the built-in trainer's random-weight "
                                     f"losses, which this run does not provide")
        problem = ArchitectureProblem(setup.domain, switches_of_actions(setup.unsupported_actions))
        return cls(problem, population_size=population, tournament_size=options["tournament_size"],
                   budget=setup.budget, fitness=options["fitness"], offspring=options["offspring"],
                   random_weight_losses=setup.random_weight_losses)

    def __init__(self, problem: ArchitectureProblem, population_size: int = DEFAULT_POPULATION_SIZE,
                 tournament_size: int = DEFAULT_TOURNAMENT_SIZE, budget: int | None = None,
                 fitness: str = DEFAULT_FITNESS, offspring: int = DEFAULT_OFFSPRING,
                 random_weight_losses: Callable[[dict[str, Any], Architecture, int], RandomWeightLosses] | None = None):
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if not 1 <= tournament_size <= population_size:
            raise ValueError(f"tournament_size must be in [1, population_size={population_size}], "
                             f"got {tournament_size}")
        if fitness not in FITNESSES:
            raise ValueError(f"fitness must be one of {FITNESSES}, got {fitness!r}")
        if offspring < 1:
            raise ValueError(f"offspring must be >= 1, got {offspring}")
        if fitness != FITNESS_TRAINED and random_weight_losses is None:
            raise ValueError(f"fitness {fitness!r} needs random_weight_losses")
        self.problem = problem
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.budget = budget
        self.fitness = fitness
        self.offspring = offspring
        self.random_weight_losses = random_weight_losses
        self.population: list[Member] = []
        self.told = 0

    @property
    def finished(self) -> bool:
        return self.budget is not None and self.told >= self.budget

    @property
    def best(self) -> Member | None:
        return min(self.population, key=lambda m: (m.fitness, m.index), default=None)

    def tournament(self, rng: np.random.Generator) -> Member:
        """The best of `tournament_size` members drawn without replacement."""
        return self.tournament_draw(rng)[0]

    def tournament_draw(self, rng: np.random.Generator) -> tuple[Member, tuple[Member, ...]]:
        """The tournament's winner and the members drawn."""
        drawn = tuple(self.population[int(i)]
                      for i in rng.choice(len(self.population), size=self.tournament_size, replace=False))
        return min(drawn, key=lambda m: (m.fitness, m.index)), drawn

    def candidate(self, rng: np.random.Generator) -> Candidate:
        """One unscored candidate: random during the initial phase, then a tournament winner's child."""
        if self.told < self.population_size:
            return Candidate(self.problem.random_genome(rng))
        winner, drawn = self.tournament_draw(rng)
        child, operators = self.problem.mutate_with_operators(winner.genome, rng)
        return Candidate(child, winner.index, tuple(m.index for m in drawn), operators)

    def next_genome(self, rng: np.random.Generator) -> Genome:
        return self.next_candidate(rng)[0].genome

    def mrs(self, genome: Genome, seed: int) -> MRSFitness:
        """The MRS fitness of `genome`, its random weights drawn from `seed`."""
        params, architecture = self.problem.decode(genome)
        return fitness_of(self.random_weight_losses(params, architecture, seed))

    def next_candidate(self, rng: np.random.Generator) -> tuple[Candidate, tuple[Candidate, ...]]:
        """The candidate to train and every candidate drawn for it (one, or `offspring` scored by MRS)."""
        if self.fitness == FITNESS_TRAINED:
            chosen = self.candidate(rng)
            return chosen, (chosen,)
        drawn = [self.candidate(rng) for _ in range(self.offspring)]
        scored = tuple(replace(c, mrs=self.mrs(c.genome, int(rng.integers(0, 2**31 - 1)))) for c in drawn)
        best = max(range(len(scored)), key=lambda i: (scored[i].mrs.log_p, -i))
        return scored[best], scored

    def ask(self, state, rng: np.random.Generator, pending=()) -> Proposal:
        """The next candidate and its decision. Facts: `phase` ("random" or "child"), `parent` (the
        tournament winner's trial index), `tournament` (the trial indices drawn), `operators` (what
        made the child: an architecture operator, then `mutate_<name>` per changed hyper-parameter),
        `fitness`; with MRS, `mrs` (the chosen one's log_p, mean, std, threshold, samples, seconds)
        and `screened_log_p` (every drawn candidate's, in draw order)."""
        chosen, drawn = self.next_candidate(rng)
        params, architecture = self.problem.decode(chosen.genome)
        phase = "random" if chosen.parent is None else "child"
        facts: dict[str, Any] = {"phase": phase, "parent": chosen.parent, "tournament": list(chosen.tournament),
                                 "operators": list(chosen.operators), "fitness": self.fitness}
        if phase == "random":
            summary = f"random member {self.told + 1} of the initial population of {self.population_size}"
        else:
            summary = (f"child of trial {chosen.parent} (winner of a tournament of trials "
                       f"{', '.join(map(str, chosen.tournament))}) by {', '.join(chosen.operators) or 'no change'}")
        if chosen.mrs is not None:
            facts["mrs"] = chosen.mrs.to_dict()
            facts["screened_log_p"] = [c.mrs.log_p for c in drawn]
            summary += (f"; best MRS fitness of {len(drawn)} candidates (log p {chosen.mrs.log_p:.3g}, "
                        f"random-weight loss {chosen.mrs.mean:.3f} ± {chosen.mrs.std:.3f})")
        return Proposal(params, architecture, Decision(DECIDER, summary, facts))

    def tell(self, params: dict[str, Any], architecture: Architecture, objective: float,
             decision: Decision | None = None) -> None:
        """With `--fitness mrs` the member's fitness is minus the MRS log p its decision recorded
        (estimated again when the decision lacks it); otherwise the trained objective."""
        if not math.isfinite(objective):
            raise ValueError(f"objective must be finite, got {objective}")
        genome = self.problem.encode(params, architecture)
        fitness = float(objective)
        if self.fitness == FITNESS_MRS:
            recorded = (decision.facts.get("mrs") or {}) if decision is not None else {}
            log_p = recorded.get("log_p")
            if log_p is None:
                log_p = self.mrs(genome, self.told).log_p
            fitness = -float(log_p)
        member = Member(genome, float(objective), self.told, fitness)
        self.told += 1
        if len(self.population) < self.population_size:
            self.population.append(member)
            return
        worst = max(range(len(self.population)),
                    key=lambda i: (self.population[i].fitness, self.population[i].index))
        if member.fitness <= self.population[worst].fitness:
            self.population[worst] = member
