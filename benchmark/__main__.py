"""``python -m benchmark`` is ``qmap``."""

import sys

from benchmark.cli import main

sys.exit(main())
