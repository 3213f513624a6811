"""Support library of Symbolic DNN-Tuner.

The top-level modules (main.py, controller.py, neural_network.py, tuning_module.py,
datasets.py and the two ProbLog files) are the parts named in the SoftwareX paper;
this package holds what they share: the vocabulary, the records that cross module
boundaries, the error types, the search space, the ProbLog bridge and the run storage.
"""

# The Python API (sdt/api.py), imported on first use so `import sdt.<module>` stays light.
__all__ = ["tune", "TuningResult", "TrialSummary"]


def __getattr__(name: str):
    if name in __all__:
        from sdt import api
        return getattr(api, name)
    raise AttributeError(f"module 'sdt' has no attribute {name!r}")
