"""Diagnoses of short trainings that issue 13 found misread, pinned on real 6-epoch digits
curves (pilot benchmark, seed 0): a training stuck at chance whose clean accuracy drifted a few
points above 1/K, and a training that barely moved, which the shape tests cannot see; and a
slowly moving Adadelta training on Fashion-MNIST, whose remedy depends on the optimiser."""

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


# Adadelta, learning rate 2.3e-4, batch 74, the embedded Fashion-MNIST subset (Fashion benchmark,
# sdt-prior seed 0, trial 1, stopped after 4 of 6 epochs): moving, but far too slowly.
SLOW_ADADELTA = {"loss": [2.4068, 2.362, 2.324, 2.2721], "accuracy": [0.1098, 0.1163, 0.1246, 0.1396],
                 "val_loss": [2.3108, 2.2684, 2.2309, 2.1971], "val_accuracy": [0.0983, 0.1083, 0.125, 0.1617],
                 "train_eval_loss": [2.3121, 2.2692, 2.2314, 2.1975],
                 "train_eval_accuracy": [0.0977, 0.1016, 0.125, 0.1504]}
SLOW_ADADELTA_PARAMS = {"learning_rate": 2.2769e-4, "batch_size": 74, "optimizer": "Adadelta", "activation": "selu"}

# Adamax, learning rate 3.0e-4, batch 151, the embedded Fashion-MNIST subset (an earlier Fashion
# benchmark run, sdt-prior seed 0, trial 7): a poor fit of the training data (0.77) on a curve that
# had flattened, diagnosed underfitting; it got inc_neurons then.
UNDERFIT = {"loss": [1.9353, 1.0734, 0.8804, 0.7965, 0.7404, 0.6924],
            "accuracy": [0.3778, 0.5919, 0.6757, 0.7144, 0.7315, 0.7456],
            "val_loss": [1.2589, 0.8683, 0.783, 0.7096, 0.6588, 0.6305],
            "val_accuracy": [0.5483, 0.695, 0.7217, 0.74, 0.78, 0.775],
            "train_eval_loss": [1.2549, 0.8603, 0.7821, 0.7091, 0.6592, 0.6355],
            "train_eval_accuracy": [0.5615, 0.6904, 0.7334, 0.7441, 0.7646, 0.7666]}


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


def test_a_slow_training_of_adadelta_leaves_the_optimiser_and_of_others_raises_the_rate(block):
    import numpy as np
    rng = np.random.default_rng(0)
    # The curve alone: low_lr, and its remedy is the learning rate.
    alone = diagnose(block, SLOW_ADADELTA)
    assert alone.problem_names() == ("low_lr",)
    assert [(a.name, a.probability) for a in alone.actions] == [("inc_lr", pytest.approx(0.7))]
    # Trained with Adadelta: the same curve, and leaving the optimiser comes first.
    adadelta = block.diagnose(SLOW_ADADELTA, 10, block.initial_weights(), SLOW_ADADELTA_PARAMS)
    assert adadelta.problem_names() == ("low_lr",)
    assert {(a.name, a.problem): a.probability for a in adadelta.actions} == {
        ("change_optimizer", "low_lr"): pytest.approx(0.8), ("decr_batch_size", "low_lr"): pytest.approx(0.75),
        ("inc_lr", "low_lr"): pytest.approx(0.7)}
    assert [a.name for a in block.choose_actions(adadelta, set(), rng)] == ["change_optimizer"]
    # Trained with Adam (batch 74): more steps first, then the rate.
    adam = block.diagnose(SLOW_ADADELTA, 10, block.initial_weights(), {**SLOW_ADADELTA_PARAMS, "optimizer": "Adam"})
    assert [a.name for a in sorted(adam.actions, key=lambda a: -a.probability)] == ["decr_batch_size", "inc_lr"]
    # The rule's weight is learned like any other: once it has failed, the next remedy is chosen.
    from sdt.symbolic.records import RuleWeights
    weights = RuleWeights({**dict(block.initial_weights().items()), ("change_optimizer", "low_lr"): 0.4})
    relearned = block.diagnose(SLOW_ADADELTA, 10, weights, SLOW_ADADELTA_PARAMS)
    assert [a.name for a in block.choose_actions(relearned, set(), rng)] == ["decr_batch_size"]


@pytest.mark.parametrize("batch_size, expected", [
    (216, ["decr_batch_size", "inc_lr"]),    # the batch the training used
    (64, ["decr_batch_size", "inc_lr"]),     # large_batch_for_slow_training(64)
    (63, ["inc_lr"]),
    (16, ["inc_lr"]),
])
def test_a_slow_training_with_a_large_batch_gets_a_smaller_batch_first(block, batch_size, expected):
    import numpy as np
    params = {"learning_rate": 1.6e-4, "batch_size": batch_size, "optimizer": "RMSprop", "activation": "relu"}
    diagnosis = block.diagnose(BARELY_MOVING, 10, block.initial_weights(), params)
    assert "low_lr" in diagnosis.problem_names()
    remedies = [a for a in diagnosis.actions if a.problem == "low_lr"]
    assert [a.name for a in sorted(remedies, key=lambda a: -a.probability)] == expected
    chosen = block.choose_actions(diagnosis, set(), np.random.default_rng(0))
    assert chosen[0].name == expected[0]
    # Once the batch cannot shrink any more, the rate is the remedy.
    if len(expected) == 2:
        blocked = block.choose_actions(diagnosis, {"decr_batch_size"}, np.random.default_rng(0))
        assert blocked[0].name == "inc_lr"


