"""The check-digit validators (udfs/detectors/validators.py)."""

from udfs.detectors.validators import base58check, bech32, iban_mod97, luhn, us_ssn


def test_validators():
    assert luhn("4539 1488 0343 6467") and not luhn("4539 1488 0343 6468")
    assert iban_mod97("GB82WEST12345698765432") and not iban_mod97("GB82WEST1234569876543")
    assert not us_ssn("078-05-1120")  # the famous Woolworth wallet card
    assert base58check("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy") and not base58check("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLz")
    assert bech32("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4") and not bech32("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5")
