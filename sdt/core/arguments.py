"""The argument parser of the command lines (main.py, the dashboard's launcher): a bad value is
one `error:` line and exit status 2, like every other refused input, not argparse's usage block."""

from __future__ import annotations

import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line: `error: <what is wrong> (see --help)`."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
