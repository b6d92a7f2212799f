"""A plain script with no main guard: process workers from __main__ (run by test_process)."""

import sys

from aioconc import Worker

print("top-level ran")  # must appear once: the child never re-imports this script


class ScriptError(Exception):
    """An exception class that exists only in this script."""


class Scaler(Worker):
    def __init__(self, factor):
        self.factor = factor

    def scale(self, x):
        return x * self.factor

    def apply(self, fn, x):
        return fn(x)

    def fail(self):
        raise ScriptError("from the script")


offset = 100
add_offset = lambda x: x + offset  # noqa: E731 (a lambda is the point)

context = sys.argv[1] if len(sys.argv) > 1 else "forkserver"
w = Scaler.options(mode="process", mp_context=context).init(3)
print("scale", w.scale(14).result(30))
print("lambda", w.apply(add_offset, 1).result(30))
print("closure", w.apply(lambda x: [x, offset], 2).result(30))
try:
    w.fail().result(30)
except ScriptError as exc:
    print("error", type(exc).__name__, exc)
w.stop()
print("done")
