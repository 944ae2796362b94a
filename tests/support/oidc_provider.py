"""An OpenID Connect issuer for the console's sign-in tests: discovery, an authorization endpoint that
signs in one configured user at once, a token endpoint that checks the client secret and the PKCE
verifier, and RS256 ID tokens with their JWKS. It follows the specification; it is no identity store."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import JSONResponse, RedirectResponse


def issuer_app(issuer: str, client_id: str, client_secret: str, user: dict) -> FastAPI:
    """user: the claims of whoever signs in (e.g. {"sub": "1", "email": "rita@example.com"})."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig", "alg": "RS256"}
    codes: dict[str, dict] = {}
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def discovery():
        return {"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks", "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"]}

    @app.get("/authorize")
    def authorize(client_id: str, redirect_uri: str, response_type: str, state: str, nonce: str, code_challenge: str,
                  code_challenge_method: str, scope: str = ""):
        if client_id != client_id_expected or response_type != "code" or code_challenge_method != "S256":
            raise HTTPException(400, "bad authorization request")
        code = secrets.token_urlsafe(16)
        codes[code] = {"challenge": code_challenge, "nonce": nonce, "redirect_uri": redirect_uri}
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=302)

    @app.post("/token")
    def token(grant_type: str = Form(), code: str = Form(), redirect_uri: str = Form(), code_verifier: str = Form(),
              client_id: str = Form(), client_secret: str = Form()):
        grant = codes.pop(code, None)
        if grant is None or client_id != client_id_expected or client_secret != client_secret_expected:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).decode().rstrip("=")
        if challenge != grant["challenge"] or redirect_uri != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verifier mismatch"}, status_code=400)
        now = int(time.time())
        claims = {"iss": issuer, "aud": client_id, "iat": now, "exp": now + 300, "nonce": grant["nonce"], **user}
        return {"id_token": jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"}), "token_type": "Bearer"}

    @app.get("/jwks")
    def jwks():
        return {"keys": [jwk]}

    client_id_expected, client_secret_expected = client_id, client_secret
    return app
