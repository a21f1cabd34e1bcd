"""Run ``Deploy`` (tests/agent_helpers.py) or a command in a child process.

Usage: python agent_worker.py STATE deploy ARGS_JSON
       python agent_worker.py STATE command KEY NAME
"""

from __future__ import annotations

import json
import sys

from agent_helpers import Deploy

import orbits_nb as ob

if __name__ == "__main__":
    engine = ob.Engine(sys.argv[1])
    try:
        if sys.argv[2] == "deploy":
            print(json.dumps(Deploy(**json.loads(sys.argv[3])).run(engine=engine)))
        else:
            ob.command(sys.argv[3], sys.argv[4], engine=engine)
    finally:
        engine.close()
