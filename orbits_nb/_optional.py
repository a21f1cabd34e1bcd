"""Optional dependencies: import them on first use, or say how to install them.

Every optional import in the package goes through :func:`needs`, so a missing package
is one clear :class:`~orbits_nb.MissingDependency` naming the ``pip install`` command,
raised where the feature is first used (never when ``orbits_nb`` is imported), and
never a raw ``ModuleNotFoundError`` that a retry policy would try again:

>>> with needs("aws", "AWS actions"):                          # doctest: +SKIP
...     import boto3
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

from orbits_nb.core.errors import MissingDependency

#: What each extra of the distribution brings (``pip install 'orbits_nb[extra]'``).
EXTRAS = {
    "aws": ("boto3", "botocore"),
    "postgres": ("psycopg", "psycopg_pool"),
    "dask": ("dask", "distributed"),
    "demo": ("moto", "flask", "flask_cors", "boto3", "botocore"),
    "otel": ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"),
}


def install_hint(package: str, extra: str | None) -> str:
    """``pip install 'orbits_nb[aws]'``, or ``pip install pandas`` without an extra."""
    return f"pip install 'orbits_nb[{extra}]'" if extra else f"pip install {package}"


def missing(package: str, extra: str | None, feature: str) -> MissingDependency:
    """The error for ``feature`` lacking ``package`` (an import name)."""
    return MissingDependency(
        f"{feature}: {package} is not installed; install it with "
        f"{install_hint(package, extra)}", package=package, extra=extra, feature=feature)


@contextlib.contextmanager
def needs(extra: str | None, feature: str, package: str | None = None) -> Iterator[None]:
    """Turn an ``ImportError`` inside the block into :class:`MissingDependency`.

    ``extra`` is the orbits_nb extra that installs what the block imports (None when
    no extra does: the hint then names ``package``). The missing module named by the
    import error is reported, so a half-installed extra names its broken piece.
    """
    try:
        yield
    except MissingDependency:
        raise
    except ImportError as err:
        name = (err.name or package or "a required package").split(".")[0]
        raise missing(name, extra, feature) from None


def check_installed(modules: tuple[str, ...], extra: str | None, feature: str) -> None:
    """Raise :class:`MissingDependency` unless every module can be imported.

    For code that hands the import to a child process: it looks the modules up
    without importing them (importing moto's server just to ask costs seconds).
    """
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a stub module
            found = False
        if not found:
            raise missing(module, extra, feature)
