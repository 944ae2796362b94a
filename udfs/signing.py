"""Signed rule pushes: Ed25519 over a push's identity (name, version, the full SHA-256 of its rules, the
short hash shown to people, author, message, time and key id).

`sha256` is rules_digest of the record's raw `rules`, so a signature over it covers the rules
themselves; check_content holds a record to it before anything parses the rules. A job given trusted
public keys runs only pushes signed by one of them; the key's id (`key_id`, from the public key) is
recorded with the push.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from udfs.rules import rules_digest

SIGNED_FIELDS = ("name", "version", "sha256", "hash", "author", "message", "pushed_at", "key_id")


class SignatureError(ValueError):
    """A push that is unsigned, signed by a key the job does not trust, whose signature does not verify, or
    whose rules are not those its `sha256` names."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The form LLM_AUDIT_RULES_TRUSTED_KEYS takes: base64 of the 32-byte raw key."""
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise SignatureError(
            f"{text[:20]!r}… is not an Ed25519 public key: give base64 of its 32 bytes "
            "(the .pub file `llm-audit rules keygen` writes)"
        ) from None


def trusted_keys(texts: list[str]) -> dict[str, Ed25519PublicKey]:
    """{key id: key} of the keys a job trusts."""
    keys = [parse_public_key(text) for text in texts]
    return {key_id(key): key for key in keys}


def generate_key() -> tuple[bytes, str]:
    """A new signing key -> (its private key as PKCS#8 PEM, its public key text)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, public_key_text(private.public_key())


def load_private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{source}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{source}: an Ed25519 key is needed (`llm-audit rules keygen`), not {type(key).__name__}")
    return key


def _signed_bytes(record: dict) -> bytes:
    return json.dumps({field: record.get(field) for field in SIGNED_FIELDS}, sort_keys=True).encode()


def sign(record: dict, private: Ed25519PrivateKey) -> dict:
    """The push record with its `key_id` and `signature`."""
    record = {**record, "key_id": key_id(private.public_key())}
    return {**record, "signature": base64.b64encode(private.sign(_signed_bytes(record))).decode()}


def check_content(record: dict) -> None:
    """SignatureError unless the record's `sha256` is rules_digest of its raw `rules` (nothing is parsed)."""
    if not isinstance(record.get("sha256"), str):
        raise SignatureError("no sha256 of the rules in the push: pushed by an older llm-audit: push again")
    if rules_digest(record.get("rules")) != record["sha256"]:
        raise SignatureError("sha256 does not match the rules: the rules were altered after the push was made")


def verify(record: dict, trusted: dict[str, Ed25519PublicKey]) -> str:
    """The id of the trusted key that signed the push and its rules; SignatureError says why not."""
    if not record.get("signature") or not record.get("key_id"):
        raise SignatureError("unsigned push: this job runs only pushes signed by a trusted key (rules push --sign-key)")
    if not isinstance(record["key_id"], str) or not isinstance(record["signature"], str):
        raise SignatureError("key_id and signature must be strings: not a push `llm-audit rules push` made")
    key = trusted.get(record["key_id"])
    if key is None:
        raise SignatureError(f"signed by key {record['key_id']!r}, which this job does not trust")
    if "sha256" not in record:  # its signature covers only the 16-character hash
        raise SignatureError("signed by an older llm-audit: push again")
    try:
        key.verify(base64.b64decode(record["signature"]), _signed_bytes(record))
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError(
            f"bad signature for key {record['key_id']!r}: the push was altered after signing"
        ) from None
    check_content(record)
    return record["key_id"]
