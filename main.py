"""Symbolic DNN-Tuner's command line, as the paper names it: `python3 main.py --help`.

The code is in the installable package: sdt/cli/main.py (also `sdt` and `python -m sdt` once the
package is installed). This file only lets a checkout run it as the paper's main.py.
"""

import sys

from sdt.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
