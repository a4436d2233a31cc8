"""The ``fastconv`` command (also ``python -m fastconv``): ``info``, ``train``, ``evaluate`` and ``runs``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command and return its exit code."""
    from . import cli

    parser = argparse.ArgumentParser(prog="fastconv", description="fastconv command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print build and run-time facts (SIMD level, threads, CUDA)")
    cli.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "info":
        import fastconv

        for key, value in fastconv.info().items():
            print(f"{key:14s} {value}")
        return 0
    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
