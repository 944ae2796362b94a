"""Checksum and range validators that turn a regex candidate into a confident match.

`VALIDATORS` is the registry a YAML pattern rule names in `validator:`.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable


def digits(value: str) -> str:
    """The ASCII digits of a value (str.isdigit() is also true of "²" and "٣", which int() refuses or reads)."""
    return "".join(ch for ch in value if "0" <= ch <= "9")


def _all_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def luhn(value: str) -> bool:
    """Payment card check digit (ISO/IEC 7812)."""
    nums = [int(d) for d in digits(value)]
    return 12 <= len(nums) <= 19 and _luhn_sum(nums) % 10 == 0


def _luhn_sum(nums: list[int]) -> int:
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total


def _prefixes(*ranges: range | tuple[int, ...]) -> tuple[str, ...]:
    return tuple(str(p) for r in ranges for p in r)


# Issuer prefixes and lengths of every brand that issues Luhn-checked cards (ISO/IEC 7812 IINs).
_CARD_BRANDS: tuple[tuple[str, tuple[str, ...], range | tuple[int, ...]], ...] = (
    ("visa", ("4",), (13, 16, 19)),
    ("mastercard", _prefixes(range(51, 56), range(2221, 2721)), (16,)),
    ("amex", ("34", "37"), (15,)),
    ("discover", _prefixes((6011, 65), range(644, 650)), range(16, 20)),
    ("diners", _prefixes(range(300, 306), (3095, 36, 38, 39)), range(14, 20)),
    ("jcb", ("35",), range(16, 20)),  # 3528-3589 assigned; generators and test decks use all of 35
    ("jcb", ("2131", "1800"), (15,)),
    ("unionpay", ("62", "81"), range(16, 20)),
    # Maestro issues 12-19 digits under 50 and 56-58 and its own 6xxx IINs; the rest of 6x is
    # shared with 16-19-digit brands, and a 12-digit order number there would pass Luhn one time in ten.
    ("maestro", ("50", "56", "57", "58", "0604", "6304", "6390", "6759", "6761", "6762", "6763"), range(12, 20)),
    ("maestro", _prefixes(range(59, 70)), range(16, 20)),
    ("mir", _prefixes(range(2200, 2205)), range(16, 20)),
    ("rupay", ("60", "65", "81", "82", "508", "353", "356"), (16,)),
    ("troy", ("9792",), (16,)),
    ("uatp", ("1",), (15,)),
)


def card_brand(value: str) -> str | None:
    """The brand whose issuer prefix and length a card number has, or None."""
    number = digits(value)
    for brand, prefixes, lengths in _CARD_BRANDS:
        if len(number) in lengths and number.startswith(prefixes):
            return brand
    return None


def payment_card(value: str) -> bool:
    """A card number of a known brand's prefix and length that passes Luhn."""
    return card_brand(value) is not None and luhn(value)


def _weighted(number: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(number, weights))


def uk_nhs(value: str) -> bool:
    """UK NHS number: 10 digits, mod-11 check digit."""
    d = digits(value)
    if len(d) != 10:
        return False
    check = 11 - _weighted(d, (10, 9, 8, 7, 6, 5, 4, 3, 2)) % 11
    return (0 if check == 11 else check) == int(d[9]) and len(set(d)) > 1


_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def uk_nino(value: str) -> bool:
    """UK National Insurance number: the prefixes HMRC never issues are excluded."""
    return value.replace(" ", "")[:2].upper() not in _NINO_BAD_PREFIXES


_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_nif(value: str) -> bool:
    """Spanish DNI/NIF (8 digits and a mod-23 letter) or NIE (X, Y or Z, 7 digits, the letter)."""
    v = value.replace("-", "").replace(" ", "").upper()
    if not v:
        return False
    number = str("XYZ".index(v[0])) + v[1:-1] if v[0] in "XYZ" else v[:-1]
    return len(number) == 8 and _all_digits(number) and _NIF_LETTERS[int(number) % 23] == v[-1]


_IT_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (
            1,
            0,
            5,
            7,
            9,
            13,
            15,
            17,
            19,
            21,
            1,
            0,
            5,
            7,
            9,
            13,
            15,
            17,
            19,
            21,
            2,
            4,
            18,
            20,
            11,
            3,
            6,
            8,
            12,
            14,
            16,
            10,
            22,
            25,
            24,
            23,
        ),
    )
)


def it_fiscal_code(value: str) -> bool:
    """Italian codice fiscale: 16 characters, the last a check letter over the first 15."""
    v = value.upper()
    if len(v) != 16 or any(ch not in _IT_ODD for ch in v):
        return False
    total = sum(
        _IT_ODD[ch] if i % 2 == 0 else (int(ch) if ch.isdigit() else ord(ch) - 65) for i, ch in enumerate(v[:15])
    )
    return chr(65 + total % 26) == v[15]


def it_vat_code(value: str) -> bool:
    """Italian partita IVA: 11 digits, Luhn check digit."""
    d = digits(value)
    return len(d) == 11 and _luhn_sum([int(n) for n in d]) % 10 == 0 and d[:7] != "0000000"


