%% ==========================================================================
%% diagnosis.pl -- Symbolic DNN-Tuner: what went wrong in one training
%% ==========================================================================
%%
%% This program reads the per-epoch curves of ONE training (the Keras history:
%% loss, accuracy, val_loss, val_accuracy, and where the tuner trained it
%% train_eval_loss, train_eval_accuracy) and names the problems they show
%% (SoftwareX Table 1). It is the "Diagnosis" part of the symbolic program:
%% sdt/symbolic/block.py joins the facts of one training with this file and with
%% tuning_rules.pl (at the current rule weights) and asks ProbLog for
%%
%%   problem(P)              P is diagnosed. P is one of overfitting,
%%                           underfitting, increasing_loss, fluctuating_loss,
%%                           low_lr, high_lr (the names of sdt/core/vocabulary.py)
%%   because(P, Conditions)  a list of conditions, all true, that diagnosed P:
%%                           the explanation shown to the user
%%   measure(Name, Value)    every measured quantity, raw and derived
%%   threshold(Name, Value)  every threshold, already scaled to the task
%%   note(N)                 what the evidence could not support
%%
%% and, after every epoch of a training still running (issue 14), for the
%% history so far:
%%
%%   stop_training(R)        the training cannot succeed, for reason R, and
%%                           no more epochs can fix it: stop it now. R is
%%                           one of diverged, stuck_at_chance, overshot
%%                           (STOP_REASONS of sdt/core/vocabulary.py)
%%   stop_because(R, Conditions)  the conditions, all true, that decided it
%%
%% and declares how the explanations word each measure:
%%
%%   phrase(Measure, Text)   the words for Measure (section 7)
%%
%% Facts written by sdt/symbolic/statistics.py for each training (never
%% stored here):
%%
%%   num_classes(K).             number of classes of the task (K >= 2)
%%   history_stat(Name, Value).  a number measured on the history (list in
%%                               section 2). A statistic that cannot be
%%                               measured (too few epochs, NaN values) is
%%                               absent, so every test that needs it fails
%%                               and nothing is diagnosed from it.
%%   epoch_stat(E, Name, Value). a number of epoch E alone (counted from 1),
%%                               for the stop rules (section 2)
%%
%% Python only measures; every decision (thresholds and rules) is here.
%% To change what is diagnosed, edit the thresholds (section 3) or the causes
%% (section 5) in a copy and try it on a saved history:
%%   python3 main.py --diagnose HISTORY.json --diagnosis MY_DIAGNOSIS.pl
%% Units: accuracies are rates in [0, 1]; losses are categorical
%% cross-entropies in nats; counts are epochs or epoch-to-epoch steps.


%% --------------------------------------------------------------------------
%% 1. Scale of the task
%% --------------------------------------------------------------------------
%% A loss of 1.2 is bad for 3 classes and good for 100. Thresholds on
%% accuracies are scaled to the chance level and thresholds on losses to the
%% chance-level loss, so the same file serves every number of classes.

% chance_accuracy(C): the accuracy of guessing uniformly among K classes, 1/K.
chance_accuracy(C) :- num_classes(K), C is 1.0 / K.

% chance_loss(L): the cross-entropy of the uniform prediction, ln(K): where an
% untrained network starts and where a collapsed one ends.
chance_loss(L) :- num_classes(K), L is log(K).


%% --------------------------------------------------------------------------
%% 2. Measured quantities
%% --------------------------------------------------------------------------
%% Statistics measured by sdt/symbolic/statistics.py (history_stat/2):
%%   epochs                       epochs in the history
%%   final_train_accuracy,        mean of the last epochs (the last 3; the
%%   final_val_accuracy,          last third of a run shorter than 9 epochs;
%%   final_train_loss,            at least the last one), so one noisy epoch
%%   final_val_loss               does not decide; NaN epochs are skipped
%%   lowest_val_loss              the lowest finite validation loss of any epoch
%%   non_finite_loss_epochs       epochs whose loss or val_loss is NaN or inf
%%   first_non_finite_loss_epoch  first such epoch (1-based), if any
%% The TRAINING accuracy and loss behind final_train_accuracy and
%% final_train_loss are measured like the validation ones when the history
%% has them (train_eval_accuracy, train_eval_loss; the tuner records them
%% since issue 13): after every epoch, in inference mode (no dropout, batch
%% norm's moving statistics), on a fixed subset of the training data (its
%% first 1024 examples, TRAIN_EVAL_EXAMPLES of sdt/neural/network.py).
%% Keras' own accuracy and loss are measured with dropout on and averaged
%% over the epoch while the weights still change, so they make a model look
%% worse on its training data than it is: more underfitting, less
%% overfitting. A history without the clean keys (an older run, a Keras
%% history saved by hand) falls back on Keras' numbers.
%%
%% The curve statistics below describe the TRAINING loss up to its first
%% NaN/inf value (the "curve"), and exist only when it has 2 or more epochs.
%% They always read Keras' loss, measured over the training batches as the
%% optimiser descends: its shape is that of the descent itself.
%%   train_loss_curve_epochs      epochs in the curve
%%   first_train_loss, last_train_loss, peak_train_loss
%%   train_loss_steps             epoch-to-epoch steps in the curve
%%   train_loss_up_steps          steps where the loss rose
%%   train_loss_down_steps        steps where the loss fell
%%   train_loss_rise_total        sum of the rises (loss units)
%%   train_loss_fall_total        sum of the falls (loss units, positive)
%%   train_loss_chord_area        area between the straight chord from the
%%                                first to the last point and the curve
%%                                (chord minus curve, trapezoids, epochs x
%%                                loss): positive when the curve sags below
%%   train_loss_late_drop         how much the loss fell over the last third
%%                                of the curve (loss units)

%% Per-epoch values (issue 14), for the rules that stop a training early
%% (sections 5 and 6), one fact per epoch E (counted from 1) whose value is
%% finite:
%%   epoch_stat(E, train_loss, V)       the training loss of epoch E,
%%                                      measured like final_train_loss (in
%%                                      inference mode on the fixed subset
%%                                      when the history has it)
%%   epoch_stat(E, train_accuracy, V)   the training accuracy, likewise

