"""Module-level entry points: drift(), list_resources(), drift_history(), uninstall()."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.resources import records
from orbits_nb.resources.base import Resource
from orbits_nb.resources.check import DEFAULT_CONCURRENCY, check_concurrency, check_rows
from orbits_nb.resources.errors import ResourceNotFound
from orbits_nb.resources.report import DriftReport, on_engine

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.core.storage import Store
    from orbits_nb.engine.engine import Engine
    from orbits_nb.engine.run import Run

TypeFilter = str | type[Resource] | Iterable[str | type[Resource]] | None


def _engine(engine: Engine | None) -> Engine:
    from orbits_nb.engine.engine import default_engine

    return engine or default_engine()


def kinds_of(type: TypeFilter) -> list[str]:
    """Kind names and ``module:Class`` names from a type filter (validated)."""
    if type is None:
        return []
    items = [type] if isinstance(type, (str, builtin_type)) else list(type)
    out: list[str] = []
    for item in items:
        if isinstance(item, builtin_type) and issubclass(item, Resource):
            out += [item.kind_name(), item.type_name()]
        elif isinstance(item, str) and item.strip():
            out.append(item)
        else:
            raise InvalidArgument(f"type= takes Resource classes or kind names, got "
                                  f"{item!r}", type=repr(item))
    return out


builtin_type = type


def drift(type: TypeFilter = None, identity: str | None = None,
          workflow: str | None = None, *, key: str | None = None,
          concurrency: int = DEFAULT_CONCURRENCY, record: bool = True,
          engine: Engine | None = None) -> DriftReport:
    """Observe recorded resources, compare with their desired state, record the result.

    Filters (all optional, combined): ``type`` (a Resource class or kind name, or a
    list), ``identity`` (exact or glob, e.g. ``"/srv/*"``), ``workflow`` (class name or
    root run id of a workflow using the resource), ``key`` (``kind:identity``, glob).
    At most ``concurrency`` observations run at once. Each result (in sync, drifted,
    missing, error) is appended to the ``drift_checks`` history unless ``record=False``.

    >>> report = ob.drift(type=ob.LocalFile)     # doctest: +SKIP
    >>> report.ok, report.drifted                # doctest: +SKIP
    """
    engine = _engine(engine)
    concurrency = check_concurrency(concurrency)
    if identity is not None and not isinstance(identity, str):
        raise InvalidArgument(f"identity= must be a str (exact or glob), got {identity!r}")
    started, clock = time.time(), time.monotonic()
    with engine.store.keep_open():  # one opening of the state file for the whole check
        rows = records.select(engine.store, kinds=kinds_of(type), identity=identity,
                              workflow=workflow, keys=[key] if key else ())
        checks = on_engine(engine, check_rows(engine, rows, concurrency=concurrency,
                                              record=record))
    filters = {"type": type, "identity": identity, "workflow": workflow, "key": key}
    return DriftReport(checks, engine=engine, filters=filters, concurrency=concurrency,
                       started_at=started, duration_s=time.monotonic() - clock)


def list_resources(*, include_deleted: bool = False,
                   engine: Engine | None = None) -> duckdb.DuckDBPyRelation:
    """Recorded resources with their latest drift status and user count (a relation)."""
    return cast("duckdb.DuckDBPyRelation",
                _engine(engine).store.resource_listing(include_deleted=include_deleted))


def drift_history(key: str | None = None, *, keys: Iterable[str] = (), limit: int = 200,
                  engine: Engine | None = None) -> duckdb.DuckDBPyRelation:
    """Recorded checks (drift checks, convergences, accepts), newest first.

    ``key`` may be a glob; the ``diffs`` column holds ``[{path, change, desired,
    actual}]``, so ``WHERE status <> 'in_sync'`` shows when drift started.
    """
    engine = _engine(engine)
    wanted = list(keys) + ([key] if key else [])
    for text in wanted:
        if not isinstance(text, str):
            raise InvalidArgument(f"a resource key must be a str, got {text!r}")
    return cast("duckdb.DuckDBPyRelation", engine.store.drift_history(wanted, int(limit)))


def resolve_keys(store: Store, targets: Iterable[str | Resource]) -> list[str]:
    """Resource keys from keys, identities or Resource instances (recorded ones)."""
    keys: list[str] = []
    for target in targets:
        if isinstance(target, Resource):
            keys.append(target.key())
            continue
        if not isinstance(target, str) or not target:
            raise InvalidArgument(f"name a resource by key, identity or instance, got "
                                  f"{target!r}")
        found = store.resource_keys(target)
        if not found:
            raise ResourceNotFound(f"no recorded resource has key or identity {target!r}",
                                   key=target, hint="list them with ob.list_resources()",
                                   cli_hint="list them with `orbits-nb resources`")
        keys += found
    return list(dict.fromkeys(keys))


def _texts(value: str | Iterable[str], what: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidArgument(f"{what} takes non-empty strings, got {item!r}")
    return items


def start_uninstall(engine: Engine, keys: list[str], *, force: bool = False,
                    release: str | Iterable[str] = (),
                    confirm: str | Iterable[str] = ()) -> Run:
    from orbits_nb.resources.commands import Uninstall

    args: dict[str, object] = {"resources": keys, "force": bool(force),
                               "release": _texts(release, "release=")}
    confirmed = _texts(confirm, "confirm=")
    if confirmed:
        args["confirm"] = confirmed
    return engine.start(Uninstall(**args), fresh=True)


def uninstall(*targets: str | Resource, force: bool = False,
              release: str | Iterable[str] = (), confirm: str | Iterable[str] = (),
              wait: bool = True, engine: Engine | None = None) -> Run:
    """Delete resources in a new run, refusing any that another workflow still uses.

    ``release`` names the users (root run ids or workflow names) on whose behalf you
    uninstall; remaining users block the deletion unless ``force=True``. Resources
    that are costly to lose (``confirm_uninstall``: AWS accounts and stacks) are
    deleted only when ``confirm`` repeats their identity (or key).

    >>> ob.uninstall("/srv/app/config.yaml", release=["DeployBackend"])  # doctest: +SKIP
    """
    engine = _engine(engine)
    if not targets:
        raise InvalidArgument("uninstall() needs at least one resource key or identity")
    run = start_uninstall(engine, resolve_keys(engine.store, targets), force=force,
                          release=release, confirm=confirm)
    if wait:
        run.wait()
    return run


def command(target: str | Resource, name: str, *, wait: bool = True,
            on_conflict: str = "wait", engine: Engine | None = None) -> Run:
    """Run the custom command ``name`` of a recorded agent, as a new run.

    ``name`` is a ``command_<name>`` method of the agent (e.g. ``"rollback"``), or
    ``"reconcile"``. The command holds the agent's lease while it runs: a command on
    the same identity in any process waits for it (``on_conflict="fail"``: fails).

    >>> ob.command("Backend:acme", "rollback")                 # doctest: +SKIP
    """
    from orbits_nb.resources.agent import check_command
    from orbits_nb.resources.commands import Command, rebuild
    from orbits_nb.resources.leases import check_on_conflict

    engine = _engine(engine)
    keys = resolve_keys(engine.store, [target])
    if len(keys) != 1:
        raise InvalidArgument(f"{target!r} names {len(keys)} resources ({', '.join(keys[:5])}"
                              "); name one by its key", target=str(target))
    row = engine.store.resource(keys[0])
    if row is None or row.status != "present":
        raise ResourceNotFound(f"resource {keys[0]!r} was uninstalled", key=keys[0])
    check_command(rebuild(row.type, row.args), name)
    run = engine.start(Command(resource=keys[0], command=name,
                               on_conflict=check_on_conflict(on_conflict)), fresh=True)
    if wait:
        run.wait()
    return run


def drifted_steps(store: Store | Engine, run_id: str) -> set[str]:
    """Step keys of ``run_id`` whose resource's latest drift check is not in sync.

    For run diagrams: mark these steps as "drifted since".
    """
    from orbits_nb.engine.engine import Engine

    target = store.store if isinstance(store, Engine) else store
    return target.drifted_steps(run_id)

