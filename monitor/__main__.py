"""`python -m monitor` runs the command line."""

import sys

from monitor.cli import console

sys.exit(console())