% measure(Name, Value): a measured quantity of this training; the tests of
% section 4 read only measures, and explanations quote them.
measure(Name, Value) :- history_stat(Name, Value).
measure(chance_accuracy, C) :- chance_accuracy(C).
measure(chance_loss, L) :- chance_loss(L).

% train_val_accuracy_gap: final training accuracy minus final validation
% accuracy. Large when the model fits its training data better than new data.
measure(train_val_accuracy_gap, G) :-
    history_stat(final_train_accuracy, A), history_stat(final_val_accuracy, V),
    G is A - V.

% train_val_loss_gap: final validation loss minus final training loss
% (positive when the validation data is fitted worse).
measure(train_val_loss_gap, G) :-
    history_stat(final_train_loss, L), history_stat(final_val_loss, V),
    G is V - L.

% val_loss_rise_over_chance_loss: how far the final validation loss ended
% above the lowest validation loss of the training, as a multiple of ln(K):
% about 0 for a validation loss still at its lowest at the end, larger once
% it has turned up (the model has begun to fit its training data at the
% expense of new data).
measure(val_loss_rise_over_chance_loss, R) :-
    history_stat(final_val_loss, F), history_stat(lowest_val_loss, L),
    chance_loss(C), R is (F - L) / C.

% train_accuracy_above_chance: how far the final training accuracy got from
% chance towards a perfect fit, (accuracy - 1/K) / (1 - 1/K): 0 at chance,
% 1 when every training example is right.
measure(train_accuracy_above_chance, S) :-
    history_stat(final_train_accuracy, A), chance_accuracy(C),
    S is (A - C) / (1 - C).

% train_loss_over_chance_loss: final training loss as a multiple of ln(K).
measure(train_loss_over_chance_loss, R) :-
    history_stat(final_train_loss, L), chance_loss(C), R is L / C.

% train_loss_peak_over_chance_loss: highest training loss of the curve as a
% multiple of ln(K); well above 1 means the loss blew up past chance level.
measure(train_loss_peak_over_chance_loss, R) :-
    history_stat(peak_train_loss, P), chance_loss(C), R is P / C.

% rising_train_loss_step_share: share of the epoch-to-epoch steps in which
% the training loss rose.
measure(rising_train_loss_step_share, S) :-
    history_stat(train_loss_up_steps, U), history_stat(train_loss_steps, N),
    N > 0, S is U / N.

% train_loss_up_down_balance: fewer direction counts over more, min/max of
% the up-steps and down-steps: 1 when the loss went up as often as down,
% near 0 when it went (almost) always the same way.
measure(train_loss_up_down_balance, B) :-
    history_stat(train_loss_up_steps, U), history_stat(train_loss_down_steps, D),
    M is max(U, D), M > 0, B is min(U, D) / M.

% train_loss_rise_share: the rises as a share of all movement of the loss,
% rises / (rises + falls): 0 for a loss that only falls, 0.5 for one that
% goes up as much as down, above 0.5 for one that climbs.
measure(train_loss_rise_share, S) :-
    history_stat(train_loss_rise_total, R), history_stat(train_loss_fall_total, F),
    T is R + F, T > 0, S is R / T.

% train_loss_mean_rise_over_chance_loss: mean size of a rise of the training
% loss, as a share of ln(K): how far the loss jumps back up.
measure(train_loss_mean_rise_over_chance_loss, S) :-
    history_stat(train_loss_rise_total, R), history_stat(train_loss_up_steps, U),
    U > 0, chance_loss(C), S is R / U / C.

% train_loss_drop_over_chance_loss: first minus last training loss of the
% curve, as a share of ln(K) (negative when the loss ended higher).
measure(train_loss_drop_over_chance_loss, D) :-
    history_stat(first_train_loss, A), history_stat(last_train_loss, B),
    chance_loss(C), D is (A - B) / C.

% train_loss_rise_over_chance_loss: last minus first training loss of the
% curve, as a share of ln(K): how far the loss climbed overall (negative when
% it fell).
measure(train_loss_rise_over_chance_loss, R) :-
    history_stat(first_train_loss, A), history_stat(last_train_loss, B),
    chance_loss(C), R is (B - A) / C.

% train_loss_area_ratio: shape of a falling training-loss curve. The area
% between the chord (first to last point) and the curve, over the area of the
% triangle between the chord and the level of the last point:
%   0    the loss fell along a straight line (same speed all along),
%   1    the loss collapsed at the first step and then stayed flat,
%   < 0  the curve bulges above the chord (slow start, faster later).
% The original divided by the whole area under the chord instead, which
% mixes the shape with how low the loss got: a loss that collapsed to a high
% plateau then reads "straight" and a healthy one that converged to 0 reads
% "collapsed". Defined only when the loss fell (first > last).
measure(train_loss_area_ratio, R) :-
    history_stat(train_loss_chord_area, A), history_stat(train_loss_steps, N),
    history_stat(first_train_loss, F), history_stat(last_train_loss, L),
    F > L, R is A / (N * (F - L) / 2).

% train_loss_late_drop_share: share of the whole fall of the training loss
% that came in the last third of the curve: about 1/3 for a straight line,
% near 0 for a curve that had converged, more for one still speeding up.
measure(train_loss_late_drop_share, S) :-
    history_stat(train_loss_late_drop, D),
    history_stat(first_train_loss, F), history_stat(last_train_loss, L),
    F > L, S is D / (F - L).

% train_loss_still_falling_share: how steeply the training loss was still
% falling at the end, for the underfitting test: train_loss_late_drop_share
% when the loss fell measurably over the curve (the fall the learning-rate
% shape tests need, min_train_loss_drop_for_shape), and 0 when it did not
% (it rose, stayed flat, or fell by noise alone): a curve that never came
% down is not still coming down, and the share of a fall of noise is noise.
measure(train_loss_still_falling_share, S) :-
    measure(train_loss_drop_over_chance_loss, D),
    threshold(min_train_loss_drop_for_shape, T), D > T,
    measure(train_loss_late_drop_share, S).
