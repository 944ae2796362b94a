"""Settings of the review console, from LLM_AUDIT_* env vars: the job's MongoDB and InfluxDB, and the console's own.

The MongoDB and InfluxDB settings are declared once, here, for the audit job's settings (flink_jobs.settings) and
the console's alike: the job may import the console, not the other way round.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "LLM_AUDIT_"


class MongoSettings(BaseSettings):
    """The audit job's MongoDB, which the console reads and adds its own collections to."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True)

    mongo_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    """LLM_AUDIT_MONGO_URI: MongoDB connection string, credentials included. The console's users, reviews and
    audit log live in the same database."""
    mongo_database: str = "llm_audit"
    """LLM_AUDIT_MONGO_DATABASE: database holding the violations collection."""
    violations_collection: str = "violations"
    """LLM_AUDIT_VIOLATIONS_COLLECTION: one document per finding, keyed by a deterministic _id."""
    anomalies_collection: str = "anomalies"
    """LLM_AUDIT_ANOMALIES_COLLECTION: one document per anomalous (tenant, model, metric, window)."""


class InfluxSettings(BaseSettings):
    """The audit job's InfluxDB, 2.x API; InfluxDB 1.8 serves it with bucket 'db/rp' and token 'user:password' or
    empty. The console writes each review's per-rule verdict totals (`rule_reviews`) beside the job's metrics."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True)

    influx_url: str = "http://127.0.0.1:8086"
    """LLM_AUDIT_INFLUX_URL: InfluxDB base URL."""
    influx_token: SecretStr = SecretStr("")
    """LLM_AUDIT_INFLUX_TOKEN: API token (2.x) or 'user:password' (1.8 with auth)."""
    influx_org: str = "-"
    """LLM_AUDIT_INFLUX_ORG: organisation (ignored by 1.8)."""
    influx_bucket: str = "llm_audit/autogen"
    """LLM_AUDIT_INFLUX_BUCKET: bucket (2.x) or 'database/retention-policy' (1.8), which the Grafana dashboards
    read."""


class ConsoleSettings(MongoSettings, InfluxSettings):
    """Each field reads LLM_AUDIT_<FIELD NAME IN CAPITALS>; the MongoDB and InfluxDB ones are the audit job's own."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    console_host: str = "127.0.0.1"
    """LLM_AUDIT_CONSOLE_HOST: the address `llm-audit console serve` listens on."""
    console_port: int = Field(default=8099, ge=1, le=65535)
    """LLM_AUDIT_CONSOLE_PORT: its port."""
    console_session_secret: SecretStr | None = None
    """LLM_AUDIT_CONSOLE_SESSION_SECRET: signs session cookies; unset, a random one per process (sessions end
    with it). Set it when several replicas serve the console."""
    console_session_hours: int = Field(default=8, ge=1, le=24 * 30)
    """LLM_AUDIT_CONSOLE_SESSION_HOURS: how long a browser sign-in lasts (unless signed out or revoked sooner)."""
    console_login_checks: int = Field(default=2, ge=1, le=16)
    """LLM_AUDIT_CONSOLE_LOGIN_CHECKS: password checks run at once. Each holds argon2's 64 MiB for about 0.1 s, so
    the pod's memory limit needs ~120 MiB + 64 MiB x this; a sign-in that finds them all busy waits up to 2 s in a
    short queue, then gets 503 with Retry-After."""
    console_login_window_seconds: int = Field(default=900, ge=10, le=24 * 3600)
    """LLM_AUDIT_CONSOLE_LOGIN_WINDOW_SECONDS: the window the two limits below count sign-in attempts in."""
    console_login_user_attempts: int = Field(default=10, ge=1, le=1000)
    """LLM_AUDIT_CONSOLE_LOGIN_USER_ATTEMPTS: failed password sign-ins per user name and window; more get 429 with
    Retry-After until the window ends (even with the right password: single sign-on and API tokens still work)."""
    console_login_address_attempts: int = Field(default=30, ge=1, le=10_000)
    """LLM_AUDIT_CONSOLE_LOGIN_ADDRESS_ATTEMPTS: failed password sign-ins per client address (an IPv6 /64) and
    window. The address is X-Forwarded-For's as uvicorn trusts it (FORWARDED_ALLOW_IPS). Both limits are per
    replica."""
    console_page_size: int = Field(default=50, ge=1, le=500)
    """LLM_AUDIT_CONSOLE_PAGE_SIZE: violations per page of the queue."""
    console_public_url: str | None = None
    """LLM_AUDIT_CONSOLE_PUBLIC_URL: the console's address as browsers reach it (https://audit.example.com), for
    OpenID Connect's redirect URI."""
    console_oidc_issuer: str | None = None
    """LLM_AUDIT_CONSOLE_OIDC_ISSUER: OpenID Connect issuer URL; set, the sign-in page offers single sign-on
    (authorization code flow with PKCE). The user must exist in the console (`console user add`)."""
    console_oidc_client_id: str | None = None
    """LLM_AUDIT_CONSOLE_OIDC_CLIENT_ID: the console's client id at the issuer."""
    console_oidc_client_secret: SecretStr | None = None
    """LLM_AUDIT_CONSOLE_OIDC_CLIENT_SECRET: its client secret (a Kubernetes Secret)."""
    console_oidc_user_claim: Literal["email", "sub"] = "email"
    """LLM_AUDIT_CONSOLE_OIDC_USER_CLAIM: the ID token claim that names the console user: `email` (only when the
    token's `email_verified` is true: an unverified address proves nothing) or `sub` (the issuer's stable subject
    identifier)."""
