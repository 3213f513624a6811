%% ==========================================================================
%% tuning_rules.pl -- Symbolic DNN-Tuner: symbolic tuning rules (STRs)
%% ==========================================================================
%%
%% Maps each problem diagnosed by diagnosis.pl to the tuning actions that may
%% fix it (SoftwareX Table 2, LFI paper Listing 1). It answers
%%
%%   action(Action, Problem)   Action is a candidate fix for the diagnosed
%%                             Problem; its probability is the rule's weight
%%
%% and declares
%%
%%   excludes(Action, Other)   Action and Other are never applied together
%%                             after one training (last section)
%%
%% Each weight is "the probability that applying the action helps" when the
%% problem is diagnosed. After each training the tuner takes the most probable
%% applicable action (ties broken by the run's seeded random generator);
%% problems choose in order of their best action's probability, and an
%% action that excludes one already chosen is passed over
%% (sdt/symbolic/policy.py). Under --guidance prior the action is always
%% applied, as a preference as strong as its weight; under --guidance edit it
%% is applied with its weight as the probability.
%%
%% Learnable weights are written t(p)::, where p is the initial weight (the
%% prior). After every training, ProbLog LFI (sdt/symbolic/rule_learning.py) updates
%% the weights from whether the actions applied before it improved the
%% result. The learned weights belong to the run: they are stored with the
%% run's outputs and substituted for the t(p) annotations in memory; this
%% file is never rewritten. A prior must lie strictly between 0 and 1: a rule
%% at 0 or 1 could never learn (the original's weights of 0.99 are 0.9 here).
%%
%% The rule head names the problem as well as the action, so the same action
%% for two problems (decr_lr for underfitting and for high_lr, ...) is two
%% rules with two weights: lowering the learning rate may cure a too-high
%% learning rate and do nothing for an underfitting model.
%% Every atom is a name of sdt/core/vocabulary.py.


%% --------------------------------------------------------------------------
%% Overfitting (high variance)
%% --------------------------------------------------------------------------

% action(reg_l2, overfitting): L2 weight decay on every conv and dense
% kernel (only that: batch normalisation is add_batch_norm, since issue 13).
% Prior 0.9: the first remedy tried (original 0.99, "always applied once":
% once applied the tuner lists it as not applicable, so the weight need not
% say so); below 1 so that failures can lower it.
t(0.9)::action(reg_l2, overfitting) :- problem(overfitting).

% action(inc_dropout, overfitting): raise the dropout ranges. Prior 0.4
% (original): helps, but dropout is already searched over by BO.
t(0.4)::action(inc_dropout, overfitting) :- problem(overfitting).

% action(data_augmentation, overfitting): random shifts and flips, for a
% training of at least min_epochs_for_augmentation epochs (below). Prior 0.6
% (original): more varied training data is the surest cure of high variance
% after regularisation, once the training is long enough to profit from it.
t(0.6)::action(data_augmentation, overfitting) :-
    problem(overfitting), history_stat(epochs, Epochs),
    min_epochs_for_augmentation(Least), Epochs >= Least.

% min_epochs_for_augmentation(N): augmentation is a remedy only for trainings
% of N epochs or more. Shifted and mirrored images are harder to fit than
% the originals, so a network trained on them learns more slowly; the
% variety pays back only over many passes through the data. Measured over
% the 172 distinct non-Adadelta trainings of 6 epochs in the 3,000-image
% Fashion-MNIST benchmark runs (docs/benchmarks.md, every arm): the 15 with
% augmentation reached a median validation accuracy of 0.783 against 0.820
% without, none of them was among the 58 that reached 0.83, and 4 of the 5
% that followed an augmentation preference were diagnosed underfitting. 20
% is a judgement, not a measurement: more than three times the epochs at
% which it failed, and where examples of augmented training usually start.
min_epochs_for_augmentation(20).


%% --------------------------------------------------------------------------
%% Underfitting (high bias)
%% --------------------------------------------------------------------------

% action(decr_lr, underfitting): lower the learning-rate range. Prior 0.3
% (original): a smaller step helps only when the optimiser overshoots.
t(0.3)::action(decr_lr, underfitting) :- problem(underfitting).

% action(inc_neurons, underfitting): raise the lower bounds of the filter and
% unit counts. Prior 0.5 (original): more capacity is the textbook fix of
% high bias and the cheapest way to get it.
t(0.5)::action(inc_neurons, underfitting) :- problem(underfitting).

% action(decr_batch_size, underfitting): search batch sizes of at most half
% the one the training used, when that batch was large
% (large_batch_for_slow_training, below in the low_lr section). In a fixed
% number of epochs a large batch means few optimiser steps, and a model that
% got few steps fits its training data poorly whatever its capacity. Over the
% 870 distinct digits trainings of 6 epochs in this project's benchmark runs
% (every arm and commit, Adadelta left out), the 28 diagnosed underfitting
% had a median batch of 167 against 79 for the others; of the 57 diagnosed
% underfitting with Adadelta's, 54 used a batch of 64 or more. Prior 0.6, above
% inc_neurons: fewer steps are the likelier cause of a poor fit in a short
% training; if the smaller batch does not help, learning lowers the weight
% and capacity is tried next.
t(0.6)::action(decr_batch_size, underfitting) :-
    problem(underfitting), hyperparameter(batch_size, Batch),
    large_batch_for_slow_training(Large), Batch >= Large.

% action(inc_lr, underfitting): raise the learning-rate range, when the
% training used a rate well below its optimiser's usual one (small_rate,
% below). Steps that small leave a model short of its training data in a
% short training for lack of progress, not of capacity. Measured over the
% 79 distinct non-Adadelta trainings of 6 epochs in the 3,000-image
% Fashion-MNIST benchmark runs (docs/benchmarks.md, bo and sdt-prior, seeds
% 0-3): below a rate of 2.5e-4 the median validation accuracy was 0.74-0.81
% whatever the batch, and 21 of 29 were diagnosed underfitting; from 2.5e-4
% up it was 0.79-0.84, and 9 of 50 were. The capacity actions taken for those 21
% grew networks that trained with the same small steps. Prior 0.7, above
% decr_batch_size (0.6): at such a rate a smaller batch helps (0.81 with
% batches of 16-47) but less than a larger rate at any batch; if the
% larger rate does not help, learning lowers the weight and the batch or
% capacity is tried next.
t(0.7)::action(inc_lr, underfitting) :-
    problem(underfitting), hyperparameter(optimizer, Optimizer),
    hyperparameter(learning_rate, Rate), small_rate(Optimizer, Small), Rate < Small.

% small_rate(Optimizer, Rate): below Rate, a training with Optimizer (a value
% of the optimizer hyper-parameter, lower case) takes small steps: a quarter
% of Keras' default rate for it (1e-3 for Adam, Adamax and RMSprop, 1e-2 for
% SGD). Adadelta has none: its default rate is 1.0 in Zeiler's paper, every
% rate of the paper's space is small for it, and change_optimizer, not
% inc_lr, is its remedy (low_lr and stuck_at_chance sections).
small_rate(adam, 0.00025).
small_rate(adamax, 0.00025).
small_rate(rmsprop, 0.00025).
small_rate(sgd, 0.0025).

