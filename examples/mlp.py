"""An example of your own model for Symbolic DNN-Tuner: a multilayer perceptron.

    python3 main.py --dataset digits --model examples/mlp.py:build_mlp \
        --search-space examples/mlp_space.json --max-evals 5 --epochs 10

The tuner calls `build_mlp(params, architecture, input_shape, num_classes)` once per training
and trains what it returns. The model is returned uncompiled, so the tuner compiles it with
the trial's `optimizer` and `learning_rate` (and its loss and accuracy metric), and the
learning-rate actions reach it. `supports` declares the architecture actions this model
applies; the rules never choose the others (data_augmentation, new_conv_layer here) and fall
back to the problem's next action.
"""

import keras


def build_mlp(params, architecture, input_shape, num_classes):
    """Flatten, Dense(unit_d) act, Dropout(dr_f), one Dense(unit_d2, unit_d3...) per added layer,
    softmax; L2 on every kernel (factor l2_factor) once reg_l2 applied, batch normalisation after
    every hidden layer once add_batch_norm applied."""
    regularizer = keras.regularizers.L2(params["l2_factor"]) if architecture.l2 else None
    # new_fc_layer adds the widths unit_d2, unit_d3... to the search space, one per added layer.
    widths = [params["unit_d"]] + [params[f"unit_d{i + 2}"] for i in range(architecture.extra_dense_layers)]
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    for width in widths:
        x = keras.layers.Dense(width, activation=params["activation"], kernel_regularizer=regularizer)(x)
        if architecture.batch_norm:
            # momentum 0.9 (Keras' default is 0.99): the moving statistics that validation uses
            # warm up within about 20 steps, so a short training does not validate at chance.
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Dropout(params["dr_f"])(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=regularizer)(x)
    return keras.Model(inputs, outputs, name="mlp")


# The architecture actions this model applies (see README, "Your own model").
build_mlp.supports = {"new_fc_layer", "reg_l2", "add_batch_norm"}
