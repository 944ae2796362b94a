"""The probes' /healthz: 200 while MongoDB answers its ping, an error while it does not."""

from fastapi import APIRouter, Response

from console.routes.deps import AppServices

router = APIRouter()


@router.get("/healthz")
def healthz(services: AppServices) -> Response:
    services.client.admin.command("ping")
    return Response("ok", media_type="text/plain")
