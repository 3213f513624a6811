"""Layer 1, the symbolic block: the ProbLog diagnosis and tuning rules (diagnosis.pl, tuning_rules.pl),
their evaluation and the learning of the rule weights (LFI).

Modules, one job each: records.py (the records of a diagnosis and the rule weights),
statistics.py (history -> `history_stat` facts), programs.py (reading and checking the .pl
files and their `phrase/2` and `excludes/2` declarations), explanations.py (the wording),
block.py (`SymbolicBlock`: the ProbLog evaluation; re-exports the public names of the
others), policy.py (`choose_actions`), rule_learning.py (LFI of the rule weights).
"""
