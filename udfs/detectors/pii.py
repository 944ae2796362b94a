"""PII: a pattern table with checksum validators, and phone numbers by Google's libphonenumber.

Entity names are Presidio's in lower case where Presidio has one (`uk_nhs` is UK_NHS);
`PRESIDIO_ENTITIES` maps each of ours onto Presidio's, one to one.
"""

from __future__ import annotations

import re

import phonenumbers
from pydantic import field_validator

from udfs.detectors import validators as v
from udfs.detectors.base import (
    DetectorMatch,
    EntityParams,
    Pattern,
    PatternDetector,
    compile_re2,
    drop_overlaps,
    readable,
    register,
)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


def _formatted_or_after(words: str, formatted: str, plain: str) -> tuple[str, str]:
    """Two regexes for an identifier whose checksum alone is weak: its printed format (groups
    and separators), or plain digits right after a word that names it (capture group 1)."""
    return formatted, rf"(?i:\b(?:{words}))\W{{0,5}}(?-i:({plain}))\b"


_AADHAAR = _formatted_or_after(r"aadhaar|aadhar|uidai|uid", r"\b[2-9]\d{3}[ -]\d{4}[ -]\d{4}\b", r"[2-9]\d{11}")
_TFN = _formatted_or_after(r"tfn|tax file number", r"\b\d{3} \d{3} \d{3}\b", r"\d{9}")
_ACN = _formatted_or_after(r"acn|company number", r"\b\d{3} \d{3} \d{3}\b", r"\d{9}")
_MEDICARE = _formatted_or_after(r"medicare", r"\b[2-6]\d{3} ?\d{5} ?\d\b", r"[2-6]\d{9,10}")
_IT_VAT = _formatted_or_after(r"p\.? ?iva|partita iva|vat", r"\bIT ?\d{11}\b", r"\d{11}")
_TNIN = _formatted_or_after(r"thai id|national id|tnin", r"\b[1-8]-\d{4}-\d{5}-\d{2}-\d\b", r"[1-8]\d{12}")


def _card_groups(sep: str) -> str:
    """Card digits grouped 4-4-4-4(-N) or 4-6-5/4-6-4, one separator throughout."""
    return rf"\b(?:\d{{4}}(?:{sep}\d{{4}}){{2,3}}(?:{sep}\d{{1,4}})?|\d{{4}}{sep}\d{{6}}{sep}\d{{4,5}})\b"


# One phone number as people write it: +CC or (area) optional, digit groups with separators, and an
# optional extension ("x792", "ext. 12"), which libphonenumber reads as one.
_PHONE_CANDIDATE = r"(?:\+|\(|\b)\d[\d \t().\-/]{5,22}\d(?:\s?(?:x|ext\.?|#)\s?\d{1,6})?\b"
# Regions whose national formats are read (numbers with +CC are read in any region); Presidio's
# default regions, with GB for its "UK", plus the most populous phone markets in our traffic.
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "IN", "CA", "AU", "BR", "IL", "SG", "NL", "MX")


class PiiParams(EntityParams):
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(
                f"unknown phone regions {unknown}; use ISO 3166 codes such as US, GB, DE "
                f"({len(phonenumbers.SUPPORTED_REGIONS)} supported)"
            )
        return regions


