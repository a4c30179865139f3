"""``python -m zmartd`` is the same as the ``zmartd`` command."""

import sys

from zmartd.cli import main

sys.exit(main())
