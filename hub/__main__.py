"""`python -m hub` runs the same CLI as `gate-hub`."""

import sys

from hub.cli import main

sys.exit(main())
