"""Layer 1: the datasets (named sources, user files and functions) and the embedded default subset."""
