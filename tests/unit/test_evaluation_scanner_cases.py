"""Labelled secrets from ripsecrets' and trivy's own tests (udfs/evaluation/scanner_cases.py): provenance, spans
inside their texts, both kinds of case, and known cases of each suite located where the suite puts them."""

import shutil

import pytest

from udfs.evaluation.corpora import SecretText
from udfs.evaluation.scanner_cases import RIPSECRETS, TRIVY, ripsecrets_cases, skipped, trivy_cases

needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="ripsecrets is fetched with cargo")
needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="trivy is fetched from the Go module proxy")


def _well_formed(source, cases: list[SecretText]) -> None:
    positives = [c for c in cases if c.secrets]
    negatives = [c for c in cases if not c.secrets]
    print(
        f"{source.name} {source.version}: {len(cases)} texts, {len(positives)} with "
        f"{sum(len(c.secrets) for c in positives)} secrets, {len(negatives)} with none; "
        f"{len(skipped(source))} test cases left out"
    )
    assert source.pinned and source.version == source.pinned and source.license and source.package
    assert positives and negatives
    assert len({c.text for c in cases}) == len(cases)
    for case in cases:
        assert case.split == "test" and case.group
        for spans in case.secrets:
            assert spans and all(0 <= start < end <= len(case.text) for start, end in spans), case
            assert len({case.text[start:end] for start, end in spans}) == 1, case  # one value per secret


def _labelled(cases: list[SecretText], group: str) -> list[list[str]]:
    """Each text of the group: its secrets' values."""
    return [[c.text[s:e] for (s, e), *_ in c.secrets] for c in cases if c.group == group]


@needs_cargo
def test_ripsecrets_cases_hold_its_secrets_and_its_look_alikes():
    cases = ripsecrets_cases()
    _well_formed(RIPSECRETS, cases)
    assert RIPSECRETS.license.startswith("MIT")
    assert len(cases) >= 55
    github = _labelled(cases, "no_false_negatives/one_per_line/github")
    assert ["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"] in github
    url = {c.text: [c.text[s:e] for (s, e), *_ in c.secrets] for c in cases if c.group.endswith("/url")}
    assert url["mysql://USERNAME:PASSWORD@example.com"] == ["PASSWORD"]  # the URL's password, not the URL
    (pem,) = _labelled(cases, "no_false_negatives/one_per_file/pem_key")
    assert pem[0].startswith("-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASC")
    assert pem[0].endswith("L5iWcrT5skktYPvH96UlJw==\n-----END")
    negatives = {c.text for c in cases if not c.secrets}
    assert {"project_key = PROJECT_NAME_ALIAS", "http://public:secret@example.com/1"} <= negatives
    assert all(c.group == "no_false_positives/none" for c in cases if not c.secrets)
    # Not reported by ripsecrets only because its own .secretsignore lists the value: left out.
    assert not any("no_db // secret is in .secretsignore" in text for text in negatives)
    assert [reason for _, reason in skipped(RIPSECRETS)] == [
        "not reported only because .secretsignore lists ReTllpYQYfIZu2Jnf2lAPFjD"
    ]


@needs_go
def test_trivy_cases_hold_its_builtin_rules_findings_where_its_test_expects_them():
    cases = trivy_cases()
    _well_formed(TRIVY, cases)
    assert TRIVY.license.startswith("Apache-2.0")
    assert len(cases) >= 35
    aws = _labelled(cases, "TestSecretScanner/find aws secrets")
    assert aws == [
        ["AKIA0123456789ABCDEF", "KEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYK", "12ASD34qwe56CXZ78tyH10Tna543VBokN85RHCas"]
    ]
    # The same key six times, five of them inside longer words: only the one on line 2 is a secret.
    (alibaba,) = [c for c in cases if c.group == "TestSecretScanner/find Alibaba AccessKey ID txt"]
    ((start, end),) = alibaba.secrets[0]
    assert alibaba.text[start:end] == "LTAI1234567890ABCDEFG123" and alibaba.text[:start].count("\n") == 1
    assert alibaba.text.count("LTAI1234567890ABCDEFG123") == 6 and len(alibaba.secrets) == 1
    # A key spanning lines: from its first body line to the end of its last, as trivy masks it.
    (key,) = [c for c in cases if c.group == "TestSecretScanner/find Asymmetric Private Key secrets"]
    ((start, end),) = key.secrets[0]
    assert key.text[:start].endswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert key.text[end:].startswith("\n-----END RSA PRIVATE KEY-----")
    # Offsets after carriage returns are dropped (as the test reads the file); the PAT is the 40 characters
    # trivy masks ("****...12": its rule takes ghp_ and 36 more, not the text's last two).
    (crlf,) = [c for c in cases if c.group == "TestSecretScanner/find secrets in CRLF line endings file"]
    assert [crlf.text[s:e] for (s, e), *_ in crlf.secrets] == [
        "AKIA0123456789ABCDEF",
        "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
    ]
    assert "\r" not in crlf.text and crlf.text[crlf.secrets[1][0][1] :].startswith("12\n")
    negatives = {c.group for c in cases if not c.secrets}
    assert {"TestSecretScanner/invalid aws secrets", "TestSecretScanner/invalid OpenAI tokens"} <= negatives
    # Custom rules' and configuration tests are left out, as are files skipped for their path alone.
    groups = {c.group for c in cases}
    assert "TestSecretScanner/find match" not in groups and "TestSecretScanner/skip examples file" not in groups
    reasons = dict(skipped(TRIVY))
    assert reasons["TestSecretScanner/find match"] == "a custom rule's test"
    assert not any(
        "not located" in reason for group, reason in reasons.items() if group.startswith("TestSecretScanner/")
    )
