"""``python -m lcm_bench``: the CLI, as launchers run it (``torchrun -m lcm_bench run SUITE``)."""

import sys

from .cli import main

sys.exit(main())
