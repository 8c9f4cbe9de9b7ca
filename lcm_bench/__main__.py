"""``python -m lcm_bench``: the CLI, as launchers run it (``torchrun -m lcm_bench run SUITE``)."""

import sys

from lcm_bench.cli.main import main

sys.exit(main())
