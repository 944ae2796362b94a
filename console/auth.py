"""Users, roles, API tokens and browser sessions of the console.

- Users live in MongoDB (`console_users`): a role, the tenants they may see, an argon2 password hash and
  the SHA-256 of their API token (a 256-bit random token needs no slow hash; a password does).
- Roles: viewer reads, reviewer also reviews, admin also manages users. Tenants scope every query.
- Browser sessions live in MongoDB (`console_sessions`, keyed by the SHA-256 of their id, so a copy of
  the database opens none): signing out or `console user revoke` ends them at once. The cookie holds the
  session id, HMAC-signed (HttpOnly, Secure, SameSite=Lax); the session holds the CSRF token that every
  form posts back.
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
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.database import Database

from console.store import ALL_TENANTS, SESSIONS, USERS, Caller

ROLES = ("viewer", "reviewer", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}
TOKEN_PREFIX = "lac_"
MAX_NAME, MAX_PASSWORD = 128, 1024  # longer ones are refused before any hashing
# RFC 9106's second recommended option, pinned: each check holds memory_cost KiB while it runs, which the
# console's LLM_AUDIT_CONSOLE_LOGIN_CHECKS and the pod's memory limit are sized for.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)


class AuthError(ValueError):
    """Bad credentials or a user that cannot be made; the message is safe to show."""


def allowed(caller: Caller, role: str) -> bool:
    """Whether the caller's role includes `role` (admin ⊃ reviewer ⊃ viewer)."""
    return _RANK[caller.role] >= _RANK[role]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


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
    token = _new_token()
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


def rotate_token(db: Database, name: str) -> str:
    """A new API token for the user -> the token (shown once); the old one stops working at once."""
    token = _new_token()
    if not db[USERS].update_one({"_id": name}, {"$set": {"token_sha256": _token_hash(token)}}).matched_count:
        raise AuthError(f"no user {name!r}")
    return token


def revoke_user(db: Database, name: str) -> int:
    """Ends every session of the user and voids their API token (`rotate_token` makes a new one) -> the number
    of sessions ended. They may sign in again: a new session."""
    now = datetime.now(UTC)
    # revoked_at also voids any session opened before it that the update below misses (one being made now).
    if not db[USERS].update_one({"_id": name}, {"$set": {"token_sha256": None, "revoked_at": now}}).matched_count:
        raise AuthError(f"no user {name!r}")
    return db[SESSIONS].update_many({"user": name, "ended_at": None}, {"$set": {"ended_at": now}}).modified_count


@dataclass(frozen=True)
class Session:
    id: str
    """The cookie's secret; the database keeps its SHA-256."""
    user: str
    csrf: str


def open_session(db: Database, user: str, how: str, hours: int) -> Session:
    session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(24))
    now = datetime.now(UTC)
    db[SESSIONS].insert_one(
        {
            "_id": _token_hash(session.id),
            "user": user,
            "csrf": session.csrf,
            "how": how,
            "created_at": now,
            "expires_at": now + timedelta(hours=hours),
            "ended_at": None,
        }
    )
    return session


def by_session(db: Database, session_id: str) -> tuple[Caller, Session] | None:
    """The caller of a session that exists, has not expired, was not ended, and was opened after the user's
    last revocation."""
    doc = db[SESSIONS].find_one(
        {"_id": _token_hash(session_id), "ended_at": None, "expires_at": {"$gt": datetime.now(UTC)}}
    )
    user = db[USERS].find_one({"_id": doc["user"]}) if doc else None
    if doc is None or user is None or (user.get("revoked_at") and doc["created_at"] <= user["revoked_at"]):
        return None
    return _caller(user), Session(session_id, doc["user"], doc["csrf"])


def end_session(db: Database, session_id: str) -> None:
    db[SESSIONS].update_one({"_id": _token_hash(session_id)}, {"$set": {"ended_at": datetime.now(UTC)}})


class Sessions:
    """Signs and checks cookies: the session's (its id), and the short-lived one of an OpenID Connect sign-in."""

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

    def cookie(self, session: Session) -> str:
        return self.seal({"sid": session.id}, self._seconds)

    def read(self, cookie: str | None) -> str | None:
        """The session id a cookie of ours names (whether that session still holds is the database's to say)."""
        data = self.unseal(cookie)
        return data["sid"] if data is not None and isinstance(data.get("sid"), str) else None

    @property
    def max_age(self) -> int:
        return self._seconds
