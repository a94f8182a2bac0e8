"""`labkit tunnel kill`: stop the ngrok agents labkit started (a stale one holds the free session)."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_tunnel_kill(args: argparse.Namespace) -> int:
    from labkit.live.tunnel.tunnel import kill_agents

    stopped = kill_agents()
    if stopped:
        print(f"Stopped {len(stopped)} ngrok agent{'s' if len(stopped) > 1 else ''} "
              f"(pid {', '.join(map(str, stopped))}).")
    else:
        print("No ngrok agent started by labkit is running.")
    return 0


def add_parser(commands: Any) -> None:
    tunnel = commands.add_parser("tunnel", help="manage the ngrok agent")
    tunnel_commands = tunnel.add_subparsers(dest="tunnel_command", metavar="ACTION")
    tunnel_commands.required = True
    kill = tunnel_commands.add_parser("kill", help="stop every ngrok agent labkit started")
    kill.set_defaults(func=cmd_tunnel_kill)
