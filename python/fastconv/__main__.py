"""``python -m fastconv info`` (and the ``fastconv`` command)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastconv", description="fastconv command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print build and run-time facts (SIMD level, threads, CUDA)")
    args = parser.parse_args(argv)
    if args.command == "info":
        import fastconv

        for key, value in fastconv.info().items():
            print(f"{key:14s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
