"""The tuning module: the tuning actions as bounded edits of the search space and the network.

The paper's name for this part (SoftwareX 2022, figure 1). The code lives in the installable
package, in sdt/actions.py; this file re-exports it so that `import tuning_module` works in a checkout.
"""

from sdt.actions import *  # noqa: F401,F403
