"""Start the dashboard of a run: `python3 dashboard/launcher.py [--log-folder DIR] [--port P] [--host H]`.

The dashboard's code is in the installable package (sdt/dashboard/); this script lets a checkout
start it from the paper's place.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the checkout's sdt package

from sdt.dashboard.launcher import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