@pytest.mark.parametrize("batch_size, first", [
    (151, "decr_batch_size"),   # the batch the training used
    (64, "decr_batch_size"),    # large_batch_for_slow_training(64)
    (63, "inc_neurons"),
    (16, "inc_neurons"),
])
def test_an_underfitting_training_with_a_large_batch_gets_a_smaller_batch_before_capacity(block, batch_size, first):
    import numpy as np
    params = {"learning_rate": 2.98e-4, "batch_size": batch_size, "optimizer": "Adamax", "activation": "relu"}
    diagnosis = block.diagnose(UNDERFIT, 10, block.initial_weights(), params)
    assert diagnosis.problem_names() == ("underfitting",)
    remedies = sorted((a for a in diagnosis.actions if a.problem == "underfitting"), key=lambda a: -a.probability)
    assert remedies[0].name == first
    assert ("decr_batch_size" in {a.name for a in remedies}) == (batch_size >= 64)
    assert block.choose_actions(diagnosis, set(), np.random.default_rng(0))[0].name == first
    # Once the batch cannot shrink any more, capacity comes next.
    if first == "decr_batch_size":
        blocked = block.choose_actions(diagnosis, {"decr_batch_size"}, np.random.default_rng(0))
        assert blocked[0].name == "inc_neurons"


# Adadelta on the 3,000-image Fashion-MNIST subset (benchmark at 00c9e21, seed 1): the loss fell a
# little, then flattened near ln(10), and the training accuracy never left 1/10. Both were
# diagnosed underfitting before, so the first would have got inc_neurons.
# sdt-prior trial 9: learning rate 3.2e-4, batch 71, stopped as stuck at chance after 4 epochs.
FLATTENED_AT_CHANCE = {"loss": [2.495, 2.4486, 2.4211, 2.417], "accuracy": [0.0989, 0.1078, 0.1096, 0.1041],
                       "val_loss": [2.339, 2.3136, 2.2907, 2.2721], "val_accuracy": [0.12, 0.1367, 0.14, 0.1467],
                       "train_eval_loss": [2.3392, 2.3127, 2.2888, 2.2694],
                       "train_eval_accuracy": [0.1348, 0.1426, 0.1494, 0.1553]}
# bo trial 8: learning rate 2.0e-4, batch 247, all 6 epochs.
CREEPING_AT_CHANCE = {"loss": [2.5831, 2.553, 2.536, 2.5288, 2.5345, 2.5334],
                      "accuracy": [0.0989, 0.1078, 0.1152, 0.1167, 0.1081, 0.1126],
                      "val_loss": [2.4181, 2.4112, 2.4043, 2.3975, 2.3909, 2.3842],
                      "val_accuracy": [0.0633, 0.0633, 0.0633, 0.0633, 0.0667, 0.0667],
                      "train_eval_loss": [2.4006, 2.3937, 2.3869, 2.3803, 2.3737, 2.3672],
                      "train_eval_accuracy": [0.0869, 0.0869, 0.0889, 0.0938, 0.0938, 0.0957]}


@pytest.mark.parametrize("history, params", [
    (FLATTENED_AT_CHANCE, {"learning_rate": 3.17e-4, "batch_size": 71, "optimizer": "Adadelta", "activation": "selu"}),
    (CREEPING_AT_CHANCE, {"learning_rate": 2.04e-4, "batch_size": 247, "optimizer": "Adadelta", "activation": "selu"}),
])
def test_a_loss_that_fell_a_little_and_flattened_at_chance_is_stuck_not_underfitting(block, history, params):
    import numpy as np
    diagnosis = block.diagnose(history, 10, block.initial_weights(), params)
    assert "stuck_at_chance" in diagnosis.problem_names()
    assert "underfitting" not in diagnosis.problem_names()
    capacity = {"inc_neurons", "new_fc_layer", "new_conv_layer"}
    assert not capacity & {a.name for a in diagnosis.actions}
    assert block.choose_actions(diagnosis, set(), np.random.default_rng(0))[0].name == "change_optimizer"
    (finding,) = [p for p in diagnosis.problems if p.name == "stuck_at_chance"]
    assert "of the way from chance" in finding.explanation


def test_a_slow_curve_still_falling_steeply_at_chance_stays_low_lr(block):
    # The same accuracy at chance, but the loss was speeding up at the end: moving, not stuck.
    assert diagnose(block, SLOW_ADADELTA).problem_names() == ("low_lr",)
    # The flattened one without the last epochs' flattening would be the same kind of curve.
    steep = {**FLATTENED_AT_CHANCE, "loss": [2.495, 2.485, 2.46, 2.40]}
    assert "stuck_at_chance" not in diagnose(block, steep).problem_names()


