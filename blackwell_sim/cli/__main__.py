"""``python -m blackwell_sim.cli`` runs the ``blackwell-sim`` command."""

import sys

from blackwell_sim.cli import main

sys.exit(main())
