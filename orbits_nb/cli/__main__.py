import sys

from orbits_nb.cli import main

sys.exit(main())
