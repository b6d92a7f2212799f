"""The child side of process mode: what runs in worker processes and the fork server.

* ``_child`` — the entry point (``main``): one worker's calls (``_Child``) or the
  fork server; ``BOOTSTRAP``, the command line that loads it;
* ``_channel`` — the child's end of a worker's socket, shared by its threads;
* ``_wire`` — the framing both sides speak.

The rule of this folder: its modules import **only the standard library,
cloudpickle and each other** — and the codec, ``aioconc/_codec.py``, which keeps
the same rule (checked by ``tests/test_layout.py``).  A child never imports
aioconc itself, unless the user's class does: it loads these files *by path*,
under bare packages named ``aioconc_process...`` over aioconc's own directories
whose ``__init__`` modules never run (``BOOTSTRAP`` in ``_child``).  So a child
starts without the parent's ``__main__`` and without aioconc's import time.

The parent imports these modules normally, as
``aioconc._backends.process.child._wire`` and so on.  This file imports nothing:
in the parent it runs like any package's, and nothing here may pull the rest of
aioconc into a child that imports it by mistake.
"""
