"""A host that is not the platform: what a crafted file URL or a redirect might point at.

It serves whatever it is given (a picture, by default any path) and records every request with
its headers, so a test can say that nothing, and above all no token, ever reached it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Elsewhere:
    body: bytes = b""
    content_type: str = "image/png"
    requests: list[dict] = field(default_factory=list)  # {"path", "headers"} of every request
    redirects: dict[str, str] = field(default_factory=dict)  # path -> where it answers 302 to
    port: int | None = None
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> "Elsewhere":
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "picture.png", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"

    async def _serve(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "headers": dict(request.headers)})
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        return web.Response(body=self.body, content_type=self.content_type)
