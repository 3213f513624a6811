"""The datasets: named sources, user files, image folders and functions, split train / validation / test.

The paper's name for this part (SoftwareX 2022, figure 1). The code lives in the installable
package, in sdt/data/datasets.py; this file re-exports it so that `import datasets` works in a checkout.
"""

from sdt.data.datasets import *  # noqa: F401,F403
