"""One iteration of Symbolic DNN-Tuner: train -> facts -> LFI -> diagnosis -> choice -> tuning.

The paper's name for this part (SoftwareX 2022, figure 1). The code lives in the installable
package, in sdt/run/controller.py; this file re-exports it so that `import controller` works in a checkout.
"""

from sdt.run.controller import *  # noqa: F401,F403
