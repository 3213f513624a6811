"""Layer 2: the search strategies (what to try next): GP Bayesian optimisation, random, TPE, meta-lr,
evolution, each behind the same ask / tell interface."""
