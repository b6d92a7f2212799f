"""aioconc's benchmarks: aioconc measured against the raw primitives and concurry.

Run from a checkout (they are not in the wheel)::

    python -m benchmarks [--quick] [--modes sync,thread] [--plot FILE.png] [--check]
    nox -s bench -- --quick

* ``__main__.py`` — the command line;
* ``_run.py`` — the figures per mode (start-up, burst, round trip, awaited, CPU)
  and their targets (SPEC.md §2);
* ``_awaited.py`` — the figures taken inside a running loop (awaited in coroutines);
* ``_subjects.py`` / ``_workers.py`` — what is measured: aioconc, concurry, the
  raw primitives;
* ``_table.py`` — rows, targets and the printed table; ``_plot.py`` — the chart;
* ``_timing.py`` — the one way every benchmark times: warm-up, turns, best kept;
* ``bench_pool.py``, ``bench_process.py``, ``bench_ray.py`` — longer, single-purpose
  runs (``python -m benchmarks.bench_pool --quick``), timed and printed the same way.

Nothing is imported here: a process worker's child imports ``_workers.py``
through this package and must not pay for ``_run``'s imports (concurry).
"""
