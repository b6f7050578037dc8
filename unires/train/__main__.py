"""``python -m unires.train`` / ``accelerate launch -m unires.train --config CONFIG``."""

import sys

from .diffusion import main

sys.exit(main())
