"""The shared vocabulary: one name per problem, action and trial status.

The ProbLog atoms in diagnosis.pl and tuning_rules.pl are exactly these strings;
tests check that every atom used in the .pl files is declared here.
"""

# Problems the diagnosis can find (SoftwareX Table 1).
OVERFITTING = "overfitting"
UNDERFITTING = "underfitting"
INCREASING_LOSS = "increasing_loss"
FLUCTUATING_LOSS = "fluctuating_loss"
LOW_LR = "low_lr"
HIGH_LR = "high_lr"
STUCK_AT_CHANCE = "stuck_at_chance"   # issue 13: no learning at all, loss ~ ln(K), accuracy ~ 1/K
PROBLEMS = (OVERFITTING, UNDERFITTING, INCREASING_LOSS, FLUCTUATING_LOSS, LOW_LR, HIGH_LR, STUCK_AT_CHANCE)

# Why the stop rules of diagnosis.pl (`stop_training/1`, issue 14) end a training before its last
# epoch: no more epochs can fix what they see.
STOP_DIVERGED = "diverged"                  # the loss became NaN or infinite
STOP_STUCK_AT_CHANCE = STUCK_AT_CHANCE      # at chance level epochs in a row, the loss not falling
STOP_OVERSHOT = "overshot"                  # the loss overshot ln(K) and stays at or above it, not falling
STOP_REASONS = (STOP_DIVERGED, STOP_STUCK_AT_CHANCE, STOP_OVERSHOT)

# Tuning actions (SoftwareX Table 2).
REG_L2 = "reg_l2"
INC_DROPOUT = "inc_dropout"
DATA_AUGMENTATION = "data_augmentation"
DECR_LR = "decr_lr"
INC_LR = "inc_lr"
INC_NEURONS = "inc_neurons"
NEW_FC_LAYER = "new_fc_layer"
NEW_CONV_LAYER = "new_conv_layer"
INC_BATCH_SIZE = "inc_batch_size"
DECR_BATCH_SIZE = "decr_batch_size"   # issue 13: more optimiser steps for a slow training with large batches
ADD_BATCH_NORM = "add_batch_norm"     # issue 13: batch normalisation on its own, no longer part of reg_l2
CHANGE_OPTIMIZER = "change_optimizer" # issue 13: leave the optimiser a training stuck at chance used
ACTIONS = (
    REG_L2, INC_DROPOUT, DATA_AUGMENTATION, DECR_LR, INC_LR,
    INC_NEURONS, NEW_FC_LAYER, NEW_CONV_LAYER, INC_BATCH_SIZE, ADD_BATCH_NORM, CHANGE_OPTIMIZER,
    DECR_BATCH_SIZE,
)

# Hyper-parameters the tool itself reads by name (the paper's, SoftwareX Listing 3). The actions
# recognise their dimensions by these names; the CNN reads all of them; a user's model and search
# space may use any names.
LEARNING_RATE = "learning_rate"
BATCH_SIZE = "batch_size"
OPTIMIZER = "optimizer"
ACTIVATION = "activation"
CONV_WIDTHS = ("unit_c1", "unit_c2")      # filters of the two conv blocks of Listing 4
DENSE_WIDTH = "unit_d"                    # units of its dense layer
DROPOUTS = ("dr1_2", "dr_f")              # dropout after the conv blocks, before the output
L2_FACTOR = "l2_factor"                   # the L2 weight-decay factor, once reg_l2 switched L2 on

# Keys of a training history (Keras History.history names): what every history must hold.
LOSS = "loss"
ACCURACY = "accuracy"
VAL_LOSS = "val_loss"
VAL_ACCURACY = "val_accuracy"
HISTORY_KEYS = (LOSS, ACCURACY, VAL_LOSS, VAL_ACCURACY)
# Optional keys of a training history (issue 13): loss and accuracy on a fixed subset of the
# training data, measured after every epoch in inference mode (no dropout, batch norm's moving
# statistics), like the validation numbers. Keras' loss/accuracy are measured with dropout on and
# averaged over the epoch. Histories without them (older runs, a saved Keras history) still diagnose.
TRAIN_EVAL_LOSS = "train_eval_loss"
TRAIN_EVAL_ACCURACY = "train_eval_accuracy"
TRAIN_EVAL_KEYS = (TRAIN_EVAL_LOSS, TRAIN_EVAL_ACCURACY)


class TrialStatus:
    """What became of one training."""

    COMPLETED = "completed"   # trained to the end or stopped early (patience); metrics are valid
    PRUNED = "pruned"         # stopped by the stop rules of diagnosis.pl (issue 14, Optuna's word):
    #                           metrics of the best epoch it ran are valid, like a completed one's
    DIVERGED = "diverged"     # loss became NaN or inf; a finite penalty objective is recorded
    FAILED = "failed"         # an exception inside the training; recorded, the run goes on
    ALL = (COMPLETED, PRUNED, DIVERGED, FAILED)
    # The statuses whose validation metrics are real (the objective, best-model selection).
    SCORED = (COMPLETED, PRUNED)
