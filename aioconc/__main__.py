"""The command line: ``python -m aioconc demo`` and ``python -m aioconc bench``.

This is the only place in aioconc that prints; the library itself logs through
``logging.getLogger("aioconc")``.  Both commands import their module lazily, so
``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioconc",
        description="aioconc: asyncio-native workers in sync, asyncio, thread, process and Ray "
        "modes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,bench}")
    sub.add_parser(
        "demo",
        help="a tour in six parts: every mode, a pool map with a progress bar, a rate limit, "
        "a crash survived, await, task records",
    )
    bench = sub.add_parser(
        "bench",
        help="measure aioconc against the raw primitives and concurry, as ratios",
        description="Measure start-up, burst, round trip, awaited calls and CPU use per mode, "
        "against the raw primitive and concurry (when installed), in one run.",
    )
    bench.add_argument("--n", type=int, help="calls per burst (default 20000; --quick: 1000)")
    bench.add_argument("--quick", action="store_true", help="a short run, for smoke tests")
    bench.add_argument("-k", "--repeats", type=int, help="timed repeats, best kept (default 3)")
    bench.add_argument("--modes", help="comma-separated modes to run (default: all available)")
    bench.add_argument("--no-concurry", action="store_true", help="leave concurry out")
    bench.add_argument("--plot", metavar="FILE.png", help="also save a chart (needs matplotlib)")
    bench.add_argument("--check", action="store_true", help="exit with 1 when a target is missed")
    return parser


def _bench(args: argparse.Namespace) -> int:
    from . import _bench

    overrides: dict[str, object] = {}
    if args.n is not None:
        overrides["n"] = args.n
        overrides["concurry_n"] = max(100, args.n // 5)
    if args.repeats is not None:
        overrides["repeats"] = args.repeats
    if args.modes:
        overrides["modes"] = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if args.no_concurry:
        overrides["concurry"] = False
    cfg = _bench.BenchConfig.quick(**overrides) if args.quick else _bench.BenchConfig(**overrides)  # type: ignore[arg-type]

    def log(message: str) -> None:
        print(f"  … {message}", file=sys.stderr, flush=True)

    if args.plot:
        from . import _plot

        try:
            _plot.require_matplotlib()  # before a run of minutes, not after it
        except ImportError as exc:
            print(exc, file=sys.stderr)
            return 2

    unknown = set(cfg.modes) - {entry.mode for entry in _bench.MODES}
    if unknown:
        print(f"unknown mode(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    print(f"aioconc bench: n={cfg.n}, best of {cfg.repeats}, concurry n={cfg.concurry_n}")
    rows, skipped = _bench.run(cfg, log)
    table = _bench.format_table(rows, skipped)
    print(table)
    if args.plot:
        _plot.save_chart(_plot.parse_table(table), args.plot)
        print(f"chart saved to {args.plot}")
    if any(row.failed for row in rows):
        return 1
    if args.check and any(row.met is False for row in rows):
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo()
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
