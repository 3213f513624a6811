"""Diagnoses of short trainings that issue 13 found misread, pinned on real 6-epoch digits
curves (pilot benchmark, seed 0): a training stuck at chance whose clean accuracy drifted a few
points above 1/K, and a training that barely moved, which the shape tests cannot see."""

import pytest

from sdt.symbolic.block import SymbolicBlock

# Adadelta, learning rate 2.8e-4, batch 170: the loss never left ln(10) = 2.303.
STUCK = {"loss": [2.34, 2.322, 2.338, 2.344, 2.338, 2.327],
         "accuracy": [0.104, 0.109, 0.103, 0.111, 0.112, 0.11],
         "val_loss": [2.314, 2.313, 2.313, 2.312, 2.311, 2.311],
         "val_accuracy": [0.153, 0.153, 0.16, 0.16, 0.16, 0.16],
         "train_eval_loss": [2.301, 2.301, 2.3, 2.299, 2.299, 2.298],
         "train_eval_accuracy": [0.165, 0.168, 0.168, 0.169, 0.169, 0.168]}

# RMSprop, learning rate 1.6e-4, batch 216: learning, but the loss fell by 0.03 in 6 epochs.
BARELY_MOVING = {"loss": [2.303, 2.298, 2.294, 2.289, 2.281, 2.272],
                 "accuracy": [0.107, 0.125, 0.14, 0.169, 0.2, 0.196],
                 "val_loss": [2.298, 2.293, 2.288, 2.281, 2.269, 2.253],
                 "val_accuracy": [0.118, 0.167, 0.118, 0.229, 0.312, 0.361],
                 "train_eval_loss": [2.297, 2.293, 2.288, 2.28, 2.268, 2.251],
                 "train_eval_accuracy": [0.119, 0.142, 0.123, 0.229, 0.332, 0.352]}


@pytest.fixture(scope="module")
def block():
    return SymbolicBlock()


def diagnose(block, history):
    return block.diagnose(history, 10, block.initial_weights())


def test_a_stuck_training_is_stuck_although_its_clean_accuracy_drifted(block):
    diagnosis = diagnose(block, STUCK)
    assert diagnosis.problem_names() == ("stuck_at_chance",)
    assert {a.name for a in diagnosis.actions} == {"change_optimizer", "inc_lr"}


def test_a_barely_moving_training_has_a_low_learning_rate(block):
    diagnosis = diagnose(block, BARELY_MOVING)
    assert "low_lr" in diagnosis.problem_names() and "stuck_at_chance" not in diagnosis.problem_names()
    best = max(diagnosis.actions, key=lambda a: a.probability)
    assert best.name == "inc_lr"                 # not a capacity action
    (finding,) = [p for p in diagnosis.problems if p.name == "low_lr"]
    assert "0.98" in finding.explanation or "0.97" in finding.explanation   # quotes loss / ln K


def test_a_healthy_short_training_is_not_low_lr(block):
    healthy = {"loss": [1.9, 0.9, 0.5, 0.35, 0.28, 0.25], "accuracy": [0.4, 0.75, 0.86, 0.9, 0.92, 0.93],
               "val_loss": [1.5, 0.8, 0.5, 0.4, 0.35, 0.33], "val_accuracy": [0.5, 0.78, 0.85, 0.88, 0.9, 0.9]}
    assert "low_lr" not in diagnose(block, healthy).problem_names()
