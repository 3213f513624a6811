"""Layer 1, the neural block: builds and trains the paper's CNN (or a user's model), saves and evaluates it."""
