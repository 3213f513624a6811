"""Layer 3, the run: one controller iteration, the loop to the budget, the run storage and the exports."""
