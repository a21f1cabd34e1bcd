"""Flagship figures on a local moto server: a DeployBackend, its replay, and a fleet.

    .venv/bin/python bench/flagship.py [--tenants 8] [--concurrency 4]

Prints wall-clock seconds for: a first DeployBackend (git + account + stack +
migrations), a replay of the same run by a new engine (nothing created), and a fleet
of N tenants at a given concurrency. Everything runs on 127.0.0.1; the numbers are
dominated by boto3 client creation and moto, not by AWS.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orbits_nb as ob
from orbits_nb.actions import WebhookReceiver
from orbits_nb.aws.emulator import Emulator
from orbits_nb.flagship import DeployBackend, Fleet

ASSETS = Path(__file__).resolve().parent.parent / "notebooks" / "assets"


def common(tmp: Path) -> dict[str, Any]:
    return {"region": "eu-west-1", "git_location": str(tmp / "git"),
            "template_file": str(ASSETS / "backend.yaml"),
            "migrations": str(ASSETS / "migrations"),
            "webhook": ob.Secret.from_env("SLACK_WEBHOOK_URL")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Emulator() as emu, \
            WebhookReceiver() as hook, emu.activated():
        tmp = Path(folder)
        os.environ["SLACK_WEBHOOK_URL"] = hook.url
        emu.create_organization()
        state = tmp / "state.duckdb"
        backend = DeployBackend(client="acme", email="aws+acme@example.com",
                                database_url=f"duckdb://{tmp / 'acme.duckdb'}",
                                **common(tmp))
        engine = ob.Engine(state)
        started = time.perf_counter()
        engine.start(backend).wait(300)
        first = time.perf_counter() - started
        engine.close()
        engine = ob.Engine(state)
        started = time.perf_counter()
        engine.start(backend).wait(300)
        replay = time.perf_counter() - started
        tenants = [f"t{i:03d}" for i in range(args.tenants)]
        fleet = Fleet(tenants=tenants, concurrency=args.concurrency,
                      email_pattern="aws+{tenant}@example.com",
                      database_pattern=f"duckdb://{tmp}/{{tenant}}.duckdb",
                      **common(tmp))
        started = time.perf_counter()
        engine.start(fleet).wait(600)
        fleet_s = time.perf_counter() - started
        engine.close()
    print(f"DeployBackend, first run (4 steps, 1 account):   {first:7.3f} s")
    print(f"DeployBackend, replay by a new engine:           {replay:7.3f} s")
    print(f"Fleet of {args.tenants} tenants, concurrency {args.concurrency}:"
          f"{' ' * max(0, 15 - len(str(args.tenants)) - len(str(args.concurrency)))}"
          f"{fleet_s:7.3f} s  ({fleet_s / args.tenants:.3f} s per tenant)")


if __name__ == "__main__":
    main()
