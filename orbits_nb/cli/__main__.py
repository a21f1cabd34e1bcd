"""``python -m orbits_nb.cli``: the ``orbits-nb`` command."""

import sys

from orbits_nb.cli import main

if __name__ == "__main__":
    sys.exit(main())
