"""Layer 1: the search space (dimensions, bounds, hard domains) and the fixed domain of a run's points."""