# Adamax at a rate of 1.2e-4 on the 3,000-image Fashion-MNIST subset (benchmark at 18684f3, sdt-prior
# seed 2, trial 8, batch 53): a poor fit on a curve that had flattened, diagnosed underfitting; it got
# inc_neurons then, a wider network trained with the same small steps.
UNDERFIT_AT_SMALL_RATE = {"loss": [2.1151, 1.2653, 0.9445, 0.8673, 0.8159, 0.7751],
                          "accuracy": [0.3393, 0.5704, 0.653, 0.6819, 0.6963, 0.7141],
                          "val_loss": [1.7318, 0.9522, 0.832, 0.7938, 0.7069, 0.6809],
                          "val_accuracy": [0.6167, 0.6333, 0.72, 0.7467, 0.7733, 0.7533],
                          "train_eval_loss": [1.715, 0.9549, 0.8474, 0.8045, 0.7156, 0.6911],
                          "train_eval_accuracy": [0.5889, 0.6396, 0.6768, 0.6953, 0.7461, 0.7598]}


@pytest.mark.parametrize("optimizer, learning_rate, batch_size, first", [
    ("Adamax", 1.19e-4, 53, "inc_lr"),            # the training as it ran
    ("Adamax", 1.19e-4, 216, "inc_lr"),           # a large batch too: the rate comes first
    ("RMSprop", 2.49e-4, 16, "inc_lr"),           # just below small_rate(rmsprop, 0.00025)
    ("RMSprop", 2.5e-4, 16, "inc_neurons"),       # at it: not a small rate
    ("Adamax", 2.98e-4, 216, "decr_batch_size"),  # a larger rate with a large batch
    ("SGD", 2e-3, 16, "inc_lr"),                  # SGD's default is ten times Adam's
    ("SGD", 3e-3, 16, "inc_neurons"),
])
def test_an_underfitting_training_at_a_small_rate_gets_a_larger_rate_first(block, optimizer, learning_rate,
                                                                         batch_size, first):
    import numpy as np
    params = {"learning_rate": learning_rate, "batch_size": batch_size, "optimizer": optimizer,
              "activation": "relu"}
    diagnosis = block.diagnose(UNDERFIT_AT_SMALL_RATE, 10, block.initial_weights(), params)
    assert diagnosis.problem_names() == ("underfitting",)
    assert block.choose_actions(diagnosis, set(), np.random.default_rng(0))[0].name == first
    remedies = {a.name: a.probability for a in diagnosis.actions if a.problem == "underfitting"}
    assert ("inc_lr" in remedies) == (first == "inc_lr")
    # At the top of the learning-rate domain inc_lr is not applicable: the batch or capacity comes next.
    if first == "inc_lr":
        blocked = block.choose_actions(diagnosis, {"inc_lr"}, np.random.default_rng(0))
        assert blocked[0].name == ("decr_batch_size" if batch_size >= 64 else "inc_neurons")


def test_an_underfitting_adadelta_training_gets_no_larger_rate_from_the_underfitting_rule(block):
    # Adadelta has no small_rate: every rate of the paper's space is small for it, and
    # change_optimizer (low_lr, stuck_at_chance) is its remedy.
    params = {"learning_rate": 1.19e-4, "batch_size": 53, "optimizer": "Adadelta", "activation": "relu"}
    diagnosis = block.diagnose(UNDERFIT_AT_SMALL_RATE, 10, block.initial_weights(), params)
    assert "underfitting" in diagnosis.problem_names()
    assert ("inc_lr", "underfitting") not in {(a.name, a.problem) for a in diagnosis.actions}


# RMSprop, learning rate 6.5e-4, batch 25, the 3,000-image Fashion-MNIST subset (sdt-local seed 0,
# trial 0, the run's best): the validation loss turned up after epoch 4, diagnosed overfitting.
OVERFIT = {"loss": [1.3745, 0.6023, 0.4572, 0.3316, 0.2484, 0.1898],
           "accuracy": [0.6326, 0.7889, 0.8433, 0.877, 0.9137, 0.9296],
           "val_loss": [0.9336, 0.4436, 0.4403, 0.3848, 0.558, 0.6653],
           "val_accuracy": [0.6767, 0.86, 0.84, 0.86, 0.84, 0.7967],
           "train_eval_loss": [1.0292, 0.3336, 0.2588, 0.1795, 0.1698, 0.167],
           "train_eval_accuracy": [0.6738, 0.8838, 0.8984, 0.9443, 0.9453, 0.9404]}


def test_augmentation_is_no_remedy_for_a_short_training_that_overfits(block):
    diagnosis = diagnose(block, OVERFIT)
    assert diagnosis.problem_names() == ("overfitting",)
    assert {a.name for a in diagnosis.actions} == {"reg_l2", "inc_dropout"}
    # The same curve stretched to 24 epochs (each epoch four times) may get augmentation.
    long = {key: [value for value in values for _ in range(4)] for key, values in OVERFIT.items()}
    actions = {a.name: a.probability for a in diagnose(block, long).actions}
    assert "overfitting" in diagnose(block, long).problem_names()
    assert actions["data_augmentation"] == pytest.approx(0.6)