measure(train_loss_still_falling_share, 0) :-
    measure(train_loss_drop_over_chance_loss, D),
    threshold(min_train_loss_drop_for_shape, T), D =< T.

% --- Measures of the stop rules (issue 14) --------------------------------

% at_chance_epoch(E): in epoch E the model still predicted about uniformly:
% its training loss was at least min_stuck_loss_over_chance_loss ln(K) and
% its training accuracy got less than
% max_train_accuracy_above_chance_when_stuck of the way from chance to 1
% (the two thresholds of stuck_at_chance, section 3). A loss far ABOVE ln(K)
% counts too: the outputs are then no better than a uniform guess either.
at_chance_epoch(E) :-
    epoch_stat(E, train_loss, L), epoch_stat(E, train_accuracy, A),
    chance_loss(CL), chance_accuracy(CA),
    threshold(min_stuck_loss_over_chance_loss, ML),
    threshold(max_train_accuracy_above_chance_when_stuck, MA),
    L >= ML * CL, (A - CA) / (1 - CA) < MA.

% at_chance_run(E, N): the N epochs up to and including epoch E were all at
% chance level, and the one before them was not (or there was none).
at_chance_run(E, 0) :- E < 1.
at_chance_run(E, 0) :- E >= 1, \+ at_chance_epoch(E).
at_chance_run(E, N) :-
    E >= 1, at_chance_epoch(E), P is E - 1, at_chance_run(P, M), N is M + 1.

% epochs_at_chance_in_a_row: how many epochs, counted back from the last
% one, were at chance level (0 when the last one was not).
measure(epochs_at_chance_in_a_row, N) :-
    history_stat(epochs, E), at_chance_run(E, N).

% current_train_loss, current_train_loss_over_chance_loss,
% current_train_accuracy_above_chance: the training loss of the last epoch
% (also as a multiple of ln(K)) and how far its training accuracy got from
% chance towards 1 (0 at chance).
measure(current_train_loss, L) :-
    history_stat(epochs, E), epoch_stat(E, train_loss, L).
measure(current_train_loss_over_chance_loss, R) :-
    measure(current_train_loss, L), chance_loss(C), R is L / C.
measure(current_train_accuracy_above_chance, S) :-
    history_stat(epochs, E), epoch_stat(E, train_accuracy, A),
    chance_accuracy(C), S is (A - C) / (1 - C).

% recent_epochs: the last epochs over which the stop rules measure whether
% the loss still falls: min_epochs_at_chance_to_stop of them (defined once
% the history is that long). recent_peak_train_loss: the highest training
% loss among them.
measure(recent_epochs, W) :-
    threshold(min_epochs_at_chance_to_stop, W), history_stat(epochs, E), E >= W.
measure(recent_peak_train_loss, M) :-
    measure(recent_epochs, W), history_stat(epochs, E), F is E - W + 1,
    highest_train_loss(F, E, M).

% highest_train_loss(F, E, M): M is the highest training loss of epochs F to
% E (fails when one of them has none).
highest_train_loss(E, E, M) :- epoch_stat(E, train_loss, M).
highest_train_loss(F, E, M) :-
    F < E, epoch_stat(F, train_loss, L), N is F + 1,
    highest_train_loss(N, E, R), M is max(L, R).

% recent_train_loss_fall_per_epoch: how fast the training loss came down
% over the recent epochs, in shares of ln(K) per epoch: from the highest of
% them to the last, over their epoch-to-epoch steps, (highest - last) /
% steps / ln(K). From the highest, not the first: a loss that peaked inside
% these epochs and is coming down again is recovering. 0 when the last epoch
% is the highest (a loss that only rose).
measure(recent_train_loss_fall_per_epoch, R) :-
    measure(recent_epochs, W), W > 1, measure(recent_peak_train_loss, A),
    measure(current_train_loss, B), chance_loss(C), R is (A - B) / (W - 1) / C.

% epochs_left: how many more epochs the training may run: its epoch budget
% (history_stat(epoch_budget, N), given by the tuner's stop check, never by
% a history diagnosed on its own) minus the epochs run so far.
measure(epochs_left, L) :-
    history_stat(epoch_budget, B), history_stat(epochs, E), L is max(0, B - E).

% projected_train_loss_over_chance_loss: where the training loss would end,
% as a multiple of ln(K), if it kept coming down at its recent pace
% (recent_train_loss_fall_per_epoch) for every epoch left. A straight-line
% guess: a loss on a plateau can also drop suddenly, which is why the stop
% rule that reads it needs the plateau to sit at chance level as well.
measure(projected_train_loss_over_chance_loss, P) :-
    measure(current_train_loss_over_chance_loss, R),
    measure(recent_train_loss_fall_per_epoch, F), measure(epochs_left, L),
    P is R - F * L.


%% --------------------------------------------------------------------------
%% 3. Thresholds
%% --------------------------------------------------------------------------
%% threshold(Name, Value): the value a measure is compared with. Names say the
%% direction: max_X is the largest healthy value of X, min_X the smallest.
%% Scaled thresholds are computed from threshold_factor(Name, F), the editable
%% number, and the scale of the task (section 1).

% threshold_factor(Name, F): the editable number behind the scaled threshold
% Name; the clause of threshold/2 for Name says how it is scaled.

% Overfitting, accuracy: the training accuracy may beat the validation
% accuracy by 8% of the accuracy range above chance, 0.08 * (1 - 1/K):
% 0.072 for 10 classes, 0.04 for 2. The original used a flat 0.2, which
% passes a 0.95 vs 0.76 model; the bias/variance table of the lecture (seed
% 003) calls a 1% vs 12% (and even a 12% vs 20%) error split high variance.
% Both accuracies are measured in inference mode (section 2), so the gap
% compares like with like; on a history without train_eval_accuracy the
% training accuracy is Keras' (dropout on, averaged over the epoch) and the
% gap, if anything, too small.
threshold_factor(max_train_val_accuracy_gap, 0.08).
threshold(max_train_val_accuracy_gap, T) :-
    threshold_factor(max_train_val_accuracy_gap, F), chance_accuracy(C),
    T is F * (1 - C).

