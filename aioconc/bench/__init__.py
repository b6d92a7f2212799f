"""``python -m aioconc bench``: aioconc measured against the raw primitives and concurry.

The benchmark ships inside the package so that an installed aioconc can measure
itself on the machine it runs on; ``benchmarks/`` in the repository holds the
longer, single-purpose scripts (pools, process round trips, Ray) built on it.

* ``_run.py`` — the figures per mode (start-up, burst, round trip, awaited, CPU)
  and their targets;
* ``_awaited.py`` — the figures taken inside a running loop (awaited in coroutines);
* ``_subjects.py`` / ``_workers.py`` — what is measured: aioconc, concurry, the
  raw primitives;
* ``_table.py`` — rows, targets and the printed table; ``_plot.py`` — the chart.

Nothing is imported here: a process worker's child imports ``_workers.py``
through this package and must not pay for ``_run``'s imports (concurry).
"""
