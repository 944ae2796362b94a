"""The API reference, a page of our own: FastAPI's would load Swagger UI from a CDN, which the pages' Content
Security Policy refuses."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from console.routes.deps import render

router = APIRouter()


@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
def api_docs(request: Request):
    schema = request.app.openapi()
    paths = {path: ops for path, ops in schema["paths"].items() if path.startswith("/api/")}
    bodies = {
        media["schema"]["$ref"].rsplit("/", 1)[1]
        for ops in paths.values()
        for op in ops.values()
        for media in op.get("requestBody", {}).get("content", {}).values()
        if "$ref" in media["schema"]
    }
    schemas = {name: spec for name, spec in schema["components"]["schemas"].items() if name in bodies}
    return render(request, "api_docs.html", caller=None, paths=paths, schemas=schemas)
