"""Symbolic DNN-Tuner command line (work in progress: the tuning loop lands next)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__)
    parser.add_argument("--diagnose", metavar="HISTORY.json",
                        help="diagnose a saved Keras History.history JSON and print JSON; no training")
    parser.add_argument("--diagnosis", metavar="FILE", default=None,
                        help="ProbLog diagnosis program to use instead of the shipped diagnosis.pl")
    parser.add_argument("--rules", metavar="FILE", default=None,
                        help="ProbLog tuning rules to use instead of the shipped tuning_rules.pl")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.diagnose:
        from sdt.diagnose_cli import run_diagnose
        return run_diagnose(args.diagnose, diagnosis_path=args.diagnosis, rules_path=args.rules)
    print("error: the tuning loop is not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
