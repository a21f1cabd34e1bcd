"""Workers: long-running processes that execute submitted runs (``orbits-nb worker``)."""
