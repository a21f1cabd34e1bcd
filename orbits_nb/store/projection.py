"""History at analytical speed: ``runs``, ``executions``, ``steps`` and ``attempts``
kept as tables.

``events`` stays the append-only system of record. The history tables are an
incremental projection of it: a fold reads only the events past a recorded watermark
(``orbits_nb_meta`` key ``history_seq``), aggregates them per run, step and attempt,
and merges each aggregate into the existing row (``INSERT ... ON CONFLICT``), so its
cost follows the new events, not the history. A ``run.reset`` deletes the rows of the
steps it discards; their earlier events no longer count.

They say what was executed, as the fold of :mod:`orbits_nb.core.state` does: an open
execution or attempt ends at the first event that closes it (its own end; for an
attempt the step's next attempt; for both the run's next ``run.started``, which
closes it as ``interrupted`` at the last moment the run recorded anything before),
and durations are sums of those ended spans, so a replay adds its own time and never
zeroes the work done before, and time nobody executed a step is not counted. Every
duration is rounded to microseconds (the precision of the timestamps it comes from).

``steps.run_status`` is the run's status copied into its steps' rows, kept current for
every run a batch touches (a run's status changes only through its own events).

Every column is a merge of a few running aggregates (the latest status, the first
start, counts, the first closing event), so folding the events in any number of
pieces gives the tables that one fold of all of them gives: :func:`rebuild` (empty
tables, watermark 0, one fold) is that reference.

The store folds in its idle time, before it hands the file over, and before any read
of the history, never inside a step's commit: the durable step cost stays that of
appending its events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

WATERMARK = "history_seq"
#: The tables of the projection, children first.
TABLES = ("executions", "attempts", "steps", "runs")
_TERMINAL = "('succeeded', 'failed', 'cancelled')"
_STEP_STATUS = ("CASE kind WHEN 'step.started' THEN 'running' ELSE replace(kind, 'step.', '') "
                "END")
_ACTION = "FILTER (WHERE data->>'action' IS NOT NULL)"

#: The batch's events that open or close executions and attempts (no ``data``: a fold
#: reads it once, in the aggregates), each with the run execution it belongs to (the
#: number of the run's ``run.started`` so far) and ``before``: the latest ``ts`` the
#: run recorded before it (what a ``run.started`` interrupts ends there).
_MARKS = """
CREATE OR REPLACE TEMP TABLE _fold_marks AS
SELECT seq, run_id, step, kind, attempt, ts, execution, before, abandoned, host, pid, worker
FROM (
  SELECT e.seq, e.run_id, e.step, e.kind, e.attempt, e.ts,
    coalesce(r.executions, 0) + sum(CASE WHEN e.kind = 'run.started' AND e.step IS NULL
      THEN 1 ELSE 0 END) OVER (PARTITION BY e.run_id ORDER BY e.seq) AS execution,
    greatest(coalesce(epoch(r.last_event_at), max(e.ts) OVER w),
             coalesce(max(e.ts) OVER w, epoch(r.last_event_at))) AS before,
    CASE WHEN e.kind = 'step.cancelled' THEN e.data->>'abandoned' = 'true' END
      AS abandoned,
    CASE WHEN e.kind = 'run.started' THEN e.data->>'host' END AS host,
    CASE WHEN e.kind = 'run.started' THEN TRY_CAST(e.data->>'pid' AS INTEGER) END AS pid,
    CASE WHEN e.kind = 'run.started' THEN e.data->>'worker' END AS worker
  FROM _fold_events e LEFT JOIN runs r USING (run_id)
  WINDOW w AS (PARTITION BY e.run_id ORDER BY e.seq
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
WHERE kind IN ('run.started', 'run.reset', 'run.succeeded', 'run.failed', 'run.cancelled',
               'run.parked', 'step.started', 'step.succeeded', 'step.failed', 'step.cancelled',
               'step.retrying')
"""

_RESETS = """
CREATE OR REPLACE TEMP TABLE _fold_resets AS
SELECT run_id, step, max(seq) AS reset_seq FROM (
  SELECT run_id, seq, unnest(CAST(data->'steps' AS VARCHAR[])) AS step
  FROM _fold_events WHERE kind = 'run.reset' AND step IS NULL)
GROUP BY run_id, step
"""

_LIVE = """
CREATE OR REPLACE TEMP VIEW _fold_live AS
SELECT e.* FROM _fold_events e LEFT JOIN _fold_resets r USING (run_id, step)
WHERE e.step IS NOT NULL AND (r.reset_seq IS NULL OR e.seq > r.reset_seq)
"""

#: The marks of step events since their step's last reset, and those of the run.
_LIVE_MARKS = """
CREATE OR REPLACE TEMP VIEW _fold_live_marks AS
SELECT m.* FROM _fold_marks m LEFT JOIN _fold_resets r USING (run_id, step)
WHERE m.step IS NULL OR r.reset_seq IS NULL OR m.seq > r.reset_seq
"""

_RUN_STATUS = ("CASE kind WHEN 'run.created' THEN 'pending' WHEN 'run.reset' THEN 'pending' "
               "WHEN 'run.started' THEN 'running' WHEN 'run.queued' THEN 'queued' "
               "WHEN 'run.parked' THEN 'queued' ELSE replace(kind, 'run.', '') END")

_RUNS = f"""
INSERT INTO runs (run_id, workflow, status, args, result, error, created_at, started_at,
  finished_at, parent_run_id, meta, executions, updated_at)
WITH r AS (
  SELECT run_id,
    arg_min_null(data->>'workflow', seq) FILTER (WHERE kind = 'run.created') AS workflow,
    arg_min_null(data->'args', seq) FILTER (WHERE kind = 'run.created') AS args,
    arg_min_null(data->>'parent_run_id', seq) FILTER (WHERE kind = 'run.created')
      AS parent_run_id,
    arg_min_null(data->'meta', seq) FILTER (WHERE kind = 'run.created') AS meta,
    arg_max({_RUN_STATUS}, seq)
      FILTER (WHERE kind IN ('run.created', 'run.started', 'run.succeeded', 'run.failed',
                             'run.cancelled', 'run.reset', 'run.queued', 'run.parked'))
      AS status,
    min(ts) AS created,
    arg_max(ts, seq) FILTER (WHERE kind = 'run.started') AS started,
    arg_max(ts, seq) FILTER (WHERE kind IN ('run.succeeded', 'run.failed', 'run.cancelled'))
      AS finished,
    arg_max_null(data->'result', seq) FILTER (WHERE kind = 'run.succeeded') AS result,
    arg_max_null(data->'error', seq) FILTER (WHERE kind IN ('run.failed', 'run.cancelled'))
      AS error,
    count(*) FILTER (WHERE kind = 'run.started') AS executions,
    max(ts) AS updated
  FROM _fold_events WHERE step IS NULL GROUP BY run_id)
SELECT run_id, workflow, status, args,
  CASE WHEN status = 'succeeded' THEN result END,
  CASE WHEN status IN ('failed', 'cancelled') THEN error END,
  to_timestamp(created), to_timestamp(started),
  CASE WHEN status IN {_TERMINAL} THEN to_timestamp(finished) END,
  parent_run_id, meta, executions, to_timestamp(updated)
FROM r
ON CONFLICT (run_id) DO UPDATE SET
  workflow = CASE WHEN runs.workflow IS NULL THEN excluded.workflow ELSE runs.workflow END,
  args = CASE WHEN runs.workflow IS NULL THEN excluded.args ELSE runs.args END,
  parent_run_id = CASE WHEN runs.workflow IS NULL THEN excluded.parent_run_id
                  ELSE runs.parent_run_id END,
  meta = CASE WHEN runs.workflow IS NULL THEN excluded.meta ELSE runs.meta END,
  status = coalesce(excluded.status, runs.status),
  result = CASE WHEN excluded.status IS NULL THEN runs.result ELSE excluded.result END,
  error = CASE WHEN excluded.status IS NULL THEN runs.error ELSE excluded.error END,
  created_at = least(runs.created_at, excluded.created_at),
  started_at = coalesce(excluded.started_at, runs.started_at),
  finished_at = CASE WHEN excluded.status IS NULL THEN runs.finished_at
                ELSE excluded.finished_at END,
  executions = runs.executions + excluded.executions,
  updated_at = greatest(runs.updated_at, excluded.updated_at)
"""

_EXECUTIONS = """
INSERT INTO executions (run_id, execution, status, started_at, host, pid, worker)
SELECT run_id, execution, 'running', to_timestamp(ts), host, pid, worker
FROM _fold_marks WHERE kind = 'run.started' AND step IS NULL
"""

#: An open execution ends at the first of: the run's end (its status), a ``run.parked``
#: (parked: it gave up its worker slot), a ``run.reset`` or the next ``run.started``
#: (interrupted, at the last moment the run recorded anything before: a reset is only
#: made once nobody executes the run).
_CLOSE_EXECUTIONS = """
UPDATE executions SET status = c.status, finished_at = c.finished_at,
  duration_s = round(epoch(c.finished_at) - epoch(executions.started_at), 6)
FROM (
  SELECT x.run_id, x.execution,
    arg_min(CASE WHEN e.kind IN ('run.started', 'run.reset') THEN 'interrupted'
            WHEN e.kind = 'run.parked' THEN 'parked'
            ELSE replace(e.kind, 'run.', '') END, e.seq) AS status,
    arg_min(CASE WHEN e.kind IN ('run.started', 'run.reset')
            THEN to_timestamp(greatest(e.before, epoch(x.started_at)))
            ELSE to_timestamp(e.ts) END, e.seq) AS finished_at
  FROM executions x JOIN _fold_marks e ON e.run_id = x.run_id AND e.step IS NULL
    AND ((e.kind = 'run.started' AND e.execution > x.execution)
         OR (e.kind = 'run.reset' AND e.execution >= x.execution)
         OR (e.kind IN ('run.succeeded', 'run.failed', 'run.cancelled', 'run.parked')
             AND e.execution >= x.execution))
  WHERE x.finished_at IS NULL
  GROUP BY x.run_id, x.execution) c
WHERE executions.run_id = c.run_id AND executions.execution = c.execution
"""

_STEPS = f"""
INSERT INTO steps (run_id, step, name, pos, status, attempts, action, args, executor,
  started_at, finished_at, result, error, bag, parents, child_run_id)
WITH s AS (
  SELECT run_id, step,
    arg_max_null(data->>'name', seq) {_ACTION} AS name,
    arg_max_null(CAST(data->>'pos' AS INTEGER), seq) {_ACTION} AS pos,
    arg_max_null(data->>'action', seq) {_ACTION} AS action,
    arg_max_null(data->'args', seq) {_ACTION} AS args,
    arg_max_null(data->>'executor', seq) {_ACTION} AS executor,
    arg_max_null(data->'parents', seq) {_ACTION} AS parents,
    arg_max_null(data->>'child_run_id', seq) {_ACTION} AS child_run_id,
    arg_max({_STEP_STATUS}, seq) FILTER (WHERE kind <> 'step.bag') AS status,
    max(attempt) AS attempts,
    min(ts) AS started,
    arg_max(ts, seq) FILTER (WHERE kind <> 'step.bag') AS last,
    arg_max_null(data->'result', seq) FILTER (WHERE kind = 'step.succeeded') AS result,
    arg_max_null(data->'error', seq) FILTER (WHERE kind IN ('step.failed', 'step.retrying'))
      AS error,
    arg_max_null(data->'bag', seq) FILTER (WHERE kind IN ('step.waiting', 'step.bag'))
      AS bag
  FROM _fold_live GROUP BY run_id, step)
SELECT run_id, step, name, pos, status, attempts, action, args, executor,
  to_timestamp(started),
  CASE WHEN status IN {_TERMINAL} THEN to_timestamp(last) END,
  CASE WHEN status = 'succeeded' THEN result END,
  CASE WHEN status <> 'succeeded' THEN error END,
  bag, parents, child_run_id
FROM s
ON CONFLICT (run_id, step) DO UPDATE SET
  name = CASE WHEN excluded.action IS NULL THEN steps.name ELSE excluded.name END,
  pos = CASE WHEN excluded.action IS NULL THEN steps.pos ELSE excluded.pos END,
  action = coalesce(excluded.action, steps.action),
  args = CASE WHEN excluded.action IS NULL THEN steps.args ELSE excluded.args END,
  executor = CASE WHEN excluded.action IS NULL THEN steps.executor ELSE excluded.executor END,
  parents = CASE WHEN excluded.action IS NULL THEN steps.parents ELSE excluded.parents END,
  child_run_id = CASE WHEN excluded.action IS NULL THEN steps.child_run_id
                 ELSE excluded.child_run_id END,
  status = coalesce(excluded.status, steps.status),
  attempts = greatest(steps.attempts, excluded.attempts),
  started_at = least(steps.started_at, excluded.started_at),
  finished_at = CASE WHEN excluded.status IS NULL THEN steps.finished_at
                ELSE excluded.finished_at END,
  result = CASE WHEN excluded.status IS NULL THEN steps.result ELSE excluded.result END,
  error = CASE WHEN coalesce(excluded.status, steps.status) <> 'succeeded'
    THEN coalesce(excluded.error, steps.error) END,
  bag = coalesce(excluded.bag, steps.bag)
"""

_ATTEMPTS = f"""
INSERT INTO attempts (run_id, step, attempt, status, started_at, last_event_at, error)
SELECT run_id, step, attempt,
  arg_max({_STEP_STATUS}, seq) FILTER (WHERE kind <> 'step.bag'),
  to_timestamp(min(ts)), to_timestamp(max(ts)),
  arg_max_null(data->'error', seq) FILTER (WHERE kind IN ('step.failed', 'step.retrying'))
FROM _fold_live WHERE attempt IS NOT NULL
GROUP BY run_id, step, attempt
ON CONFLICT (run_id, step, attempt) DO UPDATE SET
  status = CASE WHEN attempts.finished_at IS NULL
    THEN coalesce(excluded.status, attempts.status) ELSE attempts.status END,
  started_at = least(attempts.started_at, excluded.started_at),
  last_event_at = greatest(attempts.last_event_at, excluded.last_event_at),
  error = coalesce(excluded.error, attempts.error)
"""

#: The run execution an attempt started in (that of its ``step.started``).
_ATTEMPT_EXECUTIONS = """
UPDATE attempts SET execution = m.execution FROM (
  SELECT run_id, step, attempt, arg_min(execution, seq) AS execution
  FROM _fold_live_marks WHERE kind = 'step.started' GROUP BY run_id, step, attempt) m
WHERE attempts.execution IS NULL AND attempts.run_id = m.run_id
  AND attempts.step = m.step AND attempts.attempt = m.attempt
"""

#: An open attempt ends at the first of: its own end (``abandoned`` when a cancelled
#: attempt's code was left running), the step's next attempt, the run's parking
#: (parked), or the run's next execution (interrupted, at the last moment the run
#: recorded anything before it).
_CLOSE_ATTEMPTS = f"""
UPDATE attempts SET status = c.status, finished_at = c.finished_at,
  duration_s = round(epoch(c.finished_at) - epoch(attempts.started_at), 6)
FROM (
  WITH open AS (SELECT run_id, step, attempt, execution, started_at FROM attempts
                WHERE finished_at IS NULL),
  closers AS (
    SELECT a.run_id, a.step, a.attempt, e.seq,
      CASE WHEN e.abandoned THEN 'abandoned'
           ELSE {_STEP_STATUS.replace("kind", "e.kind")} END AS status,
      to_timestamp(e.ts) AS finished_at
    FROM open a JOIN _fold_live_marks e ON e.run_id = a.run_id AND e.step = a.step
      AND e.attempt = a.attempt AND e.kind IN ('step.succeeded', 'step.failed',
                                               'step.cancelled', 'step.retrying')
    UNION ALL
    SELECT a.run_id, a.step, a.attempt, e.seq, 'interrupted', to_timestamp(e.ts)
    FROM open a JOIN _fold_live_marks e ON e.run_id = a.run_id AND e.step = a.step
      AND e.kind = 'step.started' AND e.attempt > a.attempt
    UNION ALL
    SELECT a.run_id, a.step, a.attempt, e.seq, 'interrupted',
      to_timestamp(greatest(e.before, epoch(a.started_at)))
    FROM open a JOIN _fold_marks e ON e.run_id = a.run_id AND e.step IS NULL
      AND ((e.kind = 'run.started' AND e.execution > a.execution)
           OR (e.kind = 'run.reset' AND e.execution >= a.execution))
    UNION ALL
    SELECT a.run_id, a.step, a.attempt, e.seq, 'parked',
      to_timestamp(greatest(e.ts, epoch(a.started_at)))
    FROM open a JOIN _fold_marks e ON e.run_id = a.run_id AND e.step IS NULL
      AND e.kind = 'run.parked' AND e.execution >= a.execution)
  SELECT run_id, step, attempt, arg_min(status, seq) AS status,
    arg_min(finished_at, seq) AS finished_at
  FROM closers GROUP BY run_id, step, attempt) c
WHERE attempts.run_id = c.run_id AND attempts.step = c.step AND attempts.attempt = c.attempt
"""

#: A step's work is the sum of its ended attempts (since a reset); a run's, the
#: sum of its ended executions. Only the runs this batch touched are summed again.
_STEP_WORK = """
UPDATE steps SET execution = w.execution, duration_s = w.work FROM (
  WITH touched AS (SELECT DISTINCT run_id FROM _fold_events),
  s AS (SELECT run_id, step FROM steps WHERE run_id IN (SELECT run_id FROM touched))
  SELECT a.run_id, a.step, arg_max(a.execution, a.attempt) AS execution,
    round(sum(a.duration_s), 6) AS work
  FROM attempts a JOIN s ON a.run_id = s.run_id AND a.step = s.step
  WHERE a.run_id IN (SELECT run_id FROM touched)
  GROUP BY a.run_id, a.step) w
WHERE steps.run_id = w.run_id AND steps.step = w.step
"""

_RUN_WORK = """
UPDATE runs SET duration_s = w.work,
  had_failures = coalesce(runs.had_failures, false) OR w.failed,
  last_event_at = greatest(coalesce(runs.last_event_at, w.last), w.last)
FROM (
  SELECT e.run_id, bool_or(e.kind IN ('run.failed', 'step.failed', 'step.retrying'))
      AS failed, to_timestamp(max(e.ts)) AS last,
    (SELECT round(sum(x.duration_s), 6) FROM executions x
     WHERE x.run_id = e.run_id) AS work
  FROM _fold_events e GROUP BY e.run_id) w
WHERE runs.run_id = w.run_id
"""

#: A run had failures when it or any run nested in it (at any depth) had a failed
#: attempt or execution: the flag of the runs ``{touched}`` names is carried up their
#: parent chain (``{touched}``: a query of run ids; the store's own, or the server's).
CARRY_FAILURES = """
UPDATE runs SET had_failures = true WHERE NOT coalesce(had_failures, false)
AND run_id IN (
  WITH RECURSIVE up(run_id) AS (
    SELECT parent_run_id FROM runs WHERE had_failures AND parent_run_id IS NOT NULL
      AND run_id IN ({touched})
    UNION
    SELECT r.parent_run_id FROM runs r JOIN up ON r.run_id = up.run_id
    WHERE r.parent_run_id IS NOT NULL)
  SELECT run_id FROM up)
"""

#: The run's status copied into its steps' rows (``steps.run_status``), for the runs
#: this batch touched (a run's status changes only through its own events).
_STEP_RUN_STATUS = """
UPDATE steps SET run_status = runs.status FROM runs
WHERE steps.run_id = runs.run_id
  AND runs.run_id IN (SELECT DISTINCT run_id FROM _fold_events)
  AND steps.run_status IS DISTINCT FROM runs.status
"""


def lag(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """``(watermark, newest event seq)``: the fold is current when they are equal."""
    high = con.execute("SELECT last_value FROM duckdb_sequences() WHERE sequence_name = "
                       "'event_seq' AND NOT temporary").fetchone()
    mark = con.execute("SELECT value FROM orbits_nb_meta WHERE key = ?",
                       [WATERMARK]).fetchone()
    return (int(mark[0]) if mark else 0), int(high[0] or 0) if high else 0


def fold(con: duckdb.DuckDBPyConnection, low: int, high: int) -> None:
    """Merge the events with ``low < seq <= high`` into the tables (in the caller's
    transaction, which also takes back the temporary objects if anything fails) and
    move the watermark to ``high``."""
    con.execute("CREATE OR REPLACE TEMP VIEW _fold_events AS SELECT * FROM events "
                f"WHERE seq > {int(low)} AND seq <= {int(high)}")
    con.execute(_MARKS)  # reads the runs' rows as they were before this batch
    con.execute(_RESETS)
    con.execute(_LIVE)
    con.execute(_LIVE_MARKS)
    resets = con.execute("SELECT count(*) FROM _fold_resets").fetchone()
    if resets and resets[0]:
        for table in ("steps", "attempts"):
            con.execute(f"DELETE FROM {table} USING _fold_resets r WHERE "
                        f"{table}.run_id = r.run_id AND {table}.step = r.step")
    for statement in (_RUNS, _EXECUTIONS, _CLOSE_EXECUTIONS, _STEPS, _ATTEMPTS,
                      _ATTEMPT_EXECUTIONS, _CLOSE_ATTEMPTS, _STEP_WORK, _RUN_WORK,
                      CARRY_FAILURES.format(touched="SELECT run_id FROM _fold_events"),
                      _STEP_RUN_STATUS):
        con.execute(statement)
    con.execute("INSERT OR REPLACE INTO orbits_nb_meta VALUES (?, ?)",
                [WATERMARK, str(int(high))])
    con.execute("DROP VIEW _fold_live_marks")
    con.execute("DROP VIEW _fold_live")
    con.execute("DROP TABLE _fold_resets")
    con.execute("DROP TABLE _fold_marks")
    con.execute("DROP VIEW _fold_events")


def rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Empty the tables and fold every event again (in the caller's transaction)."""
    for table in TABLES:
        con.execute(f"DELETE FROM {table}")
    fold(con, 0, lag(con)[1])
