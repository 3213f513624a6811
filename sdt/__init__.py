"""Symbolic DNN-Tuner: tune a Keras CNN with Bayesian optimisation guided by ProbLog diagnosis
and probabilistic tuning rules.

The package is in layers that only import downwards (README, "How it works"): `core`; then
`space`, `data`, `neural`, `symbolic`; then `actions`, `strategies`; then `run`; then `cli`,
`dashboard`; and on top the Python API (`api`) and `python -m sdt`. A checkout keeps the paper's
names at its top (main.py, controller.py, neural_network.py, tuning_module.py, datasets.py,
diagnosis.pl, tuning_rules.pl) as entries into this package.
"""

# The Python API (sdt/api.py), imported on first use so `import sdt.<module>` stays light.
__all__ = ["tune", "TuningResult", "TrialSummary"]


def __getattr__(name: str):
    if name in __all__:
        from sdt import api
        return getattr(api, name)
    raise AttributeError(f"module 'sdt' has no attribute {name!r}")