% action(new_fc_layer, underfitting): insert a fully connected layer. Prior
% 0.45 (original): more capacity, but a new dimension for BO to search.
t(0.45)::action(new_fc_layer, underfitting) :- problem(underfitting).

% action(new_conv_layer, underfitting): insert a convolutional block. Prior
% 0.45 (original): as new_fc_layer; the seeded generator breaks the tie.
t(0.45)::action(new_conv_layer, underfitting) :- problem(underfitting).

% action(add_batch_norm, underfitting): batch normalisation after every
% hidden activation. Normalised activations keep every layer in the range
% where its activation still has a slope, so the optimiser reaches a lower
% training loss in the same epochs. Prior 0.3 (new in issue 13, when batch
% normalisation stopped riding along with reg_l2): low, because in a very
% short training the moving statistics that validation uses may not have
% settled yet, and because it adds no capacity.
t(0.3)::action(add_batch_norm, underfitting) :- problem(underfitting).


%% --------------------------------------------------------------------------
%% Increasing loss
%% --------------------------------------------------------------------------

% action(decr_lr, increasing_loss): lower the learning-rate range. Prior 0.9
% (original 0.99): a training loss that climbs is the typical sign of steps
% that overshoot.
t(0.9)::action(decr_lr, increasing_loss) :- problem(increasing_loss).


%% --------------------------------------------------------------------------
%% Fluctuating loss
%% --------------------------------------------------------------------------

% action(inc_batch_size, fluctuating_loss): raise the batch-size lower bound.
% Prior 0.85 (original): larger batches average out the gradient noise that
% makes the loss jump.
t(0.85)::action(inc_batch_size, fluctuating_loss) :- problem(fluctuating_loss).

