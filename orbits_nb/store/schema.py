"""The store's schema, kept as data: numbered migrations applied in order.

``events`` is the append-only system of record. Migrations 1 to 4 folded ``runs``,
``steps`` and ``attempts`` from it as views; migration 5 replaces them by tables of the
same names and columns, maintained incrementally (:mod:`orbits_nb.store.projection`)
and built from the existing events when a file is first opened after it.
"""

from __future__ import annotations

APP_ID = "orbits_nb"

_RUNS = """
CREATE OR REPLACE VIEW runs AS
WITH r AS (
  SELECT run_id,
    max(data->>'workflow') FILTER (WHERE kind = 'run.created') AS workflow,
    any_value(data->'args') FILTER (WHERE kind = 'run.created') AS args,
    arg_max(CASE kind WHEN 'run.created' THEN 'pending' WHEN 'run.started' THEN 'running'
            ELSE replace(kind, 'run.', '') END, seq)
      FILTER (WHERE kind IN ('run.created', 'run.started', 'run.succeeded', 'run.failed',
                             'run.cancelled')) AS status,
    min(ts) AS created,
    max(ts) FILTER (WHERE kind = 'run.started') AS started,
    max(ts) FILTER (WHERE kind IN ('run.succeeded', 'run.failed', 'run.cancelled'))
      AS finished,
    arg_max(data->'result', seq) FILTER (WHERE kind = 'run.succeeded') AS result,
    arg_max(data->'error', seq) FILTER (WHERE kind IN ('run.failed', 'run.cancelled'))
      AS error,
    max(data->>'parent_run_id') FILTER (WHERE kind = 'run.created') AS parent_run_id,
    any_value(data->'meta') FILTER (WHERE kind = 'run.created') AS meta,
    count(*) FILTER (WHERE kind = 'run.started') AS executions,
    max(ts) AS updated
  FROM events WHERE step IS NULL GROUP BY run_id)
SELECT run_id, workflow, status, args,
  CASE WHEN status = 'succeeded' THEN result END AS result,
  CASE WHEN status IN ('failed', 'cancelled') THEN error END AS error,
  to_timestamp(created) AS created_at, to_timestamp(started) AS started_at,
  CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN to_timestamp(finished) END
    AS finished_at,
  CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN finished - started END
    AS duration_s,
  parent_run_id, meta, executions, to_timestamp(updated) AS updated_at
FROM r
"""

_LIVE_STEP_EVENTS = """
CREATE OR REPLACE VIEW step_events AS
WITH resets AS (
  SELECT run_id, unnest(CAST(data->'steps' AS VARCHAR[])) AS step, seq AS reset_seq
  FROM events WHERE kind = 'run.reset')
SELECT e.* FROM events e
WHERE e.step IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM resets r WHERE r.run_id = e.run_id AND r.step = e.step AND r.reset_seq > e.seq)
"""

_STEPS = """
CREATE OR REPLACE VIEW steps AS
WITH s AS (
  SELECT run_id, step,
    any_value(data->>'name') FILTER (WHERE data->>'action' IS NOT NULL) AS name,
    any_value(CAST(data->>'pos' AS INTEGER)) FILTER (WHERE data->>'action' IS NOT NULL)
      AS pos,
    any_value(data->>'action') FILTER (WHERE data->>'action' IS NOT NULL) AS action,
    any_value(data->'args') FILTER (WHERE data->>'action' IS NOT NULL) AS args,
    any_value(data->>'executor') FILTER (WHERE data->>'action' IS NOT NULL) AS executor,
    any_value(data->'parents') FILTER (WHERE data->>'action' IS NOT NULL) AS parents,
    any_value(data->>'child_run_id') FILTER (WHERE data->>'action' IS NOT NULL)
      AS child_run_id,
    arg_max(CASE kind WHEN 'step.started' THEN 'running' ELSE replace(kind, 'step.', '') END,
            seq) FILTER (WHERE kind <> 'step.bag') AS status,
    max(attempt) AS attempts,
    min(ts) AS started, max(ts) AS last,
    arg_max(data->'result', seq) FILTER (WHERE kind = 'step.succeeded') AS result,
    arg_max(data->'error', seq) FILTER (WHERE kind IN ('step.failed', 'step.retrying'))
      AS error,
    arg_max(data->'bag', seq) FILTER (WHERE kind IN ('step.waiting', 'step.bag')) AS bag
  FROM step_events GROUP BY run_id, step)
SELECT run_id, step, name, pos, status, attempts, action, args, executor,
  to_timestamp(started) AS started_at,
  CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN to_timestamp(last) END
    AS finished_at,
  CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN last - started END
    AS duration_s,
  CASE WHEN status = 'succeeded' THEN result END AS result,
  CASE WHEN status <> 'succeeded' THEN error END AS error,
  bag, parents, child_run_id
FROM s
"""