% Overfitting, loss: the validation loss may exceed the training loss by a
% tenth of ln(K): 0.23 for 10 classes (the original's 0.2), 0.46 for 100.
threshold_factor(max_train_val_loss_gap, 0.10).
threshold(max_train_val_loss_gap, T) :-
    threshold_factor(max_train_val_loss_gap, F), chance_loss(C), T is F * C.

% Overfitting, turn of the validation curve: a gap counts as overfitting only
% once the validation loss has turned up, ending at least 3% of ln(K) (0.069
% for 10 classes) above its lowest; the same size as a real jump of a
% fluctuating loss (min_mean_rise_for_fluctuation), above the epoch-to-epoch
% jitter of a validation loss still coming down (which also ends a little
% above its lowest: the final value is the mean of the last epochs, so a
% loss still falling over the last two ends half a step above its last
% value). A gap while the validation
% loss is still at its lowest is the generalisation gap of a model that is
% still learning: every epoch still improves it on new data, and making it
% fit its training data less well (dropout, weight decay) slows it down
% without making it better. Measured (issue 13) on the 24 regularisations
% (reg_l2, inc_dropout) that the gap alone asked for in ten seeds of 6-epoch
% trainings on the 3,000-image Fashion-MNIST subset: after the 17 diagnosed
% on a validation loss that had risen by less than this, the next training
% beat the diagnosed one 3 times, by -1.7 points on average; after the 7
% above it, 4 times, by +0.6.
threshold(min_val_loss_rise_for_overfitting, 0.03).

% Underfitting, accuracy: the final training accuracy should get at least 80%
% of the way from chance to a perfect fit (0.82 for 10 classes, 0.90 for 2).
% Below that the model does not even fit the data it is trained on (high
% bias). Judged on the TRAINING accuracy: judged on the validation accuracy
% (as the original did) every overfitted model would look underfitted too.
threshold(min_train_accuracy_above_chance, 0.80).

% Underfitting, loss: the final training loss should fall below half the
% chance-level loss: 1.15 for 10 classes (the original used 1.2, a later
% version ln(K), which only catches a model that learned nothing).
threshold(max_train_loss_over_chance_loss, 0.50).

% Underfitting, flattened curve (issue 13): the last third of the epochs
% must have brought less than a fifth of the whole fall of the training loss
% (a straight line brings a third; a converged curve almost nothing). A
% curve still falling that steeply at the end is under-trained: more epochs
% would lower it further, while more capacity would only be trained as
% briefly. The same share, seen from the other side, as
% min_late_drop_share_for_low_lr. The test needs a curve of at least
% min_epochs_for_shape_tests epochs: with 2 every curve is a straight line.
threshold(max_late_drop_share_for_underfitting, 0.20).

% Curve-shape tests (increasing loss, learning rate, underfitting's
% flattened curve) need at least 3 epochs: with 2 there is a single step,
% and every curve is a straight line.
threshold(min_epochs_for_shape_tests, 3).

% The fluctuation test counts directions, which means little below 4 steps.
threshold(min_epochs_for_fluctuation_test, 5).

% Increasing loss: the training loss rose in more than half of the steps
% (SoftwareX Table 1).
threshold(max_rising_train_loss_step_share, 0.5).

% Stuck at chance: the final training accuracy got less than 10% of the way
% from chance to a perfect fit (0.19 for 10 classes)... Measured without
% dropout on a fixed subset, a network whose loss sits at ln(K) still scores
% a few points above 1/K by leaning to the commonest classes (Adadelta at
% 2.8e-4 on digits: 0.168 at a loss of 0.998 ln(K)); 5% missed it.
threshold(max_train_accuracy_above_chance_when_stuck, 0.10).

% ...and the final training loss is still at least 0.95 ln(K): the model
% still predicts about uniformly. (Together with "no real fall" and "no
% overshoot", below, the loss sat at ln(K) from the first epoch.)
threshold(min_stuck_loss_over_chance_loss, 0.95).

% Low learning rate, barely moving: after all its epochs the training loss
% is still at least 0.9 ln(K), within a tenth of chance level (see the
% second cause of low_lr).
threshold(min_slow_loss_over_chance_loss, 0.90).

% Increasing loss, size: the loss must also have climbed by at least 2% of
% ln(K) (0.046 for 10 classes) from the first to the last epoch. A loss flat
% at chance level rises in half of its steps by noise alone (a few 1e-4): the
% step count says "rising", the size says it went nowhere (issue 13: 5 of 12
% such curves were read as increasing loss and sent the learning rate down).
threshold(min_train_loss_rise_for_increasing, 0.02).

% Fluctuating loss, counts: the rarer direction must occur at least half as
% often as the commoner one (e.g. 7 ups for 14 downs).
threshold(min_up_down_balance_for_fluctuation, 0.5).

% Fluctuating loss, amplitude: the rises must undo at least a third of the
% falls (a quarter of all movement). A noisy but converging curve moves up
% by little and down by much, and stays well below this.
threshold(min_rise_share_for_fluctuation, 0.25).

% Fluctuating loss, size: the loss must jump back up by at least 3% of ln(K)
% on average (0.069 for 10 classes). Epoch-averaged training losses of a
% healthy run jitter by much less, and jitter on a converged or stuck loss,
% however frequent, is not fluctuation.
threshold(min_mean_rise_for_fluctuation, 0.03).

% Learning-rate shape tests need the loss to have fallen by at least 2% of
% ln(K) over the curve; the area ratio of a flat curve is only noise.
threshold(min_train_loss_drop_for_shape, 0.02).

% Learning-rate shape tests also need a mostly falling curve: rises below a
% quarter of all movement, the complement of the fluctuation test. The area
% ratio of a loss that jumps up and down measures the jumps, not the descent.
threshold(max_rise_share_for_shape_tests, 0.25).

% Low learning rate: the curve is close to its chord (area ratio below 1/4,
% the SoftwareX threshold): it fell at about the same slow speed all along...
threshold(max_area_ratio_for_low_lr, 0.25).

% ...and it is still falling: the last third of the epochs brought at least
% a fifth of the whole fall (a straight line brings a third). A converged
% curve is left alone, however straight its first part.
threshold(min_late_drop_share_for_low_lr, 0.20).

% High learning rate, shape: the curve collapsed at once and then stayed
% flat (area ratio above 3/4, the SoftwareX threshold; but a healthy
% exponential decay with a time constant of 3 epochs out of 30 reaches 0.8
% too, hence the plateau test below)...
threshold(min_area_ratio_for_high_lr, 0.75).

% ...and the plateau it stalled on is high: above a quarter of ln(K) (0.58
% for 10 classes). A fast convergence to a low loss is an easy task, not a
% too-large step.
threshold(min_plateau_loss_for_high_lr, 0.25).

% High learning rate, divergence: any NaN or inf loss.
threshold(max_non_finite_loss_epochs, 0).

% High learning rate, explosion: a training loss above twice ln(K); a fresh
% network starts near ln(K), so the loss blew up.
threshold(max_train_loss_peak_over_chance_loss, 2.0).

% High learning rate, overshoot-and-collapse: the loss went above 1.2 ln(K)...
threshold(min_overshoot_peak_over_chance_loss, 1.2).

% ...and ended at chance level, at least 0.95 ln(K): the outputs saturated
% and the network now predicts the uniform distribution.
threshold(min_collapsed_loss_over_chance_loss, 0.95).

% --- Stopping a training early (issue 14; the stop causes of section 5) --
% A training is stopped only for what no more epochs can fix, or for what
% the epochs it has left cannot. Without its epoch budget (a history
% diagnosed on its own) a merely slow training (a loss that falls, however
% slowly) is never stopped: every stop cause but divergence needs a loss
% that has stopped falling. With it, a training at chance level whose loss
% falls too slowly to leave chance level before its epochs run out is
% stopped as well (the second stuck_at_chance cause).

% No training is stopped for sitting at chance level before it has run 4
% epochs (a diverged one is stopped at once). The diagnosis' own curve tests
% need 3 epochs; the 4th gives a network that starts on a plateau at ln(K)
% one more step to show that it moves.
threshold(min_epochs_before_stop, 4).

% The training must have been at chance level (at_chance_epoch, section 2)
% in each of the last 3 epochs in a row, not only on average: one epoch
% that left chance level, however noisy, resets the count. The fall of the
% loss is measured over the same 3 epochs (2 epoch-to-epoch steps).
threshold(min_epochs_at_chance_to_stop, 3).

% ...and over those epochs the training loss came down (from the highest
% of them to the last, recent_train_loss_fall_per_epoch) by less than 0.1%
% of ln(K) per epoch (0.0023 for 10 classes): the noise floor. A loss sitting
% at ln(K) jitters by a few 1e-4 (see min_train_loss_rise_for_increasing);
% one falling more slowly than this would need more than 100 epochs even to
% leave the band that low_lr calls barely moving (down to 0.9 ln(K),
% min_slow_loss_over_chance_loss), while the slow descents seen on real
% runs fall three times faster or more (RMSprop at 1.6e-4 on digits: 2% of
% ln(K) in 6 epochs).
threshold(max_train_loss_fall_per_epoch_when_stuck, 0.001).

% A stop rule may be given a weight (0.8::stop_cause(...) or a weighted
% stop_training/1 clause); the training is then stopped only when ProbLog
% gives the reason at least even odds. The shipped stop rules are certain.
threshold(min_stop_probability, 0.5).


%% --------------------------------------------------------------------------
%% 4. Conditions
%% --------------------------------------------------------------------------
%% A condition compares a measure with a threshold; causes (section 5) are
%% lists of conditions, so explanations can quote each one with its numbers.

% holds(Condition): Condition is true for this training. Conditions are
%   above(M, T)     measure M > threshold T
%   below(M, T)     measure M < threshold T
%   at_least(M, T)  measure M >= threshold T
%   at_most(M, T)   measure M =< threshold T
% A condition on a measure that is absent fails.
holds(above(M, T)) :- measure(M, V), threshold(T, L), V > L.
holds(below(M, T)) :- measure(M, V), threshold(T, L), V < L.
holds(at_least(M, T)) :- measure(M, V), threshold(T, L), V >= L.
holds(at_most(M, T)) :- measure(M, V), threshold(T, L), V =< L.

% all_hold(Conditions): every condition of the list holds.
all_hold([]).
all_hold([C | Cs]) :- holds(C), all_hold(Cs).


%% --------------------------------------------------------------------------
%% 5. Causes: the evidence for each problem
%% --------------------------------------------------------------------------
% cause(Problem, Conditions): Problem is diagnosed when all Conditions hold.
% A problem with several causes is diagnosed when any of them holds.

% Overfitting (high variance): the model fits its training data clearly
% better than the validation data, and the validation loss has turned up
% from its lowest (a gap while it is still falling is not overfitting yet:
% the note generalisation_gap says so, section 6). It says nothing about how
% well the model fits the training data: a model can overfit and underfit
% at once.
cause(overfitting, [above(train_val_accuracy_gap, max_train_val_accuracy_gap),
                    above(val_loss_rise_over_chance_loss, min_val_loss_rise_for_overfitting)]).
cause(overfitting, [above(train_val_loss_gap, max_train_val_loss_gap),
                    above(val_loss_rise_over_chance_loss, min_val_loss_rise_for_overfitting)]).

% Underfitting (high bias): poor performance on the TRAINING data itself,
% once training has run its course. A model that fits its training data
% almost perfectly is never underfitting, however badly it generalises. A
% training whose loss was still falling steeply at the end has not run its
% course: it lacks epochs, not capacity, and is not underfitting (the note
% still_improving says so, section 6); nor is a history too short to tell.
cause(underfitting,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       below(train_accuracy_above_chance, min_train_accuracy_above_chance),
       below(train_loss_still_falling_share, max_late_drop_share_for_underfitting)]).
cause(underfitting,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       above(train_loss_over_chance_loss, max_train_loss_over_chance_loss),
       below(train_loss_still_falling_share, max_late_drop_share_for_underfitting)]).

