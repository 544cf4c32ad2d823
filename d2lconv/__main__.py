"""``python -m d2lconv``: the command line, as the ``d2lconv`` script runs it."""

import sys

from d2lconv.cli import main

sys.exit(main())
