"""The store's schema, kept as data: numbered migrations applied in order.

``events`` is the append-only system of record; ``runs``, ``steps`` and ``attempts``
are views folded from it, so every state transition stays queryable with SQL.
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
}

SCHEMA_VERSION = max(MIGRATIONS)

#: Tables and views documented for users (README).
USER_TABLES = ("runs", "steps", "attempts", "events", "logs", "leases", "schema_version")