% Stuck at chance (issue 13): the training never left chance level. The loss
% sat at ln(K) from the first epoch (it neither fell measurably nor
% overshot) and the training accuracy stayed at 1/K. A quarter of the random
% configurations of the paper's space do this (Adadelta at 1e-4..1e-3 in
% a few epochs). It is not a lack of capacity: the optimiser never moved the
% weights, so more neurons or layers cannot help; the learning rate or the
% optimiser can. It replaces underfitting, which would ask for capacity.
cause(stuck_at_chance,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       below(train_accuracy_above_chance, max_train_accuracy_above_chance_when_stuck),
       at_least(train_loss_over_chance_loss, min_stuck_loss_over_chance_loss),
       below(train_loss_drop_over_chance_loss, min_train_loss_drop_for_shape),
       at_most(train_loss_peak_over_chance_loss, min_overshoot_peak_over_chance_loss)]).

% ...or its loss fell a little, then flattened still within a tenth of
% ln(K) of chance level (min_slow_loss_over_chance_loss), and the training
% accuracy never left 1/K. The fall is too large for the cause above, and
% the curve too flat for low_lr's shape test, so without this cause the
% final values would read as underfitting and ask for capacity. Seen on the
% 3,000-image Fashion-MNIST subset: Adadelta at 3.2e-4 (training loss 1.08
% -> 1.05 ln(K) in 4 epochs, 0.99 ln(K) without dropout at the end, accuracy
% 0.155; stopped as stuck at chance) and at 2.0e-4 with batches of 247 (1.12
% -> 1.10 ln(K) in 6 epochs, accuracy 0.096). A slow curve still falling
% steeply at the end is left to low_lr: it is moving.
cause(stuck_at_chance,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       below(train_accuracy_above_chance, max_train_accuracy_above_chance_when_stuck),
       at_least(train_loss_over_chance_loss, min_slow_loss_over_chance_loss),
       below(train_loss_still_falling_share, max_late_drop_share_for_underfitting),
       at_most(train_loss_peak_over_chance_loss, min_overshoot_peak_over_chance_loss)]).

