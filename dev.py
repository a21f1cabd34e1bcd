#!/usr/bin/env python3
"""Set up everything and run the flagship runbook, or the whole test suite.

    python3 dev.py demo     # venv + packages, then the flagship runbook on a local AWS emulator
    python3 dev.py test     # venv + packages + chromium/graphviz/nodejs and .venv-cdk,
                            # then ruff, mypy and pytest

The pytest suite includes the install checks (tests/test_install.py): they build the
wheel, install it in fresh virtualenvs, and run the README with only the base
dependencies and the demo from ``[demo]``.

Needs only Python 3.11+ and git. System packages (Debian's chromium and graphviz, for
the browser tests and the system-Graphviz path, postgresql for the team store, nodejs
for the CDK app) are installed with apt-get when missing, as root or through
passwordless sudo. The test command also creates ``.venv-cdk`` with the ``[cdk]``
extra (aws-cdk-lib) when missing, and points the CDK test at it
(``ORBITS_NB_CDK_PYTHON``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
APT_PACKAGES = {"chromium": "/usr/bin/chromium", "graphviz": "/usr/bin/dot",
                "postgresql": "/usr/lib/postgresql/*/bin/initdb", "nodejs": "/usr/bin/node"}
#: A separate virtualenv with the [cdk] extra (aws-cdk-lib, ~270 MB), in which the CDK
#: test runs its app; the tests find it through ORBITS_NB_CDK_PYTHON.
CDK_VENV = ROOT / ".venv-cdk"
CDK_PY = CDK_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"


def run(*cmd: str | Path, **kw: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def setup(extra: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"orbits_nb needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e",
        f".[{extra}]")
    # Byte-compile the package once: where PYTHONDONTWRITEBYTECODE is set, every kernel,
    # worker and CLI process the tests start would otherwise compile it from source.
    run(PY, "-m", "compileall", "-q", "orbits_nb")


def cdk_setup() -> None:
    """Create .venv-cdk with the [cdk] extra when it is missing or lacks aws-cdk-lib."""
    probe = [str(CDK_PY), "-c", "import aws_cdk"]
    if CDK_PY.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return
    print(f"creating {CDK_VENV} (aws-cdk-lib, for the DeployCDKStack test)", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(CDK_VENV)
    # The extra's packages only: the CDK app imports aws_cdk, never orbits_nb.
    with open(ROOT / "pyproject.toml", "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["cdk"]
    run(CDK_PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *extra)


def apt_install() -> None:
    missing = [name for name, path in APT_PACKAGES.items() if not glob.glob(path)]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"please install {', '.join(missing)} (Debian package names) and re-run")
    sudo: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(*sudo, "apt-get", "update", "-q", env=env)
    run(*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing, env=env)


def demo(args: list[str]) -> None:
    setup("demo")
    run(BIN / "orbits-nb", "demo", *args)


def test(args: list[str]) -> None:
    setup("dev")
    apt_install()
    cdk_setup()
    os.environ["ORBITS_NB_CDK_PYTHON"] = str(CDK_PY)
    run(BIN / "ruff", "check", "orbits_nb", "tests", "bench", "dev.py")
    run(BIN / "mypy")
    run(PY, "-m", "pytest", *(args or ["-q"]))


def main() -> None:
    commands = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode or 1)


if __name__ == "__main__":
    main()
