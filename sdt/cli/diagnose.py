"""`python3 main.py --diagnose HISTORY.json`: diagnose a saved training history, no training.

Reads a Keras `History.history` dict saved as JSON (keys loss, accuracy, val_loss,
val_accuracy; an optional `num_classes`, default 10; NaN or null for a diverged epoch).
A saved trial record whose history sits under a "history" key is accepted too, and its
"params" (the values it was trained with) are then given to the rules. Prints to
stdout one JSON object:

    {"problems": [{"name", "probability", "explanation", "measures"}],
     "actions":  [{"name", "problem", "probability"}],
     "measures": {...}, "thresholds": {...}, "notes": [...]}

listing only problems with probability > 0 and their candidate actions at the initial
rule weights. Bad input (missing or unreadable file, invalid JSON, missing keys, lists of
different lengths, non-numbers, empty lists, a malformed --diagnosis or --rules file)
prints one line `error: ...` on stderr and returns 2. Never imports Keras/TensorFlow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sdt.core.errors import ConfigurationError, RulesError, TunerError

DEFAULT_NUM_CLASSES = 10


def _load_history(history_path: str | Path) -> tuple[dict[str, Any], Any, dict[str, Any] | None]:
    path = Path(history_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigurationError(f"history file {path} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigurationError(f"history file {path} cannot be read: {err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigurationError(f"history file {path} is not valid JSON: {err.msg} at line "
                                 f"{err.lineno}, column {err.colno}") from err
    if not isinstance(data, dict):
        raise ConfigurationError(f"history file {path} must hold a JSON object (a Keras "
                                 f"History.history dict), got a JSON {type(data).__name__}")
    num_classes = data.get("num_classes", DEFAULT_NUM_CLASSES)
    if isinstance(data.get("history"), dict):
        params = data.get("params")
        return data["history"], num_classes, params if isinstance(params, dict) else None
    return data, num_classes, None


def diagnose_file(history_path: str | Path, diagnosis_path: str | Path | None = None,
                  rules_path: str | Path | None = None) -> dict[str, Any]:
    """The JSON-ready diagnosis of a history file; raises TunerError on bad input."""
    from sdt.symbolic.block import SymbolicBlock  # after the cheap checks of the file itself

    history, num_classes, params = _load_history(history_path)
    block = SymbolicBlock(diagnosis_path=diagnosis_path, rules_path=rules_path)
    try:
        diagnosis = block.diagnose(history, num_classes, block.initial_weights(), params)
    except RulesError:
        raise
    except ConfigurationError as err:
        raise ConfigurationError(f"history file {history_path}: {err}") from err
    return diagnosis.to_dict()


def run_diagnose(history_path: str, diagnosis_path: str | None = None,
                 rules_path: str | None = None) -> int:
    """CLI entry point of `--diagnose`: print the diagnosis as JSON; exit code 0, or 2 on bad input."""
    try:
        result = diagnose_file(history_path, diagnosis_path, rules_path)
    except TunerError as err:
        message = " ".join(str(err).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, allow_nan=False))
    return 0


__all__ = ["DEFAULT_NUM_CLASSES", "diagnose_file", "run_diagnose"]