% Increasing loss: the training loss rose in most epoch-to-epoch steps, and
% by a measurable amount overall.
cause(increasing_loss,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       above(rising_train_loss_step_share, max_rising_train_loss_step_share),
       above(train_loss_rise_over_chance_loss, min_train_loss_rise_for_increasing)]).

% Fluctuating loss: the training loss went up about as often as down, the
% rises undid a real part of the falls, and they were jumps, not jitter.
cause(fluctuating_loss,
      [at_least(train_loss_curve_epochs, min_epochs_for_fluctuation_test),
       at_least(train_loss_up_down_balance, min_up_down_balance_for_fluctuation),
       at_least(train_loss_rise_share, min_rise_share_for_fluctuation),
       at_least(train_loss_mean_rise_over_chance_loss, min_mean_rise_for_fluctuation)]).

% The learning-rate tests read the TRAINING loss, not the validation loss:
% the learning rate sets how fast the optimiser descends the training
% objective, while the validation loss also turns up when overfitting starts
% (a U shape that would read as "collapsed") and is noisier.

% Low learning rate: the loss fell measurably and mostly steadily, along an
% almost straight line (or slower at first), and is still falling at the end.
cause(low_lr,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       above(train_loss_drop_over_chance_loss, min_train_loss_drop_for_shape),
       below(train_loss_rise_share, max_rise_share_for_shape_tests),
       below(train_loss_area_ratio, max_area_ratio_for_low_lr),
       at_least(train_loss_late_drop_share, min_late_drop_share_for_low_lr)]).

% ...or it barely moved: after all its epochs the training loss is still
% within a tenth of ln(K) of chance level, although the model learned
% something (its accuracy left chance: not stuck) and the loss did not climb
% or overshoot. The fall is then below the noise floor of the shape tests
% above, which see nothing, yet it is the plainest sign of a step too small
% for the epochs it had (RMSprop at 1.6e-4 with batches of 216 on digits:
% 0.98 ln(K) after 6 epochs; underfitting would ask for capacity).
cause(low_lr,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       at_least(train_loss_over_chance_loss, min_slow_loss_over_chance_loss),
       at_least(train_accuracy_above_chance, max_train_accuracy_above_chance_when_stuck),
       at_most(train_loss_peak_over_chance_loss, min_overshoot_peak_over_chance_loss),
       below(train_loss_rise_share, max_rise_share_for_shape_tests)]).

% High learning rate: the training diverged (NaN or inf loss)...
cause(high_lr, [above(non_finite_loss_epochs, max_non_finite_loss_epochs)]).

% ...or the loss exploded far above the chance-level loss...
cause(high_lr, [above(train_loss_peak_over_chance_loss, max_train_loss_peak_over_chance_loss)]).

% ...or it overshot and ended stuck at chance level without coming down (a
% loss flat at ln(K) from the first epoch is left to underfitting: there a
% too-large and a too-small step look alike). "Without coming down" matters:
% a loss that starts above ln(K) because of the initialisation (batch norm
% with elu/selu, say) and then descends slowly and steadily is the mark of a
% step too SMALL, seen on real runs with Adadelta at 1e-4.
cause(high_lr,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       above(train_loss_peak_over_chance_loss, min_overshoot_peak_over_chance_loss),
       at_least(train_loss_over_chance_loss, min_collapsed_loss_over_chance_loss),
       below(train_loss_drop_over_chance_loss, min_train_loss_drop_for_shape)]).

