"""``python -m unires.train`` / ``accelerate launch -m unires.train --config CONFIG``:
the same as ``unires train``."""

import sys

from ..cli import main

sys.exit(main(["train", *sys.argv[1:]]))
