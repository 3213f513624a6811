"""Layer 1, the neural block: builds and trains the paper's CNN (or a user's model), saves and evaluates it.

network.py is plain Keras 3; backend.py is the only TensorFlow-specific module of the tuner.
"""
