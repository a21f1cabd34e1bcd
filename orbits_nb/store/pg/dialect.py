"""The DuckDB SQL of the table-family modules, spoken to PostgreSQL.

The table families write their SQL once, in DuckDB's dialect; the few constructs
PostgreSQL lacks are rewritten here (``INSERT OR REPLACE``, ``?`` placeholders,
``CAST(json AS VARCHAR[])``...) or provided as functions the store creates with its
schema (``epoch``, ``arg_max``, ``list_contains``...). The history fold itself runs in
DuckDB (see :mod:`.analytics`), so no aggregate of it needs a translation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: Tables written with ``INSERT OR REPLACE``: their key and all their columns.
_REPLACED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "orbits_nb_meta": (("key",), ("key", "value")),
    "leases": (("run_id",), ()),
    "resource_leases": (("resource_key",), ()),
    "schedule_locks": (("schedule_id",), ()),
}
#: Array parameters that fill JSON columns (PostgreSQL does not cast text to json on
#: assignment), by the table an ``INSERT ... SELECT unnest(...)`` fills.
_JSON_ARRAYS = {"events": (6,), "drift_checks": (6, 7)}
#: Views of the first migration that a later one replaced by tables: never made here.
_SUPERSEDED = re.compile(r"^\s*CREATE OR REPLACE VIEW (runs|steps|attempts) AS", re.I)

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$\$.*?\$\$|\$(\d+)|\?|%",
                     re.S)
_CAST_LIST = re.compile(r"CAST\(([^()]+?) AS VARCHAR\[\]\)", re.I)
_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+)\s*(\(([^)]*)\))?", re.I)
_DOUBLE = re.compile(r"\bDOUBLE\b(?!\s+PRECISION)", re.I)

#: Functions the DuckDB dialect has built in, created with the PostgreSQL schema.
HELPERS = [
    "CREATE OR REPLACE FUNCTION epoch(timestamptz) RETURNS double precision LANGUAGE sql "
    "IMMUTABLE AS $$ SELECT extract(epoch FROM $1)::double precision $$",
    "CREATE OR REPLACE FUNCTION orbits_nb_text_array(json) RETURNS varchar[] LANGUAGE sql "
    "IMMUTABLE AS $$ SELECT CASE WHEN $1 IS NULL THEN NULL ELSE "
    "array(SELECT json_array_elements_text($1)) END $$",
    "CREATE OR REPLACE FUNCTION list_contains(anyarray, anyelement) RETURNS boolean "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT $2 = ANY($1) $$",
    "CREATE OR REPLACE FUNCTION round(double precision, integer) RETURNS double precision "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT round($1::numeric, $2)::double precision $$",
    "CREATE OR REPLACE FUNCTION orbits_nb_arg_max(state text[], value text, key bigint) "
    "RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN value IS NULL OR key IS "
    "NULL THEN state WHEN state IS NULL OR key > state[1]::bigint THEN "
    "ARRAY[key::text, value] ELSE state END $$",
    "CREATE OR REPLACE FUNCTION orbits_nb_arg_max(state text[], value json, key bigint) "
    "RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT orbits_nb_arg_max(state, "
    "value::text, key) $$",
    "CREATE OR REPLACE FUNCTION orbits_nb_arg_text(text[]) RETURNS text LANGUAGE sql "
    "IMMUTABLE AS $$ SELECT $1[2] $$",
    "CREATE OR REPLACE FUNCTION orbits_nb_arg_json(text[]) RETURNS json LANGUAGE sql "
    "IMMUTABLE AS $$ SELECT $1[2]::json $$",
    "CREATE OR REPLACE AGGREGATE arg_max(text, bigint) (SFUNC = orbits_nb_arg_max, "
    "STYPE = text[], FINALFUNC = orbits_nb_arg_text)",
    "CREATE OR REPLACE AGGREGATE arg_max(json, bigint) (SFUNC = orbits_nb_arg_max, "
    "STYPE = text[], FINALFUNC = orbits_nb_arg_json)",
]

#: Indexes the server needs for the store's own reads (DuckDB scans instead).
INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS events_seq_idx ON events (seq)",
    "CREATE INDEX IF NOT EXISTS events_run_idx ON events (run_id, seq)",
    "CREATE INDEX IF NOT EXISTS logs_run_idx ON logs (run_id, ts)",
    "CREATE INDEX IF NOT EXISTS drift_checks_key_idx ON drift_checks (resource_key, "
    "check_id)",
    "CREATE INDEX IF NOT EXISTS approvals_step_idx ON approvals (run_id, step)",
    "CREATE INDEX IF NOT EXISTS runs_created_idx ON runs (created_at)",
]


def translate(query: str) -> str:
    """``query`` (DuckDB dialect, as the table families write it) for PostgreSQL."""
    if _SUPERSEDED.match(query):
        return "SELECT 1"
    head = query.lstrip()[:12].upper()
    if head.startswith(("CREATE TABLE", "ALTER TABLE")):
        query = _DOUBLE.sub("DOUBLE PRECISION", query)
    query = query.replace("::DOUBLE[]", "::float8[]").replace("TRY_CAST(", "CAST(")
    query = query.replace("table_schema = 'main'", "table_schema = current_schema()")
    query = _CAST_LIST.sub(r"orbits_nb_text_array(\1)", query)
    match = re.match(r"\s*INSERT INTO (\w+) SELECT", query)
    if match and match.group(1) in _JSON_ARRAYS:
        for number in _JSON_ARRAYS[match.group(1)]:
            query = query.replace(f"unnest(${number}::VARCHAR[])",
                                  f"unnest(${number}::VARCHAR[])::json")
        if match.group(1) == "drift_checks":
            query += " AS c"  # PostgreSQL 15 names every subquery in FROM
    replaced = _REPLACE.match(query)
    if replaced:
        query = _upsert(query, replaced)
    return query


def _upsert(query: str, match: re.Match[str]) -> str:
    table = match.group(1)
    keys, columns = _REPLACED[table]
    if match.group(3):
        columns = tuple(c.strip() for c in match.group(3).split(","))
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    body = query[match.end():]
    names = f" ({', '.join(columns)})" if columns else ""
    return (f"INSERT INTO {table}{names}{body} ON CONFLICT ({', '.join(keys)}) "
            f"DO UPDATE SET {sets}")


def bind(query: str, params: Sequence[Any] | None, *, client: bool = False
         ) -> tuple[str, list[Any]]:
    """``query`` with DuckDB's ``?`` (in order) or ``$n`` placeholders as PostgreSQL's
    ``$n`` (``client``: as psycopg's ``%s``, ``%`` escaped), and its parameters."""
    values = list(params or [])
    count = 0
    order: list[int] = []

    def swap(match: re.Match[str]) -> str:
        nonlocal count
        token = match.group(0)
        if match.group(1) is not None:
            number = int(match.group(1))
        elif token == "?":
            count += 1
            number = count
        elif token == "%":
            return "%%" if client else "%"
        else:
            return token.replace("%", "%%") if client else token
        order.append(number - 1)
        return "%s" if client else f"${number}"

    text = _TOKENS.sub(swap, query)
    if client:
        return text, [values[i] for i in order]
    return text, values
