"""Process mode: one dedicated child process per worker, over one duplex socket.

::

    caller threads ──dispatch()──► outbox ──flush──► [CALLS batch] ═══socket═══► child
                   (a burst is one frame; pickled per item)                    runs calls in
    Receiver ◄── [RESULTS batch] ◄═══════════════════════════════════════════ order, batches
      the thread blocked in result(), or else the background loop,               results
      finishes futures
    background loop ◄── process exit (pidfd / fork server report) ──► every pending call
                                                                      fails: WorkerCrashedError

Children start from aioconc's own entry point (``child/_child.py`` loaded by
path in a fresh interpreter), never from the parent's ``__main__``: scripts need
no ``if __name__ == "__main__"`` guard and classes, lambdas and closures from
``__main__`` travel by value (cloudpickle).  ``mp_context`` picks how:

* ``"forkserver"`` (default) and ``"fork"``: forked from aioconc's fork
  server, a single-threaded helper process started once with cloudpickle and
  aioconc preloaded, so a worker starts in milliseconds.  ``"fork"`` maps here
  too: forking the caller itself would copy aioconc's loop thread mid-flight.
* ``"spawn"``: a fresh interpreter per worker (slower to start, shares nothing).

The parent's side, by concern:

* ``_worker`` — ``ProcessWorker``: start, dispatch (the outbox flushed as one
  ``CALLS`` frame), cancelling sent calls, closing; ``backend``;
* ``_writer`` — the socket's write side: frames sent at once without blocking,
  the rest written out by the loop;
* ``_held`` — the calls held back by ``max_queued_tasks``, by priority;
* ``_ending`` — the worker's end: the child's exit, the calls it leaves, finalising;
* ``_receive`` — results read by the loop or by the thread that waits for one;
* ``_launch`` — how children start (fork server or spawn), are watched and reaped;
* ``_limits`` — shared limit sets: the state stays here, children ask over the socket.

The child's side is ``child/``: loaded by path in the worker processes, it
imports nothing of aioconc (see its ``__init__``).  The parent imports it normally.

Like ``child/__init__.py``, this file imports nothing: ``get_backend`` imports
``_worker``, and importing a child-side module in the parent does not load the
worker.
"""
