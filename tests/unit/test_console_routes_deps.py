"""What every route shares (console/routes/deps.py), through the app with a stand-in MongoDB client: the headers
every page carries, and the single sign-on settings the services refuse at start. The routes on a real
database: tests/integration/test_console*.py."""

from unittest.mock import MagicMock

import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from console.settings import ConsoleSettings

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@pytest.mark.parametrize("path, status", [("/login", 200), ("/api/docs", 200), ("/login/oidc/callback", 400)])
def test_pages_load_nothing_from_elsewhere_and_are_never_framed(path, status):
    http = TestClient(create_app(ConsoleSettings(), MagicMock()), base_url="https://testserver")
    response = http.get(path)
    assert response.status_code == status
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_single_sign_on_without_its_client_and_public_url_is_refused_at_start():
    settings = ConsoleSettings(console_oidc_issuer="https://issuer.example", console_oidc_client_id="console")
    with pytest.raises(ValueError, match="LLM_AUDIT_CONSOLE_OIDC_ISSUER needs LLM_AUDIT_CONSOLE_OIDC_CLIENT_ID, "
                       "LLM_AUDIT_CONSOLE_OIDC_CLIENT_SECRET and LLM_AUDIT_CONSOLE_PUBLIC_URL"):  # fmt: skip
        create_app(settings, MagicMock())
