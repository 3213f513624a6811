"""`python -m sdt`: the command line."""

import sys

from sdt.cli.main import main

sys.exit(main())
