"""Layer 1, the symbolic block: the ProbLog diagnosis and tuning rules (diagnosis.pl, tuning_rules.pl),
their evaluation and the learning of the rule weights (LFI)."""
