"""A local stand-in for the Hugging Face hub, enough for `hf_hub_download`.

It answers what huggingface_hub (2.x) asks, with the headers it reads:

- `HEAD|GET /{repo}/resolve/{revision}/{path}` on the hub origin. An LFS file (the default, as
  `*.pt` are on the real hub) answers 302 with `Location` on a second origin (the "CDN", another
  port, so the client stops at the redirect as it does for a real CDN host), `X-Linked-Etag`
  (the sha256), `X-Linked-Size` and `X-Repo-Commit`. A plain git file answers 200 with `ETag`
  (its git blob sha1), `Content-Length` and `X-Repo-Commit`.
- `GET /blobs/{sha256}` on the CDN origin, honouring `Range: bytes=N-` with 206 and
  `Content-Range`.
- Errors carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`), which is how
  huggingface_hub tells them apart.

No Xet headers are sent, so clients use plain HTTP. Every request is recorded (`requests`), and
faults can be injected: `cut_next_get(path, after_bytes)` closes the connection mid-body once,
`fail(path, status)` answers that file with an HTTP error.
Binds 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ID = "vincentamato/ARIA"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
_BLOB = re.compile(r"^/blobs/(?P<sha>[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Request:
    origin: str  # "hub" or "cdn"
    method: str
    path: str  # the file's repository path
    range: str | None


class FakeHub:
    """Serves `files` ({repository path: bytes}) as `repo_id` at `commit` (also as `main`)."""

    def __init__(self, files: dict[str, bytes], *, repo_id: str = REPO_ID, commit: str = COMMIT, lfs: bool = True):
        self.files = dict(files)
        self.repo_id, self.commit, self.lfs = repo_id, commit, lfs
        self.requests: list[Request] = []
        self._cuts: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self._hub = _serve(self, "hub")
        self._cdn = _serve(self, "cdn")

    # -- what tests use ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def cut_next_get(self, path: str, after_bytes: int) -> None:
        """The next download of `path` sends `after_bytes` of its body, then drops the connection."""
        with self._lock:
            self._cuts[path] = after_bytes

    def fail(self, path: str, status: int | None) -> None:
        """Answer every request for `path` with this HTTP status (None: serve it again)."""
        with self._lock:
            if status is None:
                self._failures.pop(path, None)
            else:
                self._failures[path] = status

    def downloads(self) -> list[Request]:
        """Requests that carried file bodies (GETs), in order."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET"]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "FakeHub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- serving ------------------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_cut(self, path: str) -> int | None:
        with self._lock:
            return self._cuts.pop(path, None)

    def _by_sha(self, sha: str) -> bytes | None:
        return next((data for data in self.files.values() if hashlib.sha256(data).hexdigest() == sha), None)


def _serve(hub: FakeHub, origin: str) -> ThreadingHTTPServer:
    handler = type(f"{origin.title()}Handler", (_Handler,), {"hub": hub, "origin": origin})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    serve = lambda: server.serve_forever(poll_interval=0.05)  # noqa: E731 (quick shutdown)
    threading.Thread(target=serve, name=f"fake-hf-{origin}", daemon=True).start()
    return server


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    origin: str
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def _handle(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        path = url.path
        if self.origin == "cdn":
            return self._blob(path, parse_qs(url.query).get("filename", [""])[0], send_body)
        match = _RESOLVE.match(path)
        if not match:
            return self._error(404, "NotFound", "no such route")
        repo, revision, filename = (unquote(match[g]) for g in ("repo", "revision", "path"))
        self.hub._record(Request("hub", self.command, filename, self.headers.get("Range")))
        if repo != self.hub.repo_id:
            return self._error(401, "RepoNotFound", "Repository not found")
        if revision not in ("main", self.hub.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        status = self.hub._failures.get(filename)
        if status is not None:
            return self._error(status, "", "injected failure")
        data = self.hub.files.get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", "Entry not found", commit=True)
        if self.hub.lfs:
            sha = hashlib.sha256(data).hexdigest()
            self.send_response(302)
            # Like a real CDN link, the URL names the file (identical files share one blob).
            self.send_header("Location", f"{self.hub.cdn}/blobs/{sha}?filename={quote(filename)}")
            self.send_header("X-Repo-Commit", self.hub.commit)
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{git_blob_sha1(data)}"')  # the pointer's, as the hub does
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._body(filename, data, send_body, etag=git_blob_sha1(data), commit=True)

    def _blob(self, path: str, filename: str, send_body: bool) -> None:
        match = _BLOB.match(path)
        data = self.hub._by_sha(match["sha"]) if match else None
        self.hub._record(Request("cdn", self.command, filename, self.headers.get("Range")))
        if data is None:
            return self._error(404, "NotFound", "no such blob")
        self._body(filename, data, send_body, etag=match["sha"], commit=False)

    def _body(self, filename: str, data: bytes, send_body: bool, *, etag: str, commit: bool) -> None:
        start, total = 0, len(data)
        requested = self.headers.get("Range")
        if requested:
            match = _RANGE.match(requested)
            if not match or int(match[1]) >= len(data):
                return self._error(416, "RangeNotSatisfiable", "bad range")
            start = int(match[1])
            end = int(match[2]) if match[2] else len(data) - 1
            data = data[start : end + 1]
        self.send_response(206 if requested else 200)
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{start + len(data) - 1}/{total}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{etag}"')
        if commit:
            self.send_header("X-Repo-Commit", self.hub.commit)
        self.end_headers()
        if not send_body:
            return
        cut = self.hub._take_cut(filename)
        if cut is not None and cut < len(data):
            self.wfile.write(data[:cut])
            self.wfile.flush()
            self.close_connection = True  # the client sees the body end early
            return
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, commit: bool = False) -> None:
        body = f'{{"error": "{message}"}}'.encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", self.hub.commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
