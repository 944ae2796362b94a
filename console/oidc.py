"""OpenID Connect sign-in: the authorization code flow with PKCE (RFC 7636), for a confidential client.

/login/oidc sends the browser to the issuer with a fresh state, nonce and S256 code challenge, kept in
a short-lived signed cookie; the callback checks the state, redeems the code with the verifier and the
client secret, and verifies the ID token (signature from the issuer's JWKS, issuer, audience, expiry,
nonce). The claim LLM_AUDIT_CONSOLE_OIDC_USER_CLAIM names the console user, whose role and tenants are
the console's (`llm-audit console user add`): the issuer says who, the console says what they may do.
That claim is `sub`, or `email` only when the token says `email_verified`: many issuers let a user type
any address into their profile, and an unverified one would name whichever console user holds it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt

# Asymmetric signatures only: never "none", nor an HMAC keyed with a public value.
_SIGNED = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class OidcError(ValueError):
    """The issuer or its answer is not usable; the message says which step failed."""


@dataclass(frozen=True)
class Flow:
    """What the callback needs to finish one sign-in (kept in a signed cookie meanwhile)."""

    state: str
    nonce: str
    verifier: str
    next: str


def _get_json(url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the configured issuer
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # an OAuth error names itself in the body
        raise OidcError(f"{url}: {exc.code} {exc.read()[:300].decode(errors='replace')}") from None
    except (OSError, ValueError) as exc:
        raise OidcError(f"{url}: {exc}") from None


class Provider:
    def __init__(self, issuer: str, client_id: str, client_secret: str, redirect_uri: str, user_claim: str):
        if user_claim not in ("sub", "email"):
            raise ValueError(f"OpenID Connect user claim {user_claim!r}: valid: sub, email")
        self.issuer, self.client_id, self._secret = issuer.rstrip("/"), client_id, client_secret
        self.redirect_uri, self.user_claim = redirect_uri, user_claim
        self._config: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            config = _get_json(f"{self.issuer}/.well-known/openid-configuration")
            if config.get("issuer", "").rstrip("/") != self.issuer:
                raise OidcError(f"discovery says issuer {config.get('issuer')!r}, not {self.issuer!r}")
            self._config = config
        return self._config

    def start(self, next_path: str) -> tuple[str, Flow]:
        """-> (the issuer's authorization URL, the flow to keep until the callback)."""
        flow = Flow(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(flow.verifier.encode()).digest()).decode().rstrip("=")
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid email profile",
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.config['authorization_endpoint']}?{urllib.parse.urlencode(query)}", flow

    def finish(self, flow: Flow, state: str, code: str) -> str:
        """The callback's state and code -> the user the ID token names."""
        if not secrets.compare_digest(flow.state, state):
            raise OidcError("the state does not match this browser's sign-in: start again")
        tokens = _get_json(
            self.config["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": flow.verifier,
                "client_id": self.client_id,
                "client_secret": self._secret,
            },
        )
        if "id_token" not in tokens:
            raise OidcError(f"the token endpoint gave no ID token: {tokens.get('error', tokens)}")
        if self._jwks is None:
            self._jwks = jwt.PyJWKClient(self.config["jwks_uri"])
        try:
            key = self._jwks.get_signing_key_from_jwt(tokens["id_token"])
            claims = jwt.decode(
                tokens["id_token"],
                key.key,
                algorithms=[
                    a for a in self.config.get("id_token_signing_alg_values_supported", ["RS256"]) if a in _SIGNED
                ],
                audience=self.client_id,
                issuer=self.config["issuer"],
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token does not verify: {exc}") from None
        if claims.get("nonce") != flow.nonce:
            raise OidcError("the ID token's nonce is not this sign-in's")
        user = claims.get(self.user_claim)
        if not user:
            raise OidcError(f"the ID token has no {self.user_claim!r} claim (LLM_AUDIT_CONSOLE_OIDC_USER_CLAIM)")
        # Some issuers send the boolean as a string.
        if self.user_claim == "email" and claims.get("email_verified") not in (True, "true"):
            raise OidcError(
                f"the issuer does not say that {user} is verified (email_verified): ask it to verify the address, "
                "or sign users in by LLM_AUDIT_CONSOLE_OIDC_USER_CLAIM=sub"
            )
        return str(user)
