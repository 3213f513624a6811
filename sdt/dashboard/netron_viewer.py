"""Serve saved models with Netron (in-process HTTP server threads) for the Architecture page's iframe."""

from __future__ import annotations

import logging
import threading
from pathlib import Path


class NetronViewer:
    """Starts one Netron server per model file on a free local port, on demand, and remembers it.

    `host` is the address Netron binds to; `public_host` is the name the browser uses to reach it.
    """

    def __init__(self, host: str = "127.0.0.1", public_host: str | None = None, max_servers: int = 8):
        self.host = host
        self.public_host = public_host or ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        self.max_servers = max_servers
        self._servers: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def url_for(self, path: str | Path) -> str | None:
        key = str(Path(path).resolve())
        with self._lock:
            if key not in self._servers:
                try:
                    import netron
                    logging.getLogger("netron").setLevel(logging.WARNING)
                    if len(self._servers) >= self.max_servers:      # free the oldest
                        oldest = next(iter(self._servers))
                        netron.stop(self._servers.pop(oldest))
                    self._servers[key] = tuple(netron.serve(key, address=(self.host, 0), browse=False))
                except Exception:          # noqa: BLE001 - the layer summary remains
                    return None
            port = self._servers[key][1]
        return f"http://{self.public_host}:{port}/"

    def stop(self) -> None:
        with self._lock:
            try:
                import netron
            except ImportError:
                return
            for address in self._servers.values():
                try:
                    netron.stop(address)
                except Exception:          # noqa: BLE001
                    pass
            self._servers.clear()
