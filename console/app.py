"""The console's web app: server-rendered pages for people, a JSON API for automation, one set of rules.

Pages sign in with a password and a session cookie; the API takes `Authorization: Bearer TOKEN`.
Both see only their tenants: a violation of another tenant is a 404, as one that does not exist.
Violation ids hold '/' and '%' (`<tenant>/<event id>:<rule>...`, each part percent-encoded): routes take
them as paths, and links encode every character of them. The routes are in console/routes/, one module per
resource; this module puts them together.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pymongo import MongoClient

from console.routes import api, docs, health, pages, sessions
from console.routes.deps import Services
from console.settings import ConsoleSettings
from console.store import BadRequest

# The largest request body: a review's note is at most 4,000 characters. Starlette's form parser would
# otherwise keep up to 1,000 fields of 1 MiB each in memory.
MAX_BODY = 256 * 1024


class BodyLimit:
    """Answers 413 to a request whose body is over `limit` bytes, before anything reads it into memory."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        too_large = PlainTextResponse(f"the request body is over {self.limit} bytes", status_code=413)
        if not length.isdigit() or int(length) > self.limit:
            return await too_large(scope, receive, send)
        seen = 0

        async def counted():  # a chunked body has no content-length
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"the request body is over {self.limit} bytes")
            return message

        return await self.app(scope, counted, send)


async def bad_request(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


def create_app(settings: ConsoleSettings, client: MongoClient | None = None) -> FastAPI:
    services = Services.start(settings, client)  # before the app: a bad single sign-on setting fails here
    # The API reference is a page of our own (/api/docs): FastAPI's would load Swagger UI from a CDN.
    app = FastAPI(title="llm-audit review console", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.services = services
    # In this order, the OpenAPI document and /api/docs list the paths as before the split into routers.
    for router in (api.router, docs.router, sessions.router, pages.router, health.router):
        app.include_router(router)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_exception_handler(BadRequest, bad_request)
    return app
