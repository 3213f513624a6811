"""Support library of Symbolic DNN-Tuner.

The top-level modules (main.py, controller.py, neural_network.py, tuning_module.py,
datasets.py and the two ProbLog files) are the parts named in the SoftwareX paper;
this package holds what they share: the vocabulary, the records that cross module
boundaries, the error types, the search space, the ProbLog bridge and the run storage.
"""