def pl_pesel(value: str) -> bool:
    """Polish PESEL: a valid birth date (month offset by century) and the weighted check digit."""
    d = digits(value)
    if len(d) != 11:
        return False
    month, day = int(d[2:4]) % 20, int(d[4:6])
    check = (10 - _weighted(d, (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)) % 10) % 10
    return 1 <= month <= 12 and 1 <= day <= 31 and check == int(d[10])


_FI_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def fi_personal_identity_code(value: str) -> bool:
    """Finnish henkilötunnus DDMMYYCNNNX: a valid date and the mod-31 check character."""
    v = value.upper()
    if len(v) != 11 or not _all_digits(v[:6] + v[7:10]):
        return False
    day, month = int(v[:2]), int(v[2:4])
    return 1 <= day <= 31 and 1 <= month <= 12 and _FI_CHECK[int(v[:6] + v[7:10]) % 31] == v[10]


_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def in_aadhaar(value: str) -> bool:
    """Indian Aadhaar: 12 digits, not starting with 0 or 1, Verhoeff check digit, not a palindrome."""
    d = digits(value)
    if len(d) != 12 or d[0] in "01" or d == d[::-1]:
        return False
    check = 0
    for i, n in enumerate(reversed(d)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][int(n)]]
    return check == 0


def au_abn(value: str) -> bool:
    """Australian Business Number: 11 digits, weighted mod-89 with the first digit less one."""
    d = digits(value)
    if len(d) != 11 or d[0] == "0":
        return False
    return _weighted(str(int(d[0]) - 1) + d[1:], (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)) % 89 == 0


def au_acn(value: str) -> bool:
    """Australian Company Number: 9 digits, weighted mod-10 complement."""
    d = digits(value)
    return len(d) == 9 and (10 - _weighted(d, (8, 7, 6, 5, 4, 3, 2, 1)) % 10) % 10 == int(d[8])


def au_tfn(value: str) -> bool:
    """Australian Tax File Number: 9 digits, weighted mod 11."""
    d = digits(value)
    return len(d) == 9 and _weighted(d, (1, 4, 3, 7, 5, 8, 6, 9, 10)) % 11 == 0 and len(set(d)) > 1


def au_medicare(value: str) -> bool:
    """Australian Medicare card number: first digit 2-6, weighted mod-10 check as the ninth digit."""
    d = digits(value)
    return len(d) in (10, 11) and d[0] in "23456" and _weighted(d, (1, 3, 7, 9, 1, 3, 7, 9)) % 10 == int(d[8])


_SG_LETTERS = {"ST": "JZIHGFEDCBA", "FG": "XWUTRQPNMLK"}


def sg_nric_fin(value: str) -> bool:
    """Singapore NRIC (S, T) or FIN (F, G): the weighted check letter."""
    v = value.upper()
    if len(v) != 9 or v[0] not in "STFG" or not _all_digits(v[1:8]):
        return False
    total = _weighted(v[1:8], (2, 7, 6, 5, 4, 3, 2)) + (4 if v[0] in "TG" else 0)
    letters = _SG_LETTERS["ST" if v[0] in "ST" else "FG"]
    return letters[total % 11] == v[8]


def kr_rrn(value: str) -> bool:
    """Korean resident registration number YYMMDD-GNNNNNC: a valid date and gender digit, the check digit."""
    d = digits(value)
    if len(d) != 13 or not (1 <= int(d[2:4]) <= 12 and 1 <= int(d[4:6]) <= 31) or d[6] not in "12345678":
        return False
    return (11 - _weighted(d, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)) % 11) % 10 == int(d[12])


def th_tnin(value: str) -> bool:
    """Thai national ID: 13 digits, the first not 0, mod-11 check digit."""
    d = digits(value)
    return len(d) == 13 and d[0] != "0" and (11 - _weighted(d, tuple(range(13, 1, -1))) % 11) % 10 == int(d[12])


# ISO 13616 lengths of every country in SWIFT's IBAN registry (release 100, 2025): an IBAN of a country
# missing here is never reported.
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HN": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}


def iban_mod97(value: str) -> bool:
    """IBAN: known country length and the ISO 7064 mod-97 check."""
    iban = value.replace(" ", "").replace("-", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not (iban.isascii() and iban.isalnum()):
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
    "payment_card": payment_card,
    "iban_mod97": iban_mod97,
    "us_ssn": us_ssn,
    "base58check": base58check,
    "bech32": bech32,
    "ip_address": ip_address,
    "ipv6_address": ipv6_address,
    "phone_number": phone_number,
    "uk_nhs": uk_nhs,
    "uk_nino": uk_nino,
    "es_nif": es_nif,
    "it_fiscal_code": it_fiscal_code,
    "it_vat_code": it_vat_code,
    "pl_pesel": pl_pesel,
    "fi_personal_identity_code": fi_personal_identity_code,
    "in_aadhaar": in_aadhaar,
    "au_abn": au_abn,
    "au_acn": au_acn,
    "au_tfn": au_tfn,
    "au_medicare": au_medicare,
    "sg_nric_fin": sg_nric_fin,
    "kr_rrn": kr_rrn,
    "th_tnin": th_tnin,
}
