"""MRS, DLOPT's training-free fitness, adapted to classification.

DLOPT (Camero, Toutouh and Alba) ranks candidate networks before any training with its "MAE
random sampling": the network's weights are drawn at random many times, the error of each draw
is measured, a normal distribution is fitted to those errors, and the candidate's fitness is
log p, the log-probability under that normal of an error at most a threshold (their listing
reports `log_p`, `p`, `mean`, `std` and the samples). A network whose random weights already
reach low errors now and then is taken to be easier to train well.

For a classifier the error is the cross-entropy of the untrained network on a fixed set of
training examples (the neural block's `random_weight_losses`), and the threshold is a fraction
of the chance loss ln K, the loss of a uniform guess: `MRS_THRESHOLD_FRACTION`. Higher log p is
better. What this fitness is worth for the paper's CNN (its rank correlation with the trained
accuracy, and its cost) is measured, not assumed: docs/benchmarks.md, `benchmark.py --mrs`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from scipy.stats import norm

from sdt.core.records import RandomWeightLosses

# The threshold a random draw's loss is compared with, as a fraction of the chance loss ln K: a
# loss half of chance level is one a trained network reaches within its first epoch on the
# project's datasets, and one random weights almost never reach.
MRS_THRESHOLD_FRACTION = 0.5
# A spread below this is taken as this (a network whose output ignores its weights).
_MIN_STD = 1e-9


@dataclass(frozen=True)
class MRSFitness:
    """The training-free fitness of one candidate: DLOPT's numbers (higher log_p is better)."""

    log_p: float         # log P(loss <= threshold) under the normal fitted to the losses
    mean: float          # of the losses of the random draws
    std: float
    threshold: float
    samples: int
    seconds: float       # what sampling the losses cost

    def to_dict(self) -> dict[str, Any]:
        return {"log_p": self.log_p, "mean": self.mean, "std": self.std, "threshold": self.threshold,
                "samples": self.samples, "seconds": self.seconds}


def mrs_fitness(losses: Sequence[float], threshold: float, seconds: float = 0.0) -> MRSFitness:
    """Fit a normal to `losses` (sample mean and standard deviation) and score P(loss <= threshold)."""
    values = [float(v) for v in losses if math.isfinite(v)]
    if len(values) < 2:
        raise ValueError(f"MRS needs at least 2 finite losses, got {list(losses)}")
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    log_p = float(norm.logcdf((threshold - mean) / max(std, _MIN_STD)))
    return MRSFitness(log_p=log_p, mean=mean, std=std, threshold=float(threshold), samples=len(values),
                      seconds=float(seconds))


def fitness_of(sampled: RandomWeightLosses) -> MRSFitness:
    """The MRS fitness of the losses the neural block sampled, at the classification threshold."""
    return mrs_fitness(sampled.losses, MRS_THRESHOLD_FRACTION * sampled.chance_loss, sampled.seconds)