% action(add_batch_norm, fluctuating_loss): batch normalisation after every
% hidden activation. Normalised activations smooth the optimisation: the
% scale of each layer's input no longer drifts with the weights below it, so
% one step does not throw the loss as far. Prior 0.3 (new in issue 13): the
% second choice after a larger batch, and low, because batch normalisation
% can hurt a very short training (the moving statistics that validation
% uses lag behind the weights).
t(0.3)::action(add_batch_norm, fluctuating_loss) :- problem(fluctuating_loss).

% action(decr_lr, fluctuating_loss): lower the learning-rate range. Prior
% 0.15 (original): the last choice, when the batch size cannot grow and
% batch normalisation is on.
t(0.15)::action(decr_lr, fluctuating_loss) :- problem(fluctuating_loss).


%% --------------------------------------------------------------------------
%% Learning rate too low
%% --------------------------------------------------------------------------

% action(inc_lr, low_lr): raise the learning-rate range. Missing in the
% original (low_lr had no rule, so it was diagnosed and never acted on).
% Prior 0.7: the mirror of decr_lr for high_lr, but lower, because a slow,
% straight descent is also what a too-short training looks like, where more
% epochs rather than a larger step would help.
t(0.7)::action(inc_lr, low_lr) :- problem(low_lr).

% action(decr_batch_size, low_lr): search batch sizes of at most half the
% one the training used, when that batch was large (below). A smaller batch
% gives the same epochs more optimiser steps, which a slow curve lacks as
% much as a larger step. Measured over 489 digits trainings of 6 epochs
% (docs/benchmarks.md, "What a slow training lacks"): at learning rates of
% 1e-4 to 3e-4 the median validation accuracy was 0.729 with batches of
% 128-256, 0.854 with 48-127 and 0.938 with 16-47; at 3e-4 to 1e-3, 0.882,
% 0.951 and 0.972; from 1e-3 up the batch hardly mattered. Prior 0.75, above
% inc_lr: with a large batch, fewer and larger steps are the likelier cause,
% and a rate ten times higher moves a slow training into the region where
% the batch stops mattering only half the time. A small batch has its own
% steps to spare, and there inc_lr is the only remedy.
t(0.75)::action(decr_batch_size, low_lr) :-
    problem(low_lr), hyperparameter(batch_size, Batch),
    large_batch_for_slow_training(Large), Batch >= Large.

% large_batch_for_slow_training(B): from a batch of B up, a slow training
% gets a smaller batch first. 64: halved, it reaches the 16-47 batches that
% trained best at low rates in the measurement above.
large_batch_for_slow_training(64).

% action(change_optimizer, low_lr): the optimiser the training used leaves
% the choices (under prior guidance: the optimiser prefers the others), when
% it is one whose step stays tiny at the space's learning rates (below).
% Prior 0.8, above inc_lr, so that for such an optimiser it is tried first:
% the curve of a slowly moving Adadelta training looks like that of a healthy
% optimiser given too few steps (measured over 180 slow trainings, the loss
% fell 0.6-4.6e-4 ln K per step under Adadelta and from 5.2e-4 up under
% the others: no threshold on the curve fits in that gap), but the remedy
% differs: inc_lr prefers rates a few times higher, still far below the
% scale Adadelta needs. In the Fashion-MNIST benchmark every Adadelta
% training diagnosed low_lr was followed by another Adadelta training
% (docs/benchmarks.md). If leaving the optimiser does not help, learning
% lowers this weight and inc_lr takes over. Under prior and local guidance,
% once applied it also leaves a region avoided for good: that optimiser at
% rates up to ten times the diagnosed one, where its steps stay far too
% small (sdt/space/preference.py, avoided_after_slow).
t(0.8)::action(change_optimizer, low_lr) :-
    problem(low_lr), hyperparameter(optimizer, Optimizer), small_step_at_small_rates(Optimizer).

% small_step_at_small_rates(Optimizer): an optimiser (a value of the
% optimizer hyper-parameter, lower case) whose learning rate is a factor on a
% step it already adapts per weight, so that it needs a rate near 1 where the
% others train at 1e-4..1e-2. Keras' Adadelta (default rate 1.0, as in
% Zeiler's paper) is the one of the paper's space. hyperparameter/2 holds the
% values the diagnosed training was trained with (sdt/symbolic/statistics.py,
% hyperparameter_facts); a history diagnosed without them (--diagnose of a
% bare history) has none, and this rule does not fire. Under prior and local
% guidance the facts are also read once, before any training: each optimiser
% they name is avoided from the start at rates up to 1e-2, where the others
% train, with weight 0.9, for good (sdt/space/preference.py,
% avoided_from_the_start): every Adadelta training at 1e-4..1e-3 of the
% benchmarks was stuck at chance or too slow, one wasted training per run on
% Fashion-MNIST 3k before a diagnosis could say so. The facts must be certain.
small_step_at_small_rates(adadelta).


