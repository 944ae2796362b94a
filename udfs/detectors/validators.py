"""Checksum and range validators that turn a regex candidate into a confident match.

`VALIDATORS` is the registry a YAML pattern rule names in `validator:`.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Callable


def digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def luhn(value: str) -> bool:
    """Payment card check digit (ISO/IEC 7812)."""
    nums = [int(d) for d in digits(value)]
    if not 12 <= len(nums) <= 19:
        return False
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


# ISO 13616 lengths of the countries whose IBANs we accept.
IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
    "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "AE": 23, "SA": 24, "IL": 23, "QA": 29,
}


def iban_mod97(value: str) -> bool:
    """IBAN: known country length and the ISO 7064 mod-97 check."""
    iban = value.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def us_ssn(value: str) -> bool:
    """US SSN: excludes area 000, 666, 9xx, group 00, serial 0000 and well-known dummies."""
    d = digits(value)
    if len(d) != 9 or d in {"123456789", "078051120", "219099999"}:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58check(value: str) -> bool:
    """Bitcoin legacy/P2SH address: base58 with a double-SHA256 checksum."""
    n = 0
    for ch in value:
        if ch not in _B58:
            return False
        n = n * 58 + _B58.index(ch)
    raw = n.to_bytes(25, "big") if n.bit_length() <= 200 else b""
    return len(raw) == 25 and hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()[:4] == raw[-4:]


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32(value: str) -> bool:
    """Bitcoin SegWit address (BIP 173 / BIP 350 checksum)."""
    value = value.lower()
    hrp, _, data = value.rpartition("1")
    if hrp != "bc" or len(data) < 7 or any(ch not in _BECH32 for ch in data):
        return False
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + [_BECH32.index(c) for c in data]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, gen in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= gen if (top >> i) & 1 else 0
    return chk in (1, 0x2BC830A3)  # bech32, bech32m


def ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def ipv6_address(value: str) -> bool:
    """An IPv6 address with at least three groups, so C++ `a::b` and `::` are not addresses."""
    return sum(1 for group in value.split(":") if group) >= 3 and ip_address(value)


def phone_number(value: str) -> bool:
    """7 to 15 digits (E.164), and not a date or a plain run of one digit."""
    d = digits(value)
    return 7 <= len(d) <= 15 and len(set(d)) > 2


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "iban_mod97": iban_mod97,
    "us_ssn": us_ssn,
    "base58check": base58check,
    "bech32": bech32,
    "ip_address": ip_address,
    "ipv6_address": ipv6_address,
    "phone_number": phone_number,
}
