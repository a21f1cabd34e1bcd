"""The PostgreSQL team store: the same port, tables and migrations on a server.

:class:`~orbits_nb.store.pg.store.PostgresStore` composes the same table-family modules
as the DuckDB store; what differs is kept here: the connection pool and its faults
(:mod:`.link`), the SQL dialect (:mod:`.dialect`), the history fold and the relations
handed to users (:mod:`.analytics`). Nothing here is imported until a
``postgresql://`` location is opened.
"""
