"""The PII detector (udfs/detectors/pii.py): entities found, hard negatives skipped, checksums required."""

import pytest

from tests.support.detectors import spans
from udfs.detectors import get_detector


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail jane.doe+x@mail.example.org.", [("email", "jane.doe+x@mail.example.org")]),
        ("card 4111-1111-1111-1111 and 4111 1111 1111 1112", [("credit_card", "4111-1111-1111-1111")]),
        ("amex 3782 822463 10005", [("credit_card", "3782 822463 10005")]),
        ("iban DE89 3704 0044 0532 0130 00, not DE89 3704 0044 0532 0130 01", [("iban", "DE89 3704 0044 0532 0130 00")]),
        ("from 192.168.0.1 via fe80::1ff:fe23:4567:890a", [("ip_address", "192.168.0.1"), ("ip_address", "fe80::1ff:fe23:4567:890a")]),
        ("C++ std::map and a::b are code, 256.1.1.1 is no address", []),
        ("ssn 536-22-8726, not 666-22-8726 or 536-00-8726", [("us_ssn", "536-22-8726")]),  # nor phones: an SSN's shape
        ("uuid 123e4567-e89b-12d3-a456-426614174000 sha 9f86d081884c7d659a2feaa0c55ad015", []),
        ("release 2.14.3 on 2026-11-21, order #123456789", []),
        ("call +49 30 901820 or (212) 555-0199", [("phone_number", "+49 30 901820"), ("phone_number", "(212) 555-0199")]),
    ],
)
def test_pii_finds_valid_entities_and_skips_hard_negatives(text, expected):
    assert spans("pii", text) == expected


def test_pii_entities_param_filters_and_is_validated():
    assert spans("pii", "a@b.co 10.0.0.1", entities=["ip_address"]) == [("ip_address", "10.0.0.1")]
    with pytest.raises(ValueError, match=r"no entities \['passport'\]"):
        get_detector("pii")(get_detector("pii").Params(entities=["passport"]))


# Published example numbers (NHS Digital, HMRC, the ATO, ICA, ...): each valid one, and the same
# number with its check digit or letter changed, which must not be found.
@pytest.mark.parametrize("entity, valid, broken", [
    ("uk_nhs", "943 476 5919", "943 476 5918"),
    ("uk_nino", "AB 12 34 56 C", "GB 12 34 56 C"),
    ("es_nif", "12345678Z", "12345678A"),
    ("es_nie", "X1234567L", "X1234567M"),
    ("it_fiscal_code", "RSSMRA85T10A562S", "RSSMRA85T10A562T"),
    ("it_vat_code", "P.IVA 07643520567", "P.IVA 07643520568"),
    ("pl_pesel", "44051401359", "44051401358"),
    ("fi_personal_identity_code", "131052-308T", "131052-308U"),
    ("in_aadhaar", "4991 1866 5246", "4991 1866 5247"),
    ("in_aadhaar", "aadhaar: 499118665246", "aadhaar: 499118665247"),
    ("au_abn", "51 824 753 556", "51 824 753 557"),
    ("au_acn", "ACN 004085616", "ACN 004085617"),
    ("au_tfn", "TFN 123456782", "TFN 123456783"),
    ("au_medicare", "2123 45670 1", "2123 45671 1"),
    ("sg_nric_fin", "S1234567D", "S1234567E"),
])
def test_national_identifiers_need_their_checksum(entity, valid, broken):
    detector = get_detector("pii")(get_detector("pii").Params(entities=[entity]))
    detector.open()
    found = [(m.entity, f"x {valid} y"[m.start:m.end]) for m in detector.detect(f"x {valid} y")]
    assert found == [(entity, valid.split()[-1] if valid.split()[0] in ("P.IVA", "aadhaar:", "ACN", "TFN") else valid)]
    assert detector.detect(f"x {broken} y") == []


@pytest.mark.parametrize("number", [
    "4222222222222", "4111 1111 1111 1111", "4000 0000 0000 0000 006",  # Visa 13, 16, 19
    "2223 0000 4841 0010", "5555-5555-5555-4444",  # Mastercard 2-series and 5-series
    "3714 496353 98431", "3056 930902 5904",  # Amex 4-6-5, Diners 4-6-4
    "6011 0009 9013 9424", "3530 1113 3330 0000", "6200 0000 0000 0005",  # Discover, JCB, UnionPay
    "6759 6498 2643 8453", "2200 0000 0000 0004",  # Maestro, Mir
])
def test_every_card_brand_and_length(number):
    assert spans("pii", f"card {number} thanks") == [("credit_card", number)]


@pytest.mark.parametrize("text, number", [
    ("ring 020 7946 0958 today", "020 7946 0958"),  # UK national
    ("tel: 0151 23456789.", "0151 23456789"),  # German mobile
    ("appelez le 01 42 68 53 00", "01 42 68 53 00"),  # French
    ("mobile 91234 56789", "91234 56789"),  # Indian
    ("call 02 9876 5432", "02 9876 5432"),  # Australian
    ("WhatsApp +91-9876543210 pls", "+91-9876543210"),
    ("phone 212.555.0199", "212.555.0199"),
    ("call 206.269.0743x9150 after six", "206.269.0743x9150"),  # with an extension
    ("office +61.3.9081.0033 (Melbourne)", "+61.3.9081.0033"),
])
def test_phone_numbers_in_national_and_international_formats(text, number):
    assert spans("pii", text) == [("phone_number", number)]


def test_phone_regions_are_validated():
    with pytest.raises(ValueError, match=r"unknown phone regions \['UK'\]; use ISO 3166 codes"):
        get_detector("pii").Params(phone_regions=["US", "UK"])


def test_every_pii_entity_maps_onto_one_presidio_entity():
    from udfs.detectors.pii import PRESIDIO_ENTITIES, PiiDetector

    assert set(PRESIDIO_ENTITIES) == set(PiiDetector.entities)
    assert len(set(PRESIDIO_ENTITIES.values())) == len(PRESIDIO_ENTITIES)
    assert PRESIDIO_ENTITIES["email"] == "EMAIL_ADDRESS" and PRESIDIO_ENTITIES["uk_nhs"] == "UK_NHS"


@pytest.mark.parametrize("iban", [
    "AL47 2121 1009 0000 0002 3569 8741",  # SWIFT's IBAN registry examples of countries outside the EU
    "UA213223130000026007233566001",
    "BR1800360305000010009795493C1",
    "KZ86125KZT5004100100",
    "DE89-3704-0044-0532-0130-00",  # grouped with hyphens
])
def test_iban_of_every_registry_country_in_its_print_and_electronic_forms(iban):
    assert spans("pii", f"pay to {iban} today") == [("iban", iban)]
