"""Layer 0, the ground: the vocabulary, the error types and the records every other layer passes around.

Imports nothing of the package above it.
"""