_ATTEMPTS = """
CREATE OR REPLACE VIEW attempts AS
SELECT run_id, step, attempt,
  arg_max(CASE kind WHEN 'step.started' THEN 'running' ELSE replace(kind, 'step.', '') END,
          seq) FILTER (WHERE kind <> 'step.bag') AS status,
  to_timestamp(min(ts)) AS started_at, to_timestamp(max(ts)) AS last_event_at,
  arg_max(data->'error', seq) FILTER (WHERE kind IN ('step.failed', 'step.retrying'))
    AS error
FROM step_events WHERE attempt IS NOT NULL
GROUP BY run_id, step, attempt
"""

_CARRY_FAILURES = """
UPDATE runs SET had_failures = true WHERE NOT coalesce(had_failures, false)
AND run_id IN (
  WITH RECURSIVE up(run_id) AS (
    SELECT parent_run_id FROM runs WHERE had_failures AND parent_run_id IS NOT NULL
    UNION
    SELECT r.parent_run_id FROM runs r JOIN up ON r.run_id = up.run_id
    WHERE r.parent_run_id IS NOT NULL)
  SELECT run_id FROM up)
"""

#: Migration number -> statements. Never edit a released migration: add a new one.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS orbits_nb_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "applied_at TIMESTAMPTZ DEFAULT current_timestamp)",
        "CREATE SEQUENCE IF NOT EXISTS event_seq START 1",
        "CREATE TABLE IF NOT EXISTS events (seq BIGINT NOT NULL, ts DOUBLE NOT NULL, "
        "run_id VARCHAR NOT NULL, step VARCHAR, kind VARCHAR NOT NULL, attempt INTEGER, "
        "data JSON)",
        "CREATE TABLE IF NOT EXISTS logs (ts DOUBLE NOT NULL, run_id VARCHAR NOT NULL, "
        "step VARCHAR, attempt INTEGER, stream VARCHAR, message VARCHAR)",
        "CREATE TABLE IF NOT EXISTS leases (run_id VARCHAR PRIMARY KEY, host VARCHAR, "
        "pid INTEGER, token VARCHAR, since DOUBLE, heartbeat DOUBLE)",
        _RUNS,
        _LIVE_STEP_EVENTS,
        _STEPS,
        _ATTEMPTS,
    ],
    # Resources and drift (orbits_nb.resources). Times are epoch seconds (DOUBLE), as in
    # events; the resource_status view shows them as timestamps.
    2: [
        # One row per resource identity (kind:identity): what was converged, its output.
        "CREATE TABLE IF NOT EXISTS resources (resource_key VARCHAR PRIMARY KEY, "
        "kind VARCHAR NOT NULL, identity VARCHAR NOT NULL, type VARCHAR NOT NULL, "
        "args JSON, desired JSON, version VARCHAR, output JSON, status VARCHAR NOT NULL, "
        "created_at DOUBLE, updated_at DOUBLE, deleted_at DOUBLE, created_by VARCHAR, "
        "updated_by VARCHAR, accepted_at DOUBLE, accepted_by VARCHAR)",
        # Every step that used a resource; role 'user' rows keep it alive until released.
        "CREATE TABLE IF NOT EXISTS resource_users (resource_key VARCHAR NOT NULL, "
        "run_id VARCHAR NOT NULL, step VARCHAR NOT NULL, root_run_id VARCHAR NOT NULL, "
        "workflow VARCHAR, role VARCHAR NOT NULL, first_used DOUBLE, last_used DOUBLE, "
        "released_at DOUBLE, PRIMARY KEY (resource_key, run_id, step))",
        "CREATE SEQUENCE IF NOT EXISTS drift_check_seq START 1",
        # Append-only history of observations: drift checks, convergences, accepts.
        "CREATE TABLE IF NOT EXISTS drift_checks (check_id BIGINT PRIMARY KEY, "
        "batch_id VARCHAR, resource_key VARCHAR NOT NULL, checked_at DOUBLE NOT NULL, "
        "source VARCHAR NOT NULL, status VARCHAR NOT NULL, diffs JSON, actual JSON, "
        "error VARCHAR, run_id VARCHAR, step VARCHAR, duration_s DOUBLE, "
        "checked_by VARCHAR)",
        # One live command per resource across processes.
        "CREATE TABLE IF NOT EXISTS resource_leases (resource_key VARCHAR PRIMARY KEY, "
        "token VARCHAR NOT NULL, host VARCHAR, pid INTEGER, command VARCHAR, "
        "run_id VARCHAR, step VARCHAR, since DOUBLE, heartbeat DOUBLE)",
        """
CREATE OR REPLACE VIEW resource_status AS
WITH latest AS (
  SELECT resource_key, arg_max(status, check_id) AS drift_status,
    max(checked_at) AS last_checked, arg_max(diffs, check_id) AS diffs,
    arg_max(error, check_id) AS error
  FROM drift_checks GROUP BY resource_key),
last_ok AS (
  SELECT resource_key, max(check_id) AS ok_id FROM drift_checks
  WHERE status = 'in_sync' GROUP BY resource_key),
since AS (
  SELECT c.resource_key, min(c.checked_at) AS since
  FROM drift_checks c LEFT JOIN last_ok o USING (resource_key)
  WHERE c.status <> 'in_sync' AND c.check_id > coalesce(o.ok_id, 0)
  GROUP BY c.resource_key),
users AS (
  SELECT resource_key, count(DISTINCT root_run_id) AS users FROM resource_users
  WHERE role = 'user' AND released_at IS NULL GROUP BY resource_key)
SELECT r.resource_key, r.kind, r.identity, r.type, r.status AS lifecycle,
  l.drift_status, to_timestamp(l.last_checked) AS checked_at,
  CASE WHEN l.drift_status <> 'in_sync' THEN to_timestamp(s.since) END AS drift_since,
  l.diffs, l.error, coalesce(u.users, 0) AS users, r.desired, r.output, r.version,
  to_timestamp(r.created_at) AS created_at, to_timestamp(r.updated_at) AS updated_at
FROM resources r LEFT JOIN latest l USING (resource_key)
  LEFT JOIN since s USING (resource_key) LEFT JOIN users u USING (resource_key)
""",
    ],
    # Runbooks (orbits_nb.runbooks): headless notebook runs, schedules, schedule locks.
    # Parameters hold secrets only as {"$secret": name[, "env": VAR]} references.
    3: [
        "CREATE TABLE IF NOT EXISTS notebook_runs (notebook_run_id VARCHAR PRIMARY KEY, "
        "runbook VARCHAR NOT NULL, notebook VARCHAR NOT NULL, parameters JSON, "
        "status VARCHAR NOT NULL, trigger VARCHAR, schedule_id VARCHAR, "
        "scheduled_for TIMESTAMPTZ, resume_of VARCHAR, attempt INTEGER, "
        "started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, duration_s DOUBLE, "
        "output_path VARCHAR, failed_cell INTEGER, error JSON, workflow_runs JSON, "
        "host VARCHAR, pid INTEGER, kernel_pid INTEGER)",
        "CREATE TABLE IF NOT EXISTS schedules (schedule_id VARCHAR PRIMARY KEY, "
        "cron VARCHAR NOT NULL, notebook VARCHAR NOT NULL, parameters JSON, "
        "catch_up VARCHAR NOT NULL, options JSON, enabled BOOLEAN NOT NULL, "
        "created_at TIMESTAMPTZ, last_due TIMESTAMPTZ, skipped INTEGER NOT NULL, "
        "last_skip VARCHAR)",
        # At most one live instance per schedule; a row whose holder died is free.
        "CREATE TABLE IF NOT EXISTS schedule_locks (schedule_id VARCHAR PRIMARY KEY, "
        "notebook_run_id VARCHAR NOT NULL, host VARCHAR, pid INTEGER, since DOUBLE, "
        "heartbeat DOUBLE)",
    ],
    # Human approvals (orbits_nb.approval): one row per request of an Approval step;
    # decision is NULL while pending, then 'approved' or 'rejected' with who and when.
    4: [
        "CREATE TABLE IF NOT EXISTS approvals (request_id VARCHAR PRIMARY KEY, "
        "run_id VARCHAR NOT NULL, step VARCHAR NOT NULL, prompt VARCHAR, details JSON, "
        "requested_at DOUBLE NOT NULL, requested_by VARCHAR, decision VARCHAR, "
        "decided_by VARCHAR, decided_at DOUBLE, comment VARCHAR, decided_via VARCHAR)",
    ],
    # History as tables: the views give way to tables of the same names and columns,
    # folded from events past a watermark (empty here: the store builds them at open).
    5: [
        "DROP VIEW IF EXISTS attempts",
        "DROP VIEW IF EXISTS steps",
        "DROP VIEW IF EXISTS runs",
        "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, workflow VARCHAR, status VARCHAR, "
        "args JSON, result JSON, error JSON, created_at TIMESTAMPTZ, started_at TIMESTAMPTZ, "
        "finished_at TIMESTAMPTZ, duration_s DOUBLE, parent_run_id VARCHAR, meta JSON, "
        "executions BIGINT, updated_at TIMESTAMPTZ)",
        "CREATE TABLE steps (run_id VARCHAR NOT NULL, step VARCHAR NOT NULL, name VARCHAR, "
        "pos INTEGER, status VARCHAR, attempts INTEGER, action VARCHAR, args JSON, "
        "executor VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, duration_s DOUBLE, "
        "result JSON, error JSON, bag JSON, parents JSON, child_run_id VARCHAR, "
        "PRIMARY KEY (run_id, step))",
        "CREATE TABLE attempts (run_id VARCHAR NOT NULL, step VARCHAR NOT NULL, "
        "attempt INTEGER NOT NULL, status VARCHAR, started_at TIMESTAMPTZ, "
        "last_event_at TIMESTAMPTZ, error JSON, PRIMARY KEY (run_id, step, attempt))",
    ],
    # Queues (orbits_nb.workers): declared limits, and the runs submitted to them. A run
    # is running while its run lease (``leases``) has a live holder; ``not_before``
    # holds a parked run (a durable timer) back until then.
    6: [
        "CREATE TABLE IF NOT EXISTS queues (name VARCHAR PRIMARY KEY, concurrency INTEGER, "
        "per_key INTEGER, created_at DOUBLE)",
        "CREATE TABLE IF NOT EXISTS queued_runs (run_id VARCHAR PRIMARY KEY, "
        "queue VARCHAR NOT NULL, key VARCHAR, priority INTEGER NOT NULL, "
        "submitted_at DOUBLE NOT NULL, not_before DOUBLE, taken_by VARCHAR, "
        "taken_at DOUBLE, takes INTEGER NOT NULL)",
    ],
    # Execution history as executed: every execution of a run, when each attempt ended
    # and in which execution, durations of the work done (a replay does not zero them),
    # whether a run ever failed. The tables are emptied and the watermark dropped, so
    # the store folds them again from events at open, as after migration 5.
    7: [
        "ALTER TABLE runs ADD COLUMN had_failures BOOLEAN",
        "ALTER TABLE runs ADD COLUMN last_event_at TIMESTAMPTZ",
        "ALTER TABLE steps ADD COLUMN execution INTEGER",
        "ALTER TABLE attempts ADD COLUMN execution INTEGER",
        "ALTER TABLE attempts ADD COLUMN finished_at TIMESTAMPTZ",
        "ALTER TABLE attempts ADD COLUMN duration_s DOUBLE",
        "CREATE TABLE executions (run_id VARCHAR NOT NULL, execution INTEGER NOT NULL, "
        "status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, "
        "duration_s DOUBLE, host VARCHAR, pid INTEGER, worker VARCHAR, "
        "PRIMARY KEY (run_id, execution))",
        "DELETE FROM attempts",
        "DELETE FROM steps",
        "DELETE FROM runs",
        "DELETE FROM orbits_nb_meta WHERE key = 'history_seq'",
    ],
    # A run had failures when it or any run nested in it, at any depth, had a failed
    # attempt or execution: the flag of a nested run is carried up its parent chain.
    # ``steps.run_status``: the run's status in its steps' rows, so a query of the steps
    # of failed runs reads one table ("the 10 slowest steps of failed runs").
    8: [
        _CARRY_FAILURES,
        "ALTER TABLE steps ADD COLUMN run_status VARCHAR",
        "UPDATE steps SET run_status = runs.status FROM runs "
        "WHERE steps.run_id = runs.run_id",
    ],
}

SCHEMA_VERSION = max(MIGRATIONS)

#: Tables and views documented for users (README).
USER_TABLES = ("runs", "steps", "attempts", "executions", "events", "logs", "leases",
               "schema_version",
               "resources", "resource_users", "drift_checks", "resource_leases",
               "resource_status",
               "notebook_runs", "schedules", "schedule_locks", "approvals", "queues",
               "queued_runs")
