"""Labelled PII from generators and test suites other than Faker (which plants our synthetic set).

- libphonenumber's example numbers (the `phonenumbers` package we depend on, Apache-2.0): for every region it
  knows, its example fixed-line and mobile number, written as that region writes it nationally and
  internationally. The metadata is Google's, not ours; the detector validates with the same library, so this
  measures which formats and regions the candidate pattern and the configured regions reach, not the
  validation itself.
- python-stdnum's doctests (the sdist's `tests/*.doctest`, LGPL-2.1+, fetched from PyPI at evaluation time and
  never copied here): its blocks of numbers asserted valid, and of numbers asserted invalid (a wrong
  checksum, length or country), for the identifiers our rules validate.

Every case is a text that is the value alone, in the test split (nobody read them while writing patterns).
"""

from __future__ import annotations

import re

from udfs.evaluation.corpora import EntityText, Source, registry_package

PHONENUMBERS = Source(
    "libphonenumber",
    "phonenumbers",
    "phonenumbers/data (example numbers)",
    "Apache-2.0",
    "each region's example fixed-line and mobile number in its national and its international format",
)
STDNUM = Source(
    "python-stdnum",
    "python-stdnum",
    "tests/*.doctest",
    "LGPL-2.1-or-later (read at evaluation time, never copied into this project)",
    "the numbers its doctests assert valid, and those they assert invalid, for the identifiers we validate",
    pinned="2.2",
)
# stdnum module -> our entity, for the identifiers our PII rules validate.
STDNUM_ENTITIES = {"iban": "iban"}


def phone_cases() -> list[EntityText]:
    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    cases = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for form in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
                text = phonenumbers.format_number(number, form)
                cases.append(EntityText(text, ((0, len(text), "phone_number"),), "test"))
    return list({case.text: case for case in cases}.values())  # regions that share a plan share examples


# A doctest block of numbers, then the check that names which way they go:
# `[x for x in numbers.splitlines() if x and not iban.is_valid(x)]` -> [] asserts every one valid.
_BLOCK = re.compile(
    r">>> numbers = '''\n(?P<numbers>.*?)\n\.\.\. '''\n>>> \[ ?x for x in numbers\.splitlines\(\) if x and "
    r"(?P<negated>not )?(?P<module>[a-z_]+)\.is_valid\(x(?P<args>[^)]*)\) ?\]\n\[\]",
    re.DOTALL,
)


def stdnum_cases() -> list[EntityText]:
    """Numbers of the doctests' valid and invalid blocks (a block checked with options, such as IBANs valid only
    without their country's format, is left out)."""
    cases = []
    for module, text in _doctests().items():
        entity = STDNUM_ENTITIES.get(module)
        if entity is None:
            continue
        for block in _BLOCK.finditer(text):
            if block["module"] != module or block["args"]:
                continue
            for line in block["numbers"].splitlines():
                number = line.removeprefix("...").strip()
                if number:
                    spans = ((0, len(number), entity),) if block["negated"] else ()
                    cases.append(EntityText(number, spans, "test"))
    return list({case.text: case for case in cases}.values())


def _doctests() -> dict[str, str]:
    """stdnum module name -> the text of its doctest file, from the source distribution."""
    root = registry_package(STDNUM.package, STDNUM.pinned, sdist=True)
    return {
        path.stem.removeprefix("test_"): path.read_text(encoding="utf-8") for path in root.glob("*/tests/*.doctest")
    }
