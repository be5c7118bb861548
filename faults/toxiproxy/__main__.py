"""`python -m faults.toxiproxy`: run the embedded Toxiproxy-compatible server."""

import sys

from faults.toxiproxy.server import main

sys.exit(main())
