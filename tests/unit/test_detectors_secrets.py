"""The secrets detector (udfs/detectors/secrets.py): provider formats, gitleaks' rules, assigned values, and
placeholders that are no secret."""

import pytest

from tests.support.detectors import spans


@pytest.mark.parametrize(
    "text, entity",
    [
        ("key sk-ant-api03-" + "Ab9_" * 23 + "xYz", "anthropic_api_key"),
        ("AWS AKIAZ3MZQ4ZBXQJ5WNEF", "aws_access_key"),
        ("slack xoxb-482915736028-9371046285913-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
        ("gcp AIzaSyD3x9Q7v2LmN8pR4tW6yZ1aB5cE7gH9jK0", "gcp_api_key"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private_key"),
        ("twilio SK2a7f9c3d1e5b8a4c6d0e2f1a3b5c7d9e", "twilio_api_key"),
        ("gitlab glpat-x8Ys3kRtq2Wn7Bv4Lm9Zp1Qa", "gitlab_token"),
        ("runner token GR1348941aB3dE5fG7hJ9kL1mN3pQ5r", "gitlab_token"),
    ],
)
def test_secrets_by_provider_format(text, entity):
    assert [e for e, _ in spans("secrets", text)] == [entity]


@pytest.mark.parametrize(
    "text",
    ["OPENAI_API_KEY=YOUR_API_KEY", "token = <your-token-here>", "AKIAIOSFODNN7EXAMPLE", "password: changeme123456",
     "api_key = 'xxxxxxxxxxxxxxxxxxxx'", "secret = ${VAULT_SECRET_VALUE}",
     # a reference or a name, not a value
     "curl -d key=$currencylayer_api_key", "export const key = process.env.ACCOUNT_KEY", "password: registry-password",
     "token: accessTokenValue", "Key: Responsibilities and deliverables"],
)
def test_placeholders_are_not_secrets(text):
    assert spans("secrets", text) == []


@pytest.mark.parametrize(
    "text, secret",
    [
        ('buildkite_secret := "kimu4axq3jxxdj8un0kpo3ua2ucr05zmhh4de0r6"', "kimu4axq3jxxdj8un0kpo3ua2ucr05zmhh4de0r6"),
        ("'client_key' => 'Q2w9XzR7vB4nM1kL8pT3'", "Q2w9XzR7vB4nM1kL8pT3"),
        ("beebole credentials: bn6htprmfpukfalts4muwalxh9j15ucvnrfdme8t", "bn6htprmfpukfalts4muwalxh9j15ucvnrfdme8t"),
        ('req.Header.Set("Authorization", "Bearer yvxpthLIcYpZweFpPOVeCOtt")', "yvxpthLIcYpZweFpPOVeCOtt"),
    ],
)
def test_assigned_values_that_look_random_are_secrets(text, secret):
    assert [value for _, value in spans("secrets", text)] == [secret]


def _rand(alphabet: str, n: int, seed: int = 3) -> str:
    import random

    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


_HEX, _ALNUM = "0123456789abcdef", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@pytest.mark.parametrize("token, entity", [
    ("shpat_" + _rand(_HEX, 32), "shopify_access_token"),
    ("dapi" + _rand(_HEX, 32), "databricks_api_token"),
    ("pul-" + _rand(_HEX, 40), "pulumi_api_token"),
    ("PMAK-" + _rand(_HEX, 24) + "-" + _rand(_HEX, 34), "postman_api_token"),
    ("lin_api_" + _rand(_ALNUM, 40), "linear_api_key"),
    ("dp.pt." + _rand(_ALNUM, 43), "doppler_api_token"),
    ("npm_" + _rand(_ALNUM, 36), "npm_access_token"),
    ("pplx-" + _rand(_ALNUM, 48), "perplexity_api_key"),
])
def test_gitleaks_provider_formats(token, entity):
    found = spans("secrets", f"export TOKEN={token} # prod")
    assert found == [(entity, token)]


def test_gitleaks_rules_keep_their_entropy_and_placeholder_checks():
    assert spans("secrets", "export TOKEN=npm_" + "a" * 36) == []  # no entropy
    assert spans("secrets", "export TOKEN=shpat_" + "0" * 32) == []
