"""A real threaded WSGI server for a test: werkzeug's, in a thread, on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server


@contextmanager
def serving(app: Any) -> Iterator[BaseWSGIServer]:
    """Serve ``app`` (threaded: a thread per request) until the block ends."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="wsgi")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=30)
        server.server_close()
