"""``python -m compaction`` runs the ``context-distill`` command line."""

import sys

from compaction.cli import main

sys.exit(main())
