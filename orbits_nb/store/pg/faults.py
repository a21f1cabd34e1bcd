"""What the team store says when the server, the network or the database fails.

Every psycopg error leaves as a :class:`~orbits_nb.StoreError` naming the host and
the database (never the password) with a ``reason``: ``unreachable`` (server down,
bad host or port), ``auth`` (password refused or missing), ``no-database``,
``permission`` (e.g. no right to create the tables), ``connection-lost`` (dropped in
the middle of work) or ``query``. The driver's text is kept in ``detail``, scrubbed.
"""

from __future__ import annotations

from typing import Any

from orbits_nb.core.errors import StoreError
from orbits_nb.store.pg.driver import driver
from orbits_nb.store.pg.url import describe, scrub, target

#: Reasons worth another try on a fresh connection (bounded, with backoff).
TRANSIENT = frozenset({"unreachable", "connection-lost"})

_WORDS = (
    ("auth", ("password authentication failed", "no password supplied",
              "authentication failed", "fe_sendauth")),
    ("no-database", ("does not exist",)),
    ("unreachable", ("connection refused", "could not connect", "could not translate host",
                     "name or service not known", "timeout expired", "connection failed",
                     "no route to host", "network is unreachable", "couldn't get a connection",
                     "the database system is starting up",
                     "the database system is shutting down")),
    ("connection-lost", ("server closed the connection", "terminating connection",
                         "connection is lost", "the connection is closed",
                         "consuming input failed", "connection not open", "ssl syscall",
                         "admin shutdown", "broken pipe", "connection reset")),
)


def reason_of(err: BaseException) -> str:
    """Why ``err`` (a psycopg or pool error) says the store failed."""
    psycopg, _ = driver()
    if isinstance(err, psycopg.errors.InsufficientPrivilege):
        return "permission"
    text = str(err).lower()
    if isinstance(err, (psycopg.OperationalError, psycopg.InterfaceError)) or \
            type(err).__module__.startswith("psycopg_pool"):
        for reason, words in _WORDS:
            if any(word in text for word in words):
                if reason == "no-database" and "database" not in text:
                    continue
                return reason
        return "connection-lost" if isinstance(err, psycopg.OperationalError) else "query"
    if isinstance(err, psycopg.errors.AdminShutdown):
        return "connection-lost"
    return "query"


def pg_fault(url: str, err: BaseException, *, query: str | None = None,
             reason: str | None = None) -> StoreError:
    """The :class:`StoreError` for ``err`` met on the team store at ``url``."""
    reason = reason or reason_of(err)
    host, database = target(url)
    shown = describe(url)
    detail = scrub(str(err).strip() or type(err).__name__, url)
    first = detail.splitlines()[0] if detail else ""
    where = f"the team store {shown} (host {host}, database {database})"
    if reason == "unreachable":
        text = (f"cannot reach {where}: {first}; check that the server is running and "
                "the URL (ORBITS_NB_STATE or --state) names its host and port")
    elif reason == "auth":
        text = (f"{where} refused the login ({first}); check the user name, and give the "
                "password in PGPASSWORD or ~/.pgpass (or in the URL)")
    elif reason == "no-database":
        text = (f"{where} does not exist on the server ({first}); create it (createdb "
                f"{database}) or name another database in the URL")
    elif reason == "permission":
        text = (f"no permission on {where} ({first}); orbits_nb creates its tables on "
                "first use: ask the database owner to grant this user CREATE on the "
                "schema, or use a database this user owns")
    elif reason == "connection-lost":
        text = (f"the connection to {where} was lost ({first}); it was retried and "
                "failed again: check the server and the network, then try again (what was "
                "committed is kept)")
    else:
        text = f"query failed on {where}: {detail}"
    fields: dict[str, Any] = {"path": shown, "reason": reason, "detail": detail,
                              "host": host, "database": database}
    if query is not None:
        fields["query"] = query
    return StoreError(text, **fields)
