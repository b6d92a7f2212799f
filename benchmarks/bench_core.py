"""The core benchmark: start-up, burst, round trip, awaited calls and CPU per mode.

A thin wrapper over ``python -m aioconc bench`` (the measuring code lives in
``aioconc.bench`` so that an installed aioconc can run it too); it takes the same
arguments::

    python benchmarks/bench_core.py --quick
    python benchmarks/bench_core.py --n 50000 --plot bench.png
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("aioconc") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aioconc.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
