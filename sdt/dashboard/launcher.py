"""Start the dashboard of a run: `sdt-dashboard` or `python3 dashboard/launcher.py` [--log-folder DIR] [--port P] [--host H]."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Dashboard of a Symbolic DNN-Tuner run (reads the database read-only).")
    parser.add_argument("--log-folder", default="./log_folder",
                        help="the run's log folder (default: ./log_folder in the current directory)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port to listen on (default 8050)")
    parser.add_argument("--debug", action="store_true", help="Dash debug mode")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    log_folder = Path(args.log_folder).expanduser().resolve()
    if not port_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is already in use; choose another with --port", file=sys.stderr)
        return 2
    from sdt.dashboard.app import create_app
    from sdt.dashboard.netron_viewer import NetronViewer

    viewer = NetronViewer(host=args.host)
    app = create_app(log_folder, viewer=viewer)
    print(f"dashboard of {log_folder} at http://{args.host}:{args.port}/", flush=True)
    try:
        app.run(host=args.host, port=args.port, debug=args.debug)
    finally:
        viewer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