% ...or it collapsed in the first epochs and then stalled on a high plateau
% (a mostly falling curve, so the area ratio describes its shape).
cause(high_lr,
      [at_least(train_loss_curve_epochs, min_epochs_for_shape_tests),
       above(train_loss_drop_over_chance_loss, min_train_loss_drop_for_shape),
       below(train_loss_rise_share, max_rise_share_for_shape_tests),
       above(train_loss_area_ratio, min_area_ratio_for_high_lr),
       above(train_loss_over_chance_loss, min_plateau_loss_for_high_lr)]).


% --- Stop causes (issue 14) ------------------------------------------------
% stop_cause(Reason, Conditions): a training still running is stopped, for
% Reason, when all Conditions hold on its history so far (section 6). Reason
% is one of STOP_REASONS of sdt/core/vocabulary.py. Each is a problem that
% no more epochs can fix; the conditions that only say "the loss does not
% fall" keep every training that is merely slow running.

% Diverged: a NaN or infinite loss, at once. (The tuner's trainer stops
% such a training itself, pruning or not, and records it as diverged; the
% rule says the same for a trainer that does not.)
stop_cause(diverged, [above(non_finite_loss_epochs, max_non_finite_loss_epochs)]).

% Stuck at chance: after at least min_epochs_before_stop epochs, the last
% min_epochs_at_chance_to_stop epochs in a row were at chance level (loss at
% ln(K), accuracy at 1/K), the loss is not falling, and it never overshot:
% the optimiser does not move the weights (Adadelta at 1e-6, say), and more
% epochs of the same will not either.
stop_cause(stuck_at_chance,
      [at_least(epochs, min_epochs_before_stop),
       at_least(epochs_at_chance_in_a_row, min_epochs_at_chance_to_stop),
       below(recent_train_loss_fall_per_epoch, max_train_loss_fall_per_epoch_when_stuck),
       at_most(train_loss_peak_over_chance_loss, min_overshoot_peak_over_chance_loss)]).

% Stuck at chance with too few epochs left to leave it: the same, except
% that the loss still falls, slowly: at its recent pace it would still be
% within a tenth of ln(K) of chance level (min_slow_loss_over_chance_loss,
% the band low_lr calls barely moving) when the training's epochs run out.
% A budget of 6 epochs ends Adadelta at 4e-3 on digits at 0.99 ln(K): its
% last two epochs cannot help. Needs the epoch budget (epochs_left), so it
% only ever stops a training the tuner runs; the same pace with many epochs
% left keeps training.
stop_cause(stuck_at_chance,
      [at_least(epochs, min_epochs_before_stop),
       at_least(epochs_at_chance_in_a_row, min_epochs_at_chance_to_stop),
       at_least(projected_train_loss_over_chance_loss, min_slow_loss_over_chance_loss),
       at_most(train_loss_peak_over_chance_loss, min_overshoot_peak_over_chance_loss)]).

% Overshot and never recovered: the same, but the loss went above
% min_overshoot_peak_over_chance_loss ln(K) first (the high_lr cause
% overshoot-and-collapse, seen early). A loss that comes back down from its
% peak, however slowly, is falling and keeps training.
stop_cause(overshot,
      [at_least(epochs, min_epochs_before_stop),
       at_least(epochs_at_chance_in_a_row, min_epochs_at_chance_to_stop),
       below(recent_train_loss_fall_per_epoch, max_train_loss_fall_per_epoch_when_stuck),
       above(train_loss_peak_over_chance_loss, min_overshoot_peak_over_chance_loss)]).


%% --------------------------------------------------------------------------
%% 6. Diagnosis
%% --------------------------------------------------------------------------

% because(Problem, Conditions): one cause of Problem whose conditions all hold.
because(P, Conditions) :- cause(P, Conditions), all_hold(Conditions).

% problem(Problem): Problem is diagnosed in this training.
% A too-low and a too-high learning rate exclude each other: the two actions
% undo each other. When a curve shows signs of both (a slow, straight descent
% after an explosion far above the chance-level loss), the too-high signs
% win: divergence and explosion are the more harmful, and raising the
% learning rate of a run that already exploded would make it worse.
problem(P) :- because(P, _), P \= low_lr, P \= underfitting.
problem(low_lr) :- because(low_lr, _), \+ because(high_lr, _).
% A training stuck at chance level is not underfitting: its model never
% learned anything, so capacity is not what it lacks (see stuck_at_chance).
problem(underfitting) :- because(underfitting, _), \+ because(stuck_at_chance, _).

% stop_because(Reason, Conditions): one stop cause of Reason whose
% conditions all hold on the history so far.
stop_because(R, Conditions) :- stop_cause(R, Conditions), all_hold(Conditions).

% stop_training(Reason): stop the training now, for Reason (issue 14). The
% tuner asks after every epoch but the last, with --prune (the default of
% the symbolic strategies); the stopped training is recorded as pruned, with
% the explanation of stop_because/2, and keeps the metrics of its best epoch.
stop_training(R) :- stop_because(R, _).

% note(N): a remark on the evidence itself, shown with the diagnosis:
%   short_history            too few epochs for any curve-shape test
%   no_fluctuation_test      enough epochs for the other shape tests, not for
%                            the fluctuation test
%   non_finite_loss          the loss became NaN or inf; the curve tests only
%                            see the epochs before
%   still_improving          the final values say underfitting, but the
%                            training loss was still falling steeply at the
%                            end, so underfitting was not diagnosed: more
%                            epochs, not more capacity, would help
%   generalisation_gap       the training data are fitted clearly better than
%                            the validation data, but the validation loss
%                            was still at (or near) its lowest at the end,
%                            so overfitting was not diagnosed
note(short_history) :-
    measure(epochs, N), threshold(min_epochs_for_shape_tests, M), N < M.
note(no_fluctuation_test) :-
    measure(epochs, N), threshold(min_epochs_for_shape_tests, M),
    threshold(min_epochs_for_fluctuation_test, F), N >= M, N < F.
note(non_finite_loss) :- measure(non_finite_loss_epochs, N), N > 0.
note(still_improving) :-
    underfitting_evidence,
    holds(at_least(train_loss_curve_epochs, min_epochs_for_shape_tests)),
    holds(at_least(train_loss_still_falling_share, max_late_drop_share_for_underfitting)).

