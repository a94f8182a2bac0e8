"""The `labkit` command: `doctor`, `sandbox`, `setup`, `lab` and `tunnel kill`, a module per command.

Each command imports what it needs when it runs, so `labkit --help` is instant and a part that is
missing or broken only fails the check or command that uses it.

May import: anything in labkit: it is the top layer, and nothing imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from labkit.cli import doctor as _doctor_cmd
from labkit.cli import lab as _lab_cmd
from labkit.cli import sandbox as _sandbox_cmd
from labkit.cli import setup as _setup_cmd
from labkit.cli import tunnel as _tunnel_cmd
from labkit.cli.doctor import Check, doctor, print_report
from labkit.cli.lab import lab_command, notebooks_dir
from labkit.errors import LabkitError

__all__ = ["Check", "build_parser", "doctor", "lab_command", "main", "notebooks_dir", "print_report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="A Jupyter lab for the Vonage Voice API.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in (_doctor_cmd, _sandbox_cmd, _setup_cmd, _lab_cmd, _tunnel_cmd):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `labkit ...`; returns the exit code (0 ok, 1 a problem, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LabkitError as exc:
        print(f"labkit {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


