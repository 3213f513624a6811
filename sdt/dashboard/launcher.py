"""Start the dashboard of a run: `sdt-dashboard` or `python3 dashboard/launcher.py` [--log-folder DIR] [--port P] [--host H]."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from pathlib import Path

from sdt.core.arguments import ArgumentParser


def bind_problem(host: str, port: int) -> str | None:
    """Why the dashboard cannot listen on host:port (None: it can)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"--host {host!r} is not an address of this machine"
    family, kind, protocol, _, address = addresses[0]
    with socket.socket(family, kind, protocol) as probe:
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use; choose another with --port"
            return f"cannot listen on {host}:{port}: {err.strerror or err}"
    return None


def port_number(text: str) -> int:
    """--port: a whole number from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 65535, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 65535, got {port}")
    return port


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description="Dashboard of a Symbolic DNN-Tuner run (reads the database read-only).")
    parser.add_argument("--log-folder", default="./log_folder",
                        help="the run's log folder (default: ./log_folder in the current directory)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8050, help="port to listen on (default 8050)")
    parser.add_argument("--compare", action="append", default=[], metavar="FOLDER",
                        help="another run's log folder for the Compare page (repeatable), e.g. a benchmark's bo run")
    parser.add_argument("--debug", action="store_true", help="Dash debug mode")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    log_folder = Path(args.log_folder).expanduser().resolve()
    problem = bind_problem(args.host, args.port)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from sdt.dashboard.app import create_app
    from sdt.dashboard.netron_viewer import NetronViewer

    if not args.debug:
        # One line per page refresh (every 3 s, per open page) would bury everything else.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    viewer = NetronViewer(host=args.host)
    app = create_app(log_folder, viewer=viewer,
                     compare=[Path(folder).expanduser().resolve() for folder in args.compare])
    print(f"dashboard of {log_folder} at http://{args.host}:{args.port}/", flush=True)
    try:
        app.run(host=args.host, port=args.port, debug=args.debug)
    finally:
        viewer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