note(generalisation_gap) :-
    overfitting_evidence,
    \+ holds(above(val_loss_rise_over_chance_loss, min_val_loss_rise_for_overfitting)).

% overfitting_evidence: a gap test of overfitting holds (the conditions of the
% causes of overfitting other than the turn of the validation loss).
overfitting_evidence :-
    holds(above(train_val_accuracy_gap, max_train_val_accuracy_gap)).
overfitting_evidence :-
    holds(above(train_val_loss_gap, max_train_val_loss_gap)).

% underfitting_evidence: a final-value test of underfitting holds (the
% conditions of the causes of underfitting other than the flattened curve).
underfitting_evidence :-
    holds(below(train_accuracy_above_chance, min_train_accuracy_above_chance)).
underfitting_evidence :-
    holds(above(train_loss_over_chance_loss, max_train_loss_over_chance_loss)).


%% --------------------------------------------------------------------------
%% 7. Wording of the explanations
%% --------------------------------------------------------------------------
%% An explanation quotes each condition of a cause that held, e.g.
%%   overfitting: training accuracy 0.95 vs validation 0.76, gap 0.19 >
%%   threshold 0.072 (max_train_val_accuracy_gap)
%% The part before the comparison says the measure in words; it comes from
%% the phrase below. A measure without a phrase is said by its name and
%% value ("train_loss_area_ratio 0.12"), so a copy of this file without this
%% section still works, with plainer explanations.

% phrase(Measure, Text): how an explanation says Measure in words. Text is a
% double-quoted string, or a list of strings that are joined (to keep lines
% short). In Text, {value} stands for the value of Measure and {Name} for the
% value of the measure Name (a measure/2 of section 2); numbers are written
% with 3 significant digits. If a quoted measure is absent from a training,
% the plain wording is used instead. These facts only word the explanation:
% they decide nothing.
%
% Overfitting: the two final accuracies (losses) beside their gap.
phrase(train_val_accuracy_gap,
       "training accuracy {final_train_accuracy} vs validation {final_val_accuracy}, gap {value}").
phrase(train_val_loss_gap,
       "validation loss {final_val_loss} vs training loss {final_train_loss}, gap {value}").

% ...and how far the validation loss ended above its lowest.
phrase(val_loss_rise_over_chance_loss,
       ["the validation loss ended at {final_val_loss}, {value} times ln(K) ",
        "({chance_loss}) above its lowest, {lowest_val_loss}"]).

% Underfitting: the final training accuracy (loss) beside the chance level it
% is measured against.
phrase(train_accuracy_above_chance,
       ["final training accuracy {final_train_accuracy} got {value} of the way ",
        "from chance ({chance_accuracy}) to 1"]).
phrase(train_loss_over_chance_loss,
       ["final training loss {final_train_loss} is {value} times the chance-level loss ",
        "ln(K) ({chance_loss})"]).

% High learning rate: the peak of the loss against ln(K), and the epochs
% whose loss was not a number.
phrase(train_loss_peak_over_chance_loss,
       "peak training loss {peak_train_loss} is {value} times ln(K) ({chance_loss})").
phrase(non_finite_loss_epochs,
       ["{value} epoch(s) with a NaN or infinite loss, the first at epoch ",
        "{first_non_finite_loss_epoch}"]).

% Increasing and fluctuating loss: the counts and sizes of the steps.
phrase(rising_train_loss_step_share,
       ["the training loss rose in {train_loss_up_steps} of {train_loss_steps} ",
        "epoch-to-epoch steps, share {value}"]).
phrase(train_loss_up_down_balance,
       "{train_loss_up_steps} rising vs {train_loss_down_steps} falling steps, balance {value}").
phrase(train_loss_rise_share,
       ["rises totalling {train_loss_rise_total} against falls of {train_loss_fall_total}, ",
        "rise share {value}"]).
phrase(train_loss_mean_rise_over_chance_loss,
       "the training loss jumped back up by {value} times ln(K) ({chance_loss}) on average").

phrase(train_loss_rise_over_chance_loss,
       ["the training loss went from {first_train_loss} to {last_train_loss}, ",
        "a rise of {value} times ln(K) ({chance_loss})"]).

% Learning-rate shape: how far the loss fell and the shape of its curve.
phrase(train_loss_drop_over_chance_loss,
       ["the training loss went from {first_train_loss} to {last_train_loss}, ",
        "a fall of {value} times ln(K) ({chance_loss})"]).
phrase(train_loss_area_ratio,
       ["area between the training-loss curve and its chord {value} of the triangle under ",
        "the chord"]).
phrase(train_loss_late_drop_share, "the last third of the epochs brought {value} of the fall").

% Underfitting, flattened curve: the same share (0 for a loss that did not
% fall measurably).
phrase(train_loss_still_falling_share,
       ["the last third of the epochs brought {value} of the fall of the training loss ",
        "(0: no measurable fall)"]).

% Stop rules: how many epochs sat at chance level, and how fast the loss fell
% over the last of them.
phrase(epochs_at_chance_in_a_row,
       ["{value} epochs in a row at chance level (the last: training loss ",
        "{current_train_loss_over_chance_loss} times ln(K), training accuracy ",
        "{current_train_accuracy_above_chance} of the way from chance to 1)"]).
phrase(projected_train_loss_over_chance_loss,
       ["falling at that pace for the {epochs_left} epoch(s) left, the training ",
        "loss would end at {value} times ln(K)"]).
phrase(recent_train_loss_fall_per_epoch,
       ["over the last {recent_epochs} epochs the training loss came down from its ",
        "highest, {recent_peak_train_loss}, to {current_train_loss}: {value} times ",
        "ln(K) per epoch"]).

% Lengths of the history (the explanations leave out the conditions that
% only gate the curve tests, but a user's cause may quote them).
phrase(train_loss_curve_epochs, "{value} epochs of finite training loss").
phrase(epochs, "{value} epochs").
