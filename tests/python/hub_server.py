"""A local HTTP server in the Hugging Face hub's URL layout
(`/{repo}/resolve/{revision}/{file}`), serving model directories from disk, and able to
misbehave per file the way real networks and proxies do (`faults`):

* ``stall``: accept the request and never answer (until the server stops, 30 s at most)
* ``stall-body``: send the headers and half the body, then stall
* ``truncate``: announce the full length, send half the body, close the connection
* ``html``: answer 200 with an HTML page instead of the file
* ``404-once``: answer 404 the first time, the file afterwards
* ``redirect-no-location``: answer 302 without a ``Location`` header
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HubServer:
    """`repos[(repo_id, revision)] = (commit_hash, directory)`."""

    def __init__(
        self,
        repos: dict[tuple[str, str], tuple[str, Path]],
        faults: dict[str, str] | None = None,
    ) -> None:
        self.repos = repos
        self.faults = dict(faults or {})
        self.stopped = threading.Event()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, authorization)
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path, self.headers.get("Authorization")))
                found = self._locate()
                if found is None:
                    self.send_error(404)
                    return
                commit, path = found
                fault = server.faults.get(path.name)
                if fault == "404-once":
                    del server.faults[path.name]
                    self.send_error(404)
                    return
                if fault == "stall":
                    server.stopped.wait(30)
                    return
                if fault == "redirect-no-location":
                    self.send_response(302)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "html":
                    page = b"<html><body>Please log in</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.send_header("X-Repo-Commit", commit)
                    self.end_headers()
                    self.wfile.write(page)
                    return
                data = path.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                start, end = 0, len(data) - 1
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes="):
                    first, _, last = ranged[len("bytes=") :].partition("-")
                    start = int(first or 0)
                    end = min(int(last), len(data) - 1) if last else len(data) - 1
                body = data[start : end + 1]
                self.send_response(206 if ranged else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", commit)
                if ranged:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if fault in ("truncate", "stall-body"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if fault == "stall-body":
                        server.stopped.wait(30)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _locate(self) -> tuple[str, Path] | None:
                parts = self.path.split("?")[0].strip("/").split("/")
                if "resolve" not in parts:
                    return None
                at = parts.index("resolve")
                repo, revision = "/".join(parts[:at]), parts[at + 1]
                filename = "/".join(parts[at + 2 :])
                entry = server.repos.get((repo, revision))
                if entry is None:
                    return None
                commit, directory = entry
                path = directory / filename
                return (commit, path) if path.is_file() else None

        return Handler
