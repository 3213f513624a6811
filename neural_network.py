"""The neural block: the paper's CNN (Listing 4) grown by the tuning actions, trained and evaluated.

The paper's name for this part (SoftwareX 2022, figure 1). The code lives in the installable
package, in sdt/neural/network.py; this file re-exports it so that `import neural_network` works in a checkout.
"""

from sdt.neural.network import *  # noqa: F401,F403
