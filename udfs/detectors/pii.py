"""PII: a pattern table with checksum validators."""

from __future__ import annotations

from udfs.detectors import validators as v
from udfs.detectors.base import Pattern, PatternDetector, register

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


@register
class PiiDetector(PatternDetector):
    """Email, phone, payment card, IBAN, IP address, US SSN, crypto wallet and URL."""

    name = "pii"
    version = "1"
    patterns = (
        Pattern("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", 0.9),
        # +CC international, or the US (NNN) NNN-NNNN / NNN-NNN-NNNN shapes; bare digit groups are not phones.
        Pattern("phone_number", r"\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){1,5}\b", 0.7, v.phone_number),
        Pattern("phone_number", r"(?:\(\d{3}\) ?|\b\d{3}[-.])\d{3}[-.]\d{4}\b", 0.6, v.phone_number),
        Pattern("credit_card", r"\b(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|3[47]\d{2}|6(?:011|5\d\d))(?:[ -]?\d{4}){2}[ -]?\d{1,4}(?:[ -]?\d{3})?\b",
                0.95, v.luhn),
        Pattern("credit_card", r"\b3[47]\d{2}[ -]?\d{6}[ -]?\d{5}\b", 0.95, v.luhn),  # Amex 4-6-5
        Pattern("credit_card", r"\b3(?:0[0-5]|[5689]\d)\d(?:[ -]?\d{4}){2}[ -]?\d{2,4}\b", 0.9, v.luhn),  # Diners, JCB
        Pattern("credit_card", r"\b(?:2131|1800)\d{11}\b", 0.85, v.luhn),  # JCB 15
        Pattern("credit_card", r"\b(?:5018|5020|5038|5893|6304|6759|676[1-3]|0604)\d{8,15}\b", 0.8, v.luhn),  # Maestro
        Pattern("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", 0.95, v.iban_mod97),
        Pattern("ip_address", rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b", 0.7),
        Pattern("ip_address", r"(?:\b[0-9A-Fa-f]{1,4}|)(?::[0-9A-Fa-f]{0,4}){2,7}(?:\b|[0-9A-Fa-f]{1,4}\b)", 0.7, v.ipv6_address),
        Pattern("us_ssn", r"\b\d{3}-\d{2}-\d{4}\b", 0.85, v.us_ssn),
        Pattern("crypto_wallet", r"\b[13][1-9A-HJ-NP-Za-km-z]{25,34}\b", 0.95, v.base58check),
        Pattern("crypto_wallet", r"\b(?:bc|BC)1[02-9ac-hj-np-zAC-HJ-NP-Z]{11,71}\b", 0.95, v.bech32),
        Pattern("crypto_wallet", r"\b0x[0-9a-fA-F]{40}\b", 0.9),
        Pattern("url", r"\bhttps?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]", 0.6),
    )
    entities = tuple(dict.fromkeys(p.entity for p in patterns))
