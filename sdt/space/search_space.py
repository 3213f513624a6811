"""The hyper-parameter search space: named dimensions with current bounds inside a fixed domain.

Every dimension has *current* bounds (what the optimiser may propose now; the tuning actions
move them) and a *domain* (the hard limits fixed when the run starts; no action ever moves a
bound outside it). The optimiser's Gaussian process lives on the domain, which never changes
during a run, so every past trial stays a valid point of it (see sdt/space/domain.py).

This module only describes spaces: reading and validating them (JSON files included), the
default space of the paper (SoftwareX Listing 3) adapted to the data, and the templates of
the dimensions that architecture actions add (l2_factor, unit_c3..., unit_d2...). It knows
nothing of Keras, ProbLog or skopt's optimiser.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from sdt.core.errors import SearchSpaceError
from sdt.core.records import (
    ARCHITECTURE_FEATURES, MAX_EXTRA_CONV_BLOCKS, MAX_EXTRA_DENSE_LAYERS, extra_conv_width_name,
    extra_dense_width_name,
)
from sdt.core.vocabulary import (
    ACTIVATION, BATCH_SIZE, CONV_WIDTHS, DENSE_WIDTH, DROPOUTS, L2_FACTOR, LEARNING_RATE, OPTIMIZER,
)

INTEGER = "integer"
REAL = "real"
CATEGORICAL = "categorical"
KINDS = (INTEGER, REAL, CATEGORICAL)
UNIFORM = "uniform"
LOG_UNIFORM = "log-uniform"
PRIORS = (UNIFORM, LOG_UNIFORM)

# The hyper-parameters the built-in CNN (sdt/neural/network.py build_model) reads.
NETWORK_PARAMETERS = (
    CONV_WIDTHS[0], DROPOUTS[0], CONV_WIDTHS[1], DENSE_WIDTH, DROPOUTS[1],
    LEARNING_RATE, BATCH_SIZE, OPTIMIZER, ACTIVATION,
)


@dataclass(frozen=True)
class Dimension:
    """One named hyper-parameter.

    For integer and real dimensions `low`/`high` are the current bounds (inclusive) and
    `domain_low`/`domain_high` the hard limits; for categorical ones `categories` holds the
    current choices and `domain_categories` every choice the run may ever use.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    prior: str = UNIFORM
    domain_low: float | int | None = None
    domain_high: float | int | None = None
    categories: tuple[str, ...] = ()
    domain_categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Fill the domain with the current bounds when not given, so a dimension that
        # nobody widened has domain == bounds.
        if self.kind == CATEGORICAL:
            if not self.domain_categories:
                object.__setattr__(self, "domain_categories", tuple(self.categories))
        else:
            if self.domain_low is None:
                object.__setattr__(self, "domain_low", self.low)
            if self.domain_high is None:
                object.__setattr__(self, "domain_high", self.high)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise SearchSpaceError naming this dimension if it is inconsistent."""
        where = f"dimension {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SearchSpaceError(f"{where}: the name must be an identifier, got {self.name!r}")
        if self.kind not in KINDS:
            raise SearchSpaceError(f"{where}: unknown type {self.kind!r} (expected one of {', '.join(KINDS)})")
        if self.kind == CATEGORICAL:
            if not self.categories:
                raise SearchSpaceError(f"{where}: categories must not be empty")
            if len(set(self.categories)) != len(self.categories):
                raise SearchSpaceError(f"{where}: categories repeat a value: {list(self.categories)}")
            missing = [c for c in self.categories if c not in self.domain_categories]
            if missing:
                raise SearchSpaceError(f"{where}: categories {missing} are not in the domain {list(self.domain_categories)}")
            return
        for label, value in (("low", self.low), ("high", self.high),
                             ("domain low", self.domain_low), ("domain high", self.domain_high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SearchSpaceError(f"{where}: {label} must be a finite number, got {value!r}")
            if self.kind == INTEGER and int(value) != value:
                raise SearchSpaceError(f"{where}: {label} of an integer dimension must be a whole number, got {value!r}")
        if self.prior not in PRIORS:
            raise SearchSpaceError(f"{where}: unknown prior {self.prior!r} (expected {' or '.join(PRIORS)})")
        if self.low > self.high:
            raise SearchSpaceError(f"{where}: low ({self.low}) must not exceed high ({self.high})")
        if self.kind == REAL and self.domain_low >= self.domain_high:
            raise SearchSpaceError(f"{where}: the domain [{self.domain_low}, {self.domain_high}] is empty")
        if self.prior == LOG_UNIFORM and self.domain_low <= 0:
            raise SearchSpaceError(f"{where}: a log-uniform prior needs positive bounds, got low {self.domain_low}")
        if not (self.domain_low <= self.low and self.high <= self.domain_high):
            raise SearchSpaceError(
                f"{where}: bounds [{self.low}, {self.high}] lie outside the domain "
                f"[{self.domain_low}, {self.domain_high}]")

    # ------------------------------------------------------------------ queries
    @property
    def is_fixed(self) -> bool:
        """True when only one value can be proposed (collapsed bounds or a single category)."""
        if self.kind == CATEGORICAL:
            return len(self.categories) == 1
        return self.low == self.high

    def contains(self, value: Any) -> bool:
        """Whether `value` lies within the current bounds."""
        if self.kind == CATEGORICAL:
            return value in self.categories
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        # A relative tolerance absorbs float noise of log-scale round trips.
        tolerance = 1e-9 * max(1.0, abs(number))
        return self.low - tolerance <= number <= self.high + tolerance

    def in_domain(self, value: Any) -> bool:
        """Whether `value` lies within the domain (the hard limits)."""
        return replace(self, low=self.domain_low, high=self.domain_high,
                       categories=self.domain_categories).contains(value)

    def python_value(self, value: Any) -> int | float | str:
        """`value` as a plain Python int/float/str (skopt hands out numpy scalars)."""
        if self.kind == INTEGER:
            return int(round(float(value)))
        if self.kind == REAL:
            return float(value)
        return str(value)

    def with_bounds(self, low: float | int, high: float | int) -> "Dimension":
        """A copy with new current bounds, clipped into the domain and never inverted."""
        low = min(max(low, self.domain_low), self.domain_high)
        high = min(max(high, self.domain_low), self.domain_high)
        if low > high:
            low, high = high, low
        if self.kind == INTEGER:
            low, high = int(math.ceil(low - 1e-9)), int(math.floor(high + 1e-9))
            if low > high:
                low = high
        return replace(self, low=low, high=high)

    def describe_bounds(self) -> str:
        """A short human text of the current bounds, used in explanations."""
        if self.kind == CATEGORICAL:
            return "{" + ", ".join(self.categories) + "}"
        if self.kind == REAL:
            return f"[{self.low:.4g}, {self.high:.4g}]"
        return f"[{self.low}, {self.high}]"

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        if self.kind == CATEGORICAL:
            data: dict[str, Any] = {"name": self.name, "type": CATEGORICAL, "categories": list(self.categories)}
            if self.domain_categories != self.categories:
                data["domain_categories"] = list(self.domain_categories)
            return data
        data = {"name": self.name, "type": self.kind, "low": self.low, "high": self.high}
        if self.prior != UNIFORM:
            data["prior"] = self.prior
        if (self.domain_low, self.domain_high) != (self.low, self.high):
            data["domain"] = [self.domain_low, self.domain_high]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "dimension") -> "Dimension":
        """Build a dimension from its JSON form; errors name `where` and the entry."""
        if not isinstance(data, dict):
            raise SearchSpaceError(f"{where}: expected an object, got {type(data).__name__}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise SearchSpaceError(f"{where}: missing 'name'")
        where = f"{where} ({name!r})"
        kind = data.get("type")
        if kind not in KINDS:
            raise SearchSpaceError(f"{where}: unknown type {kind!r} (expected one of {', '.join(KINDS)})")
        known = {"name", "type", "low", "high", "prior", "domain", "categories", "domain_categories"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SearchSpaceError(f"{where}: unknown keys {unknown} (allowed: {sorted(known)})")
        try:
            if kind == CATEGORICAL:
                categories = data.get("categories")
                if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                    raise SearchSpaceError("'categories' must be a list of strings")
                domain_categories = data.get("domain_categories") or categories
                return cls(name=name, kind=kind, categories=tuple(categories),
                           domain_categories=tuple(domain_categories))
            if "low" not in data or "high" not in data:
                raise SearchSpaceError("needs 'low' and 'high'")
            domain = data.get("domain")
            if domain is not None and (not isinstance(domain, list) or len(domain) != 2):
                raise SearchSpaceError("'domain' must be a list [low, high]")
            low, high = data["low"], data["high"]
            if kind == INTEGER and all(isinstance(v, float) and v.is_integer() for v in (low, high)):
                low, high = int(low), int(high)
            return cls(name=name, kind=kind, low=low, high=high,
                       prior=data.get("prior", UNIFORM),
                       domain_low=None if domain is None else domain[0],
                       domain_high=None if domain is None else domain[1])
        except SearchSpaceError as err:
            message = str(err)
            prefix = f"dimension {name!r}: "
            if message.startswith(prefix):
                message = message[len(prefix):]
            raise SearchSpaceError(f"{where}: {message}") from None

    def __repr__(self) -> str:
        if self.kind == CATEGORICAL:
            return f"Categorical({list(self.categories)}, name={self.name!r})"
        prior = f", prior={self.prior!r}" if self.prior != UNIFORM else ""
        return f"{self.kind.capitalize()}({self.low}, {self.high}{prior}, name={self.name!r})"


@dataclass(frozen=True)
class SearchSpace:
    """An ordered collection of uniquely named dimensions."""

    dimensions: tuple[Dimension, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [d.name for d in self.dimensions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SearchSpaceError(f"dimension names repeat: {duplicates}")

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def __contains__(self, name: object) -> bool:
        return any(d.name == name for d in self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        for dimension in self.dimensions:
            if dimension.name == name:
                return dimension
        raise KeyError(name)

    def __iter__(self):
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def replace_dimension(self, dimension: Dimension) -> "SearchSpace":
        """A copy where the dimension of the same name is replaced, or appended if new."""
        if dimension.name in self:
            return SearchSpace(tuple(dimension if d.name == dimension.name else d for d in self.dimensions))
        return SearchSpace(self.dimensions + (dimension,))

    def contains(self, params: dict[str, Any]) -> bool:
        """Whether every dimension's value in `params` lies within the current bounds."""
        return all(d.name in params and d.contains(params[d.name]) for d in self.dimensions)

    def python_params(self, values: Sequence[Any]) -> dict[str, Any]:
        """Map a point (one value per dimension, in order) to a dict of plain Python values."""
        if len(values) != len(self.dimensions):
            raise ValueError(f"expected {len(self.dimensions)} values, got {len(values)}")
        return {d.name: d.python_value(v) for d, v in zip(self.dimensions, values)}

    def require(self, names: Iterable[str], source: str = "search space") -> None:
        """Raise SearchSpaceError if any of `names` is missing."""
        missing = [n for n in names if n not in self]
        if missing:
            raise SearchSpaceError(f"{source}: missing dimensions {missing} (the network needs {list(names)})")

    def to_dict(self) -> dict[str, Any]:
        return {"dimensions": [d.to_dict() for d in self.dimensions]}

    @classmethod
    def from_dict(cls, data: Any, source: str = "search space") -> "SearchSpace":
        entries = data.get("dimensions") if isinstance(data, dict) else data
        if not isinstance(entries, list) or not entries:
            raise SearchSpaceError(f"{source}: expected a non-empty list of dimensions "
                                   "(or an object with a 'dimensions' list)")
        dimensions = tuple(Dimension.from_dict(entry, where=f"{source}, dimension #{i + 1}")
                           for i, entry in enumerate(entries))
        try:
            return cls(dimensions)
        except SearchSpaceError as err:
            raise SearchSpaceError(f"{source}: {err}") from None

    def __repr__(self) -> str:
        return "SearchSpace([" + ", ".join(repr(d) for d in self.dimensions) + "])"


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and validate a JSON search-space file; errors name the file and the entry."""
    path = Path(path)
    source = f"search space {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SearchSpaceError(f"{source}: cannot read the file ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise SearchSpaceError(f"{source}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SearchSpaceError(f"{source}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except RecursionError:
        raise SearchSpaceError(f"{source}: the JSON is nested too deeply to be a search space") from None
    return SearchSpace.from_dict(data, source=source)


def default_search_space(training_size: int | None = None) -> SearchSpace:
    """The paper's space (SoftwareX Listing 3, Table 3) adapted to the data.

    Current bounds follow Listing 3. Domains (hard limits the actions may reach):
    learning rate 1e-5..1e-1 as in Table 3, log scale; dropouts may rise up to 0.6 / 0.7;
    widths and batch size keep Listing 3's limits. The batch size never exceeds the
    training-set size. Optimisers are the four of reference.md section 5.
    """
    batch_high = 256 if training_size is None else max(2, min(256, int(training_size)))
    batch_low = min(16, batch_high)
    return SearchSpace((
        Dimension(CONV_WIDTHS[0], INTEGER, 16, 64),
        Dimension(DROPOUTS[0], REAL, 0.002, 0.3, domain_low=0.0, domain_high=0.6),
        Dimension(CONV_WIDTHS[1], INTEGER, 64, 128),
        Dimension(DENSE_WIDTH, INTEGER, 256, 512),
        Dimension(DROPOUTS[1], REAL, 0.03, 0.5, domain_low=0.0, domain_high=0.7),
        Dimension(LEARNING_RATE, REAL, 1e-4, 1e-3, prior=LOG_UNIFORM, domain_low=1e-5, domain_high=1e-1),
        Dimension(BATCH_SIZE, INTEGER, batch_low, batch_high),
        Dimension(OPTIMIZER, CATEGORICAL, categories=("Adam", "Adamax", "RMSprop", "Adadelta")),
        Dimension(ACTIVATION, CATEGORICAL, categories=("relu", "elu", "selu")),
    ))


# ---------------------------------------------------------------------------------------
# Templates of the dimensions that architecture actions add.
# ---------------------------------------------------------------------------------------

def l2_factor_dimension() -> Dimension:
    """The L2 weight-decay factor that `reg_l2` adds: around 1e-4 on a log scale."""
    return Dimension(L2_FACTOR, REAL, 1e-5, 1e-3, prior=LOG_UNIFORM, domain_low=1e-6, domain_high=1e-2)


# The dimension of each hyper-parameter a SWITCH feature reads (ArchitectureFeature.parameters),
# added to the space when the feature's action switches it on.
FEATURE_PARAMETER_DIMENSIONS = {L2_FACTOR: l2_factor_dimension}


def feature_parameter_dimension(name: str) -> Dimension:
    return FEATURE_PARAMETER_DIMENSIONS[name]()


def _width_template(name: str, space: SearchSpace, model_name: str, fallback: tuple[int, int]) -> Dimension:
    """A width dimension copying the bounds of `model_name` (e.g. unit_c2) when the space has it."""
    if model_name in space and space[model_name].kind == INTEGER:
        model = space[model_name]
        return Dimension(name, INTEGER, model.low, model.high,
                         domain_low=model.domain_low, domain_high=model.domain_high)
    return Dimension(name, INTEGER, *fallback)


def extra_conv_width_dimension(block_index: int, space: SearchSpace) -> Dimension:
    """Filters of added conv block `block_index`: the bounds of unit_c2 (the last paper block)."""
    return _width_template(extra_conv_width_name(block_index), space, "unit_c2", (64, 128))


def extra_dense_width_dimension(layer_index: int, space: SearchSpace) -> Dimension:
    """Units of added dense layer `layer_index`: the bounds of unit_d (the paper's dense layer)."""
    return _width_template(extra_dense_width_name(layer_index), space, "unit_d", (256, 512))


def all_potential_dimensions(space: SearchSpace,
                             max_conv_blocks: int = MAX_EXTRA_CONV_BLOCKS,
                             max_dense_layers: int = MAX_EXTRA_DENSE_LAYERS) -> SearchSpace:
    """`space` plus every dimension an action could add, each at its template bounds.

    Dimensions already in `space` are kept as they are. This is the set of hyper-parameters
    the optimiser's domain must cover for a whole run.
    """
    extended = space
    templates = [feature_parameter_dimension(name) for feature in ARCHITECTURE_FEATURES for name in feature.parameters]
    templates += [extra_conv_width_dimension(i, space) for i in range(max_conv_blocks)]
    templates += [extra_dense_width_dimension(i, space) for i in range(max_dense_layers)]
    for template in templates:
        if template.name not in extended:
            extended = extended.replace_dimension(template)
    return extended
