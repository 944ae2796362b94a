"""Users, roles, API tokens and browser sessions of the console.

- Users live in MongoDB (`console_users`): a role, the tenants they may see, an argon2 password hash and
  the SHA-256 of their API token (a 256-bit random token needs no slow hash; a password does).
- Roles: viewer reads, reviewer also reviews, admin also manages users. Tenants scope every query.
- Browser sessions are an HMAC-signed cookie (HttpOnly, Secure, SameSite=Strict) holding the user, an
  expiry and a CSRF token that every form posts back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.database import Database

from console.store import ALL_TENANTS, USERS, Caller

ROLES = ("viewer", "reviewer", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}
TOKEN_PREFIX = "lac_"
_hasher = PasswordHasher()


class AuthError(ValueError):
    """Bad credentials or a user that cannot be made; the message is safe to show."""


def allowed(caller: Caller, role: str) -> bool:
    """Whether the caller's role includes `role` (admin ⊃ reviewer ⊃ viewer)."""
    return _RANK[caller.role] >= _RANK[role]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(db: Database, name: str, role: str, tenants: list[str], password: str | None, by: str) -> str:
    """Creates a user -> their API token (shown once; only its hash is kept)."""
    if role not in ROLES:
        raise AuthError(f"role {role!r}: valid: {', '.join(ROLES)}")
    if not re.fullmatch(r"[\w.+@-]{1,128}", name):
        raise AuthError(
            f"user name {name!r}: up to 128 letters, digits and '.', '_', '-', '+', '@' (an e-mail address)"
        )
    if not tenants:
        raise AuthError(f"give the tenants {name} may see (--tenant T, repeated), or --tenant '{ALL_TENANTS}' for all")
    if db[USERS].find_one({"_id": name}):
        raise AuthError(f"user {name!r} exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db[USERS].insert_one(
        {
            "_id": name,
            "role": role,
            "tenants": sorted(set(tenants)),
            "password": _hasher.hash(password) if password else None,
            "token_sha256": _token_hash(token),
            "created_at": datetime.now(UTC),
            "created_by": by,
        }
    )
    return token


def _caller(user: dict) -> Caller:
    return Caller(user["_id"], user["role"], tuple(user["tenants"]))


def by_token(db: Database, token: str) -> Caller | None:
    user = db[USERS].find_one({"token_sha256": _token_hash(token)}) if token.startswith(TOKEN_PREFIX) else None
    return _caller(user) if user else None


def by_password(db: Database, name: str, password: str) -> Caller | None:
    user = db[USERS].find_one({"_id": name})
    if not user or not user.get("password"):
        _hasher.hash(password)  # the same time whether the user exists or not
        return None
    try:
        _hasher.verify(user["password"], password)
    except (VerificationError, InvalidHashError):
        return None
    return _caller(user)


def by_name(db: Database, name: str) -> Caller | None:
    user = db[USERS].find_one({"_id": name})
    return _caller(user) if user else None


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    expires: int


class Sessions:
    """Signs and checks cookies: the session's, and the short-lived one of an OpenID Connect sign-in."""

    COOKIE = "llm_audit_session"

    def __init__(self, secret: bytes, hours: int):
        self._secret, self._seconds = secret, hours * 3600

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, "sha256").hexdigest()

    def seal(self, data: dict, seconds: int) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({**data, "exp": int(time.time()) + seconds}).encode())
        return f"{payload.decode()}.{self._mac(payload)}"

    def unseal(self, value: str | None) -> dict | None:
        """The sealed data, if the MAC is ours and it has not expired."""
        if not value or "." not in value:
            return None
        payload, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload))
        except ValueError:
            return None
        return data if isinstance(data, dict) and data.get("exp", 0) > time.time() else None

    def issue(self, user: str) -> str:
        return self.seal({"user": user, "csrf": secrets.token_urlsafe(24)}, self._seconds)

    def read(self, cookie: str | None) -> Session | None:
        data = self.unseal(cookie)
        if data is None or not isinstance(data.get("user"), str) or not isinstance(data.get("csrf"), str):
            return None
        return Session(data["user"], data["csrf"], data["exp"])

    @property
    def max_age(self) -> int:
        return self._seconds
