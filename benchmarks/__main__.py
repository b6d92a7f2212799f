"""``python -m benchmarks``: the benchmark table, from a checkout of aioconc.

The only place in the benchmarks that prints the table; progress notes go to
stderr.  ``--plot`` checks for matplotlib before a run of minutes, not after it.
The measuring modules (which import concurry) are imported once the arguments
are parsed, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _plot

if TYPE_CHECKING:
    from ._run import BenchConfig

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure start-up, burst, round trip, awaited calls and CPU use per mode, "
        "against the raw primitive and concurry (when installed), in one run.",
    )
    parser.add_argument("--n", type=int, help="calls per burst (default 20000; --quick: 1000)")
    parser.add_argument("--quick", action="store_true", help="a short run, for smoke tests")
    parser.add_argument("-k", "--repeats", type=int, help="timed repeats, best kept (default 3)")
    parser.add_argument("--modes", help="comma-separated modes to run (default: all available)")
    parser.add_argument("--no-concurry", action="store_true", help="leave concurry out")
    parser.add_argument("--plot", metavar="FILE.png", help="also save a chart (needs matplotlib)")
    parser.add_argument("--check", action="store_true", help="exit with 1 when a target is missed")
    return parser


def _config(args: argparse.Namespace) -> BenchConfig:
    from ._run import BenchConfig

    overrides: dict[str, Any] = {}
    if args.n is not None:
        overrides["n"] = args.n
        overrides["concurry_n"] = max(100, args.n // 5)
    if args.repeats is not None:
        overrides["repeats"] = args.repeats
    if args.modes:
        overrides["modes"] = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if args.no_concurry:
        overrides["concurry"] = False
    return BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)


def _log(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code.

    0 when every figure was measured (and, with ``--check``, every target met);
    1 when aioconc failed to produce a figure or ``--check`` found a target missed;
    2 for an unknown mode or ``--plot`` without matplotlib (before measuring anything).
    """
    args = _parser().parse_args(argv)
    if args.plot:
        try:
            _plot.require_matplotlib()
        except ImportError as exc:
            print(exc, file=sys.stderr)
            return 2
    from . import _run

    cfg = _config(args)
    unknown = set(cfg.modes) - {entry.mode for entry in _run.MODES}
    if unknown:
        print(f"unknown mode(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    print(f"aioconc bench: n={cfg.n}, best of {cfg.repeats}, concurry n={cfg.concurry_n}")
    rows, skipped = _run.run(cfg, _log)
    table = _run.format_table(rows, skipped)
    print(table)
    if args.plot:
        _plot.save_chart(_plot.parse_table(table), args.plot)
        print(f"chart saved to {args.plot}")
    if any(row.failed for row in rows):
        return 1
    if args.check and any(row.met is False for row in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
