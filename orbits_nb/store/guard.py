"""What the store refuses, and how it says so.

Every fault of the state file reaches the user as a :class:`~orbits_nb.StoreError`
that names the file, says what went wrong in plain words (full disk, damaged file,
read-only file) and what to do next; the DuckDB text is kept in ``detail``. Bad
arguments are refused as :class:`~orbits_nb.InvalidArgument` before any SQL runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orbits_nb.core.errors import InvalidArgument, StoreError

#: Words of DuckDB and OS messages, by the reason they reveal (checked in order).
_REASONS = (
    ("disk-full", ("no space left", "disk full", "file too large", "disk quota",
                   "out of disk")),
    ("read-only", ("read-only", "read only", "permission denied",
                   "operation not permitted", "access is denied")),
    ("damaged", ("corrupt", "checksum", "could not read enough bytes",
                 "not a valid duckdb", "invalid database", "failed to read",
                 "unexpected end of file")),
    ("invalidated", ("database has been invalidated", "fatal error")),
)
#: Reasons after which the connection is closed, so the next use starts afresh.
BROKEN = frozenset({"disk-full", "read-only", "damaged", "invalidated", "io"})
#: DuckDB exception types that may report a fault of the file; the others (parser,
#: binder, catalog, constraint...) are about the SQL, whatever words they quote.
_FAULT_TYPES = frozenset({"Error", "DatabaseError", "OperationalError", "IOException",
                          "FatalException", "InternalException", "TransactionException",
                          "InvalidInputException", "PermissionException",
                          "SerializationException"})


def reason_of(err: BaseException, path: Path | None = None) -> str:
    """Why ``err`` says the store failed (``"query"`` when it names no fault)."""
    if _is_duckdb(err) and type(err).__name__ not in _FAULT_TYPES:
        return "query"
    text = str(err)
    if path is not None:
        text = text.replace(str(path), "")  # the file's own name must not decide
    low = text.lower()
    for reason, words in _REASONS:
        if any(word in low for word in words):
            return reason
    if type(err).__name__ in ("IOException", "FatalException", "InternalException"):
        return "io"
    return "query"


def _telling(err: BaseException, path: Path) -> BaseException:
    """The error that explains ``err``: a failed ROLLBACK hides the failed COMMIT.

    Callers roll back when a statement fails; when DuckDB has already ended the
    transaction, the ROLLBACK fails too and its error is raised instead, with the
    real cause as its context.
    """
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain and len(chain) < 16:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for candidate in reversed(chain):
        if _is_duckdb(candidate) and reason_of(candidate, path) != "query":
            return candidate
    return err


def _is_duckdb(err: BaseException) -> bool:
    return type(err).__module__ in ("duckdb", "_duckdb")


def _where(path: Path) -> str:
    return "the in-memory store" if str(path) == ":memory:" else f"the state file {path}"


def fault(path: Path, err: BaseException, *, query: str | None = None) -> StoreError:
    """The :class:`StoreError` for a DuckDB (or OS) error met while using ``path``."""
    cause = _telling(err, path)
    reason = reason_of(cause, path)
    full = str(cause).strip() or type(cause).__name__
    # A fault reads best on one line; a SQL error keeps the line that points at it.
    detail = full if reason == "query" else full.splitlines()[0]
    where = _where(path)
    if reason == "disk-full":
        text = (f"cannot write {where}: no room is left for it, the disk is full or a "
                f"file size limit is reached ({detail}); free some space, or point "
                "ORBITS_NB_STATE at a file on another disk, then try again")
    elif reason == "read-only":
        text = read_only_message(path, detail)
    elif reason == "damaged":
        text = (f"{where} is damaged ({detail}); move it aside, with any "
                f"{path.name}.wal beside it (orbits_nb then starts a new one), or restore "
                "it from a backup")
    elif reason in ("invalidated", "io"):
        text = (f"{where} could not be used ({detail}); if this repeats, the file may be "
                "damaged: move it aside (orbits_nb starts a new one) or set "
                "ORBITS_NB_STATE to another path")
    else:
        text = f"query failed on {where}: {detail}"
    fields: dict[str, Any] = {"path": str(path), "reason": reason, "detail": detail}
    if query is not None:
        fields["query"] = query
    return StoreError(text, **fields)


def read_only_message(path: Path, detail: str = "") -> str:
    why = f" ({detail})" if detail else ""
    return (f"cannot write {_where(path)}: it (or its folder {path.parent}) is read-only "
            f"for this process{why}; make it writable, or point ORBITS_NB_STATE (or "
            "--state) at a file you may write. Reading it works, e.g. `orbits-nb runs`")


def os_fault(path: Path, err: OSError, doing: str) -> StoreError:
    """A :class:`StoreError` for an OS error while ``doing`` something to the file."""
    detail = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    reason = reason_of(OSError(detail))
    if reason in ("disk-full", "read-only"):
        return fault(path, OSError(detail))
    return StoreError(f"cannot {doing} for {_where(path)} ({detail}); check the path, or "
                      "point ORBITS_NB_STATE (or --state) at another file",
                      path=str(path), reason="io", detail=detail)


def check_run_id(value: object, what: str = "run id") -> str:
    """``value`` if it is a usable run id, else :class:`InvalidArgument` naming it."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(
            f"a {what} must be a non-empty str, got {value!r} ({type(value).__name__}); "
            "list run ids with `orbits-nb runs` or ob.history()", value=repr(value))
    return value


def check_step(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"a step key must be a str or None, got {value!r} "
                              f"({type(value).__name__})", value=repr(value))
    return value


def check_query(query: object, params: object = None) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidArgument(f"a query must be a non-empty SQL str, got {query!r}",
                              value=repr(query))
    if params is not None and not isinstance(params, (list, tuple, dict)):
        raise InvalidArgument(f"query parameters must be a list, got {params!r}",
                              value=repr(params))
    return query


def seconds_from_env(name: str, default: float) -> float:
    """A duration in seconds from environment variable ``name``, or ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise InvalidArgument(f"{name}={text!r} is not a number of seconds; set it to e.g. "
                              f"{default:g}, or unset it", value=text)
    return value
