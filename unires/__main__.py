"""``python -m unires COMMAND ...``: the ``unires`` command, in the form launchers run it
(``accelerate launch -m unires restore ...``, ``torchrun --nproc_per_node 4 -m unires ...``)."""

import sys

from .cli import main

sys.exit(main())
