"""``python -m incidentiq``: the same command line as the ``incidentiq`` script."""

import sys

from incidentiq.cli import main

if __name__ == "__main__":
    sys.exit(main())
