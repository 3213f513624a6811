"""Serve the selected saved model with Netron (an in-process HTTP server thread) for the
Architecture page's iframe.

One Netron server at a time, always on the same local port, serving the model selected last.
Netron keeps the model it serves on a handler class that all its servers share, so a second
server would make the first one serve the second model too (the Architecture page then drew one
trial's network beside another's layer summary). Serving again on the same port stops the old
server first, and the same origin keeps Netron's cookie answer across models. The URL carries
the model's name, so the iframe reloads when the selection changes. Two browser tabs that select
different models take turns: each draws the model selected last when it loads.

Netron's page, as its Python package serves it, asks ipinfo.io for the visitor's country, shows a
cookie prompt and then sends usage reports to Google Analytics, and after 180 days refuses to
draw until updated. None of that belongs in a local dashboard: the viewer serves Netron's
browser.js without those start-up steps (`quiet_browser_script`), so the page draws the model at
once and requests nothing from any host but its own server.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from pathlib import Path


class NetronViewer:
    """Serves one model file at a time with Netron on a local port chosen once.

    `host` is the address Netron binds to; `public_host` is the name the browser uses to reach it.
    """

    def __init__(self, host: str = "127.0.0.1", public_host: str | None = None):
        self.host = host
        self.public_host = public_host or ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        self._address: tuple[str, int] | None = None     # the server's, once started
        self._served: str | None = None                 # the model file it serves
        self._lock = threading.Lock()

    def url_for(self, path: str | Path) -> str | None:
        """Serve `path` (replacing the model served before) and return the URL of its page; None
        when Netron cannot serve it (the layer summary remains)."""
        key = str(Path(path).resolve())
        with self._lock:
            if key != self._served:
                try:
                    import netron
                    logging.getLogger("netron").setLevel(logging.WARNING)
                    serve_quietly(netron)
                    port = 0
                    if self._address is not None:
                        port = self._address[1]
                        _stop_and_wait(netron, self._address)
                    self._address = tuple(netron.serve(key, address=(self.host, port), browse=False))
                    self._served = key
                except Exception:          # noqa: BLE001 - the layer summary remains
                    self._served = None
                    return None
            port = self._address[1]
        return f"http://{self.public_host}:{port}/?model={urllib.parse.quote(key)}"

    def stop(self) -> None:
        with self._lock:
            if self._address is None:
                return
            try:
                import netron
                netron.stop(self._address)
            except Exception:          # noqa: BLE001
                pass
            self._address, self._served = None, None


# Seconds to wait for a stopped Netron server to free its port (it polls every 0.25 s).
STOP_WAIT_SECONDS = 5.0


def _stop_and_wait(netron, address: tuple[str, int]) -> None:
    """Stop the Netron server at `address` and wait until its thread has let go of the port."""
    netron.stop(address)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while netron.status(address) and time.monotonic() < deadline:
        time.sleep(0.02)


# The start-up steps of Netron's browser.js (`BrowserHost.start`) that reach other hosts or block
# the page: the 180-day update demand, the ipinfo.io lookup and cookie prompt, the analytics, and
# the capabilities report sent through the analytics.
NETRON_START_UP_STEPS = (b"await age();", b"await consent();", b"await telemetry();", b"await capabilities();")


def quiet_browser_script(script: bytes) -> bytes:
    """Netron's browser.js without NETRON_START_UP_STEPS (each call removed, its function left unused)."""
    for step in NETRON_START_UP_STEPS:
        if step not in script:
            logging.getLogger(__name__).warning("Netron's browser.js has no %s: its telemetry may be on",
                                                step.decode())
        script = script.replace(step, b"")
    return script


def serve_quietly(netron) -> None:
    """Make Netron's request handler serve browser.js through quiet_browser_script (once per process)."""
    handler = netron.server._HTTPRequestHandler
    if getattr(handler, "sdt_quiet", False):
        return
    write = handler._write

    def quiet_write(self, status_code, content_type, content):
        if content and urllib.parse.urlparse(self.path).path == "/browser.js":
            content = quiet_browser_script(content)
        write(self, status_code, content_type, content)
    handler._write = quiet_write
    handler.sdt_quiet = True
