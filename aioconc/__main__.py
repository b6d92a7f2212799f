"""The command line: ``python -m aioconc demo``.

This is the only place in aioconc that prints; the library itself logs through
``logging.getLogger("aioconc")``.  The demo's module is imported lazily, so
``--help`` stays instant.  The benchmarks are not part of the package: they live
in a checkout's ``benchmarks/`` (``python -m benchmarks``), and ``bench`` here
only says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

BENCH_MOVED = (
    "aioconc: the benchmarks are not part of the installed package; from a checkout of "
    "aioconc, run them with `python -m benchmarks` (same options) or `nox -s bench`"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioconc",
        description="aioconc: asyncio-native workers in sync, asyncio, thread, process and Ray "
        "modes.",
        epilog="The benchmarks live in a checkout's benchmarks/: python -m benchmarks "
        "(or nox -s bench).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo}")
    sub.add_parser(
        "demo",
        help="a tour in six parts: every mode, a pool map with a progress bar, a rate limit, "
        "a crash survived, await, task records",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    ``bench`` (which moved out of the package) prints where the benchmarks are
    and returns 2, as argparse does for a command it does not know.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["bench"]:
        print(BENCH_MOVED, file=sys.stderr)
        return 2
    _parser().parse_args(args)  # demo is the only command: argparse exits on anything else
    from ._demo import run_demo

    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