%% --------------------------------------------------------------------------
%% Learning rate too high
%% --------------------------------------------------------------------------

% action(decr_lr, high_lr): lower the learning-rate range. Prior 0.9
% (original 0.99): the direct cure of a diverging or collapsed training.
t(0.9)::action(decr_lr, high_lr) :- problem(high_lr).


%% --------------------------------------------------------------------------
%% Stuck at chance level
%% --------------------------------------------------------------------------

% action(inc_lr, stuck_at_chance): raise the learning-rate range. Prior 0.7:
% a loss that never left ln(K) is most often a step far too small for its
% optimiser (Adadelta at 1e-4..1e-3); never a capacity action, since the
% weights never moved. change_optimizer, below, addresses the other cause.
t(0.7)::action(inc_lr, stuck_at_chance) :- problem(stuck_at_chance).

% action(change_optimizer, stuck_at_chance): the optimiser the training used
% leaves the choices (under prior guidance: the optimiser prefers the
% others). Prior 0.8, above inc_lr: in the paper's space the trainings stuck
% at chance are Adadelta's, whose effective step at rates of 1e-4..1e-3 is
% far too small to move the weights in a few epochs, and a learning rate ten
% times larger is still too small for it; every other optimiser of the space
% trains at those rates. The tuner applies one action per training, so the
% weights decide which of the two causes is tried first, and learning
% corrects the order when the run shows otherwise.
t(0.8)::action(change_optimizer, stuck_at_chance) :- problem(stuck_at_chance).


%% --------------------------------------------------------------------------
%% Where a practitioner starts
%% --------------------------------------------------------------------------
%% start_with(Hyperparameter, Value): the value a practitioner gives the
%% first training before any curve has been read: an optimiser's usual
%% defaults. Under prior and local guidance the run's first training is drawn
%% near them (sdt/space/preference.py, start_region): its optimiser (a value
%% of the optimizer hyper-parameter, lower case), and a learning rate and
%% batch size within a tenth of their range (log scale for the rate) of the
%% values given, clipped to the space; every other hyper-parameter is drawn as
%% for any initial point. The region guides that one training only; the
%% other initial points stay random, so the Gaussian process still sees the
%% space, and from the first diagnosis on the rules above guide. A fact whose
%% hyper-parameter the space lacks, or whose category it does not offer, is
%% passed over (a user's own space). The facts must be certain, one value per
%% hyper-parameter.
%%
%% Why these: Keras' Adam defaults to a rate of 1e-3 and Keras' fit to
%% batches of 32. In the benchmark folders of docs/benchmarks.md (6-epoch
%% trainings), Adam at 7.9e-4..1e-3 with batches up to 56 reached a median
%% validation accuracy of 0.847 on Fashion-MNIST 3k (14 distinct trainings;
%% all 522: 0.820; the random initial points: 0.802) and 0.979 on digits (13;
%% all 364: 0.951).
start_with(optimizer, adam).
start_with(learning_rate, 0.001).
start_with(batch_size, 32).

%% --------------------------------------------------------------------------
%% Actions never applied together
%% --------------------------------------------------------------------------
%% excludes(Action, Other): Action and Other undo each other, so the tuner
%% never applies both after one training. The order does not matter:
%% excludes(a, b) also keeps b from joining a. When two diagnosed problems
%% want two actions that exclude each other, the problem whose best action is
%% more probable gets it and the other problem falls back to its best action
%% that is not excluded (or to none). Both names must be actions of
%% sdt/core/vocabulary.py, and the facts must be certain (no probability).
%% A rules file without excludes/2 lets every action join every other.

% excludes(inc_lr, decr_lr): raising and lowering the learning-rate range in
% the same step would cancel out, and the next training could not tell which
% of the two rules deserved the result. A curve rarely shows both signs
% (diagnosis.pl lets high_lr win over low_lr), but underfitting asks for
% decr_lr too, and it often comes with a too-low learning rate.
excludes(inc_lr, decr_lr).
