"""`corral ctl`: gunicornc's flags, output and interactive mode, for corral's control socket."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from corral import __version__
from corral.ctl.client import ControlClient, ControlError, parse_command
from corral.ctl.protocol import default_socket_path
from corral.ctl.render import format_response

PROG = "corral ctl"
PROMPT = "corral> "
HISTORY = "~/.corral_ctl_history"
QUIT = ("quit", "exit", "q")

EPILOG = """\
examples:
  corral ctl                       # interactive mode (default socket)
  corral ctl -s /run/app.ctl       # interactive mode, another socket
  corral ctl -c "show workers"     # one command
  corral ctl -c "worker add 2"     # two more workers
  corral ctl -c "show stats" -j    # the reply as JSON, for scripts

The socket is gunicorn's (control_socket): gunicornc works with corral, and corral ctl with
gunicorn 27, with the same commands; `help` lists them.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Control a running corral (or gunicorn 27) through its control socket.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-s",
        "--socket",
        default=None,
        help="control socket path (default: $XDG_RUNTIME_DIR/gunicorn.ctl, else "
        "~/.gunicorn/gunicorn.ctl)",
    )
    parser.add_argument("-c", "--command", help="run one command and exit")
    parser.add_argument("-j", "--json", action="store_true", help="print the reply as JSON")
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `corral ctl` with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.version:
        print(f"{PROG} (corral {__version__})")
        return 0
    path = os.path.abspath(args.socket or default_socket_path())
    if args.command is not None:
        return run_command(path, args.command, json_output=args.json)
    return run_interactive(path, json_output=args.json)


def _show(command: str, data: dict[str, object], json_output: bool, out: TextIO) -> None:
    text = json.dumps(data, indent=2) if json_output else format_response(command, data)
    print(text, file=out)


def run_command(path: str, line: str, *, json_output: bool = False) -> int:
    """One command: 0 when it ran, 1 with one line on stderr when it did not."""
    command, args = parse_command(line)
    full = " ".join([command, *args]).strip()
    try:
        with ControlClient(path) as client:
            data = client.send_command(full)
    except ControlError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    _show(command, data, json_output, sys.stdout)
    return 0


@contextlib.contextmanager
def _history() -> Iterator[None]:
    """readline's line editing and history, on a terminal, when Python has readline."""
    if not sys.stdin.isatty():
        yield
        return
    try:
        import readline
    except ImportError:
        yield
        return
    path = os.path.expanduser(HISTORY)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)


def run_interactive(path: str, *, json_output: bool = False) -> int:
    """A prompt reading commands until `quit` or end of input (a pipe works as well)."""
    client = ControlClient(path)
    try:
        client.connect()
    except ControlError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"Connected to {path}")
    print("Type 'help' for available commands, 'quit' to exit.")
    print()
    try:
        with _history():
            return _prompt_loop(client, json_output)
    except KeyboardInterrupt:
        print()
        return 130
    finally:
        client.close()


def _prompt_loop(client: ControlClient, json_output: bool) -> int:
    while True:
        try:
            line = input(PROMPT).strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        if line.lower() in QUIT:
            return 0
        command, args = parse_command(line)
        try:
            data = client.send_command(" ".join([command, *args]).strip())
            _show(command, data, json_output, sys.stdout)
        except ControlError as exc:
            print(f"Error: {exc}")
            if not _reconnect(client):
                print("Connection lost. Exiting.")
                return 1
        print()


def _reconnect(client: ControlClient) -> bool:
    """After an error: the connection may be gone (a restart); try once, as gunicornc does."""
    client.close()
    try:
        client.connect()
    except ControlError:
        return False
    return True
