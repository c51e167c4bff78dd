"""A stand-in Hugging Face Hub for tests, on 127.0.0.1 in a thread.

It serves ``/{repo_id}/resolve/{revision}/{filename}``, the only endpoint
``hf_hub_download`` (huggingface_hub 2.x) calls: a HEAD whose ``X-Repo-Commit``,
``ETag`` and ``Content-Length`` headers give the snapshot, blob name and size,
then a GET for the bytes. Unknown files get the Hub's 404 with
``X-Error-Code: EntryNotFound``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)")


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        hub = self.server.hub
        hub.requests.append((self.command, self.path))
        time.sleep(hub.delay)
        m = RESOLVE.fullmatch(unquote(urlsplit(self.path).path))
        key = (m["repo"], m["revision"], m["filename"]) if m else None
        data = hub.files.get(key)
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')  # the Hub's ETag of an LFS file
        self.send_header("X-Repo-Commit", hashlib.sha1(f"{key[0]}@{key[1]}".encode()).hexdigest())
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    hub: "StandInHub"


class StandInHub:
    """``with StandInHub() as hub: hub.add(repo, name, data); hf_hub_download(..., endpoint=hub.url)``.

    ``delay`` seconds are slept before every answer (to test timeouts);
    ``requests`` logs ``(method, path)``; ``stop()`` takes the server down.
    """

    def __init__(self, delay: float = 0.0):
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.delay = delay
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo_id: str, filename: str, data: bytes, revision: str = "main") -> None:
        self.files[(repo_id, revision, filename)] = data

    def start(self) -> "StandInHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "StandInHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
