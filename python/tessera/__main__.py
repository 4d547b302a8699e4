"""``python -m tessera``: the command line."""

import sys

from tessera._cli import main

sys.exit(main())
