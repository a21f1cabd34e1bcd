"""Notebook views of runs: diagrams, static HTML, the live monitor and the dashboard.

Everything here is imported lazily (from ``Run._repr_mimebundle_``, ``Run.graph()``
and ``orbits_nb.dashboard``), so importing orbits_nb stays free of widgets.
"""