@register
class PiiDetector(PatternDetector):
    """Contact details, payment and bank data, network addresses, wallets and national identifiers."""

    name = "pii"
    version = "2"
    Params = PiiParams
    patterns = (
        Pattern("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", 0.9),
        # Any brand's prefix and length, Luhn-checked: plain, or grouped 4-4-4-4(-3) or 4-6-5/4-6-4.
        Pattern("credit_card", r"\b\d{12,19}\b", 0.95, v.payment_card),
        Pattern("credit_card", _card_groups(" "), 0.95, v.payment_card),
        Pattern("credit_card", _card_groups("-"), 0.95, v.payment_card),
        Pattern("iban", r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?\b", 0.95, v.iban_mod97),
        Pattern("ip_address", rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b", 0.7),
        Pattern(
            "ip_address",
            r"(?:\b[0-9A-Fa-f]{1,4}|)(?::[0-9A-Fa-f]{0,4}){2,7}(?:\b|[0-9A-Fa-f]{1,4}\b)",
            0.7,
            v.ipv6_address,
        ),
        Pattern("us_ssn", r"\b\d{3}-\d{2}-\d{4}\b", 0.85, v.us_ssn),
        # ITIN: 9NN-7N/8N/9N-NNNN (IRS ranges 70-88, 90-92, 94-99).
        Pattern("us_itin", r"\b9\d{2}[- ]?(?:7\d|8[0-8]|9[0-2]|9[4-9])[- ]?\d{4}\b", 0.8),
        Pattern("crypto_wallet", r"\b[13][1-9A-HJ-NP-Za-km-z]{25,34}\b", 0.95, v.base58check),
        Pattern("crypto_wallet", r"\b(?:bc|BC)1[02-9ac-hj-np-zAC-HJ-NP-Z]{11,71}\b", 0.95, v.bech32),
        Pattern("crypto_wallet", r"\b0x[0-9a-fA-F]{40}\b", 0.9),
        Pattern("url", r"\bhttps?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]", 0.6),
        # National identifiers: Presidio's predefined set for the US, UK, EU, India, Australia,
        # Singapore, Korea and Thailand, each with its checksum.
        # NHS numbers print as 3-3-4 with spaces; above a national phone number (0.6) that it also is.
        Pattern("uk_nhs", r"\b\d{3} \d{3} \d{4}\b|\b\d{10}\b", 0.65, v.uk_nhs),
        Pattern("uk_nino", r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", 0.8, v.uk_nino),
        Pattern("es_nif", r"\b\d{8}-?[A-Z]\b", 0.85, v.es_nif),
        Pattern("es_nie", r"\b[XYZ]-?\d{7}-?[A-Z]\b", 0.85, v.es_nif),
        Pattern(
            "it_fiscal_code",
            r"(?i)\b[A-Z]{6}[\dLMNP-V]{2}[ABCDEHLMPRST][\dLMNP-V]{2}[A-Z][\dLMNP-V]{3}[A-Z]\b",
            0.9,
            v.it_fiscal_code,
        ),
        *(Pattern("it_vat_code", regex, 0.8, v.it_vat_code, group=i) for i, regex in enumerate(_IT_VAT)),
        Pattern("pl_pesel", r"\b\d{11}\b", 0.6, v.pl_pesel),
        Pattern("fi_personal_identity_code", r"\b\d{6}[+\-A-FU-Y]\d{3}[0-9A-Y]\b", 0.85, v.fi_personal_identity_code),
        *(Pattern("in_aadhaar", regex, 0.8, v.in_aadhaar, group=i) for i, regex in enumerate(_AADHAAR)),
        Pattern("in_pan", r"\b[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z]\b", 0.7),
        Pattern("au_abn", r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b", 0.75, v.au_abn),
        *(Pattern("au_acn", regex, 0.7, v.au_acn, group=i) for i, regex in enumerate(_ACN)),
        *(Pattern("au_tfn", regex, 0.7, v.au_tfn, group=i) for i, regex in enumerate(_TFN)),
        *(Pattern("au_medicare", regex, 0.7, v.au_medicare, group=i) for i, regex in enumerate(_MEDICARE)),
        Pattern("sg_nric_fin", r"(?i)\b[STFG]\d{7}[A-Z]\b", 0.85, v.sg_nric_fin),
        Pattern("kr_rrn", r"\b\d{6}-[1-8]\d{6}\b", 0.85, v.kr_rrn),
        *(Pattern("th_tnin", regex, 0.8, v.th_tnin, group=i) for i, regex in enumerate(_TNIN)),
    )
    entities = tuple(dict.fromkeys(("email", "phone_number", *(p.entity for p in patterns))))

    def __init__(self, params: PiiParams | None = None):
        super().__init__(params)
        wanted = self.params.entities
        self._phones = compile_re2(_PHONE_CANDIDATE) if wanted is None or "phone_number" in wanted else None

    def triggers(self) -> list[str]:
        return self._set.patterns + ([_PHONE_CANDIDATE] if self._phones is not None else [])

    def detect(self, text: str) -> list[DetectorMatch]:
        text = readable(text)
        hits = self._pattern_hits(text)
        if self._phones is not None:
            hits += self._phone_hits(text)
        return drop_overlaps(hits)

    def _phone_hits(self, text: str) -> list[DetectorMatch]:
        """Candidates in which libphonenumber finds a number.

        International (+CC): any number of a possible length for its country, allocated or not:
        the prefix says it is a phone number. National: a valid number in the first configured
        region that has one (libphonenumber's matcher, which wants the national prefix where a
        region needs one and skips dates and times), or a NANP-formatted (NNN) NNN-NNNN.
        Past MAX_VALIDATED_PHONES candidates in one text (a table of numbers, an attack), only the
        shapes count: libphonenumber costs up to 0.3 ms per candidate.
        """
        found: list[DetectorMatch] = []
        if self._phones is None:
            return found
        validated = 0
        for m in self._phones.finditer(text):
            candidate, start = m.group(), m.start()
            number = _EXTENSION.sub("", candidate)
            n_digits = sum(ch.isdigit() for ch in number)
            if (
                (number.count(".") > 2 and not number.startswith("+"))
                or not 8 <= n_digits <= 15
                or _SSN_SHAPE.fullmatch(candidate)
                or _ID_FRAGMENT.match(text, m.end())
                or (n_digits > 11 and candidate.isdigit() and candidate[0] != "0")
            ):
                # versions and addresses (1.2.3.4), too short or long (E.164), an SSN's shape, part of a UUID
                # or code, or a long bare number without a trunk 0 (an order number, not a national phone number)
                continue
            validated += 1
            if validated > MAX_VALIDATED_PHONES:
                shape = _INTERNATIONAL_SHAPE.match(candidate) or _NANP_SHAPE.search(candidate)
                if shape:
                    found.append(
                        DetectorMatch(
                            "phone_number",
                            start + shape.start(),
                            start + shape.end(),
                            0.6,
                            f"phone shape (past {MAX_VALIDATED_PHONES} candidates in one text)",
                        )
                    )
            elif candidate.startswith("+"):
                numbers = phonenumbers.PhoneNumberMatcher(candidate, "ZZ", leniency=phonenumbers.Leniency.POSSIBLE)
                found += [
                    DetectorMatch(
                        "phone_number",
                        start + n.start,
                        start + n.end,
                        0.75,
                        f"libphonenumber: +{n.number.country_code}, a possible length there",
                    )
                    for n in numbers
                ]
            else:
                found += self._national(candidate, start)
        return found

    def _national(self, candidate: str, start: int) -> list[DetectorMatch]:
        for region in self.params.phone_regions:
            try:  # a bare parse first: three times cheaper than the matcher, which confirms
                if not phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)):
                    continue
            except phonenumbers.NumberParseException:
                continue
            numbers = list(phonenumbers.PhoneNumberMatcher(candidate, region, leniency=phonenumbers.Leniency.VALID))
            if numbers:
                return [
                    DetectorMatch(
                        "phone_number",
                        start + n.start,
                        start + n.end,
                        0.6,
                        f"libphonenumber: a valid number in {region}",
                    )
                    for n in numbers
                ]
        nanp = _NANP_SHAPE.search(candidate)
        return (
            [DetectorMatch("phone_number", start + nanp.start(), start + nanp.end(), 0.6, "NANP format (NNN) NNN-NNNN")]
            if nanp
            else []
        )


MAX_VALIDATED_PHONES = 500
_INTERNATIONAL_SHAPE = re.compile(r"\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){1,5}$")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?|#)\s?\d{1,6}$")
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_ID_FRAGMENT = re.compile(r"-[0-9A-Za-z]")  # the candidate goes on as a UUID, a code or a range
_NANP_SHAPE = re.compile(r"\(\d{3}\) ?\d{3}-\d{4}\b|\b\d{3}-\d{3}-\d{4}\b")


# Our entity -> Presidio's (the same PII under the name a Presidio user knows): these differ; the
# national identifiers are Presidio's names in lower case.
_PRESIDIO_NAMES = {"email": "EMAIL_ADDRESS", "iban": "IBAN_CODE", "crypto_wallet": "CRYPTO"}
PRESIDIO_ENTITIES = {entity: _PRESIDIO_NAMES.get(entity, entity.upper()) for entity in PiiDetector.entities}
