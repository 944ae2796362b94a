"""Secrets: LLM-era API keys and tokens, private keys, JWTs, and high-entropy assignments.

LLM-era provider formats are our own pattern table; detect-secrets' provider plugins add the
rest (Azure, GitLab, Twilio, SendGrid, npm, PyPI, ...). Assignments such as `password = "..."`
count when the value looks random. Placeholders (YOUR_API_KEY, xxxx, <token>, ...EXAMPLE) are
not secrets.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from udfs.detectors.base import (
    DetectorMatch,
    Pattern,
    PatternDetector,
    PatternSet,
    compile_re2,
    drop_overlaps,
    readable,
    register,
)

_PLACEHOLDER = re.compile(
    r"(?i)(your|my)[_-]?(api[_-]?)?(key|token|secret)|x{4,}|\*{4,}|<[^>]*>|\{\{|\$\{|example|changeme|placeholder|"
    r"redacted|dummy|sample|insert[_-]|replace[_-]?me|0{8,}|1234567"
)


# detect-secrets plugins we do not run: our table covers these formats (with placeholder handling),
# and its generic entropy/keyword/IP plugins are too noisy for prose.
_COVERED_BY_OUR_TABLE = {
    "AWS Access Key",
    "GitHub Token",
    "GitLab Token",
    "JSON Web Token",
    "OpenAI Token",
    "Private Key",
    "Slack Token",
    "Stripe Access Key",
    "Secret Keyword",
    "Base64 High Entropy String",
    "Hex High Entropy String",
    "Public IP (ipv4)",
}


_LONG_TOKEN_PATTERN = r"[A-Za-z0-9+/=_.:@-]{16,}"
_LONG_TOKEN = re.compile(_LONG_TOKEN_PATTERN)


def _not_placeholder(value: str) -> bool:
    return _PLACEHOLDER.search(value) is None


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _random_looking(value: str) -> bool:
    return _not_placeholder(value) and entropy(value) >= 3.0


# A name, not a value: `$api_key` and `%s` refer to one, `registry-password` and `accessToken` name one.
_REFERENCE = re.compile(r"[$%]|[A-Za-z]+(?:[-_.][A-Za-z]+)+$|[a-z]+(?:[A-Z][a-z]+)+$")
_MIXED = re.compile(r"\d|.[A-Z]")


def _assigned_secret(value: str) -> bool:
    """The value of `key = value` is a secret when it looks random: a digit or an inner capital (so that
    "Key: Responsibilities" is prose), high entropy, and neither a placeholder nor a reference."""
    return _MIXED.search(value) is not None and _REFERENCE.match(value) is None and _random_looking(value)


_LOOKAROUND = re.compile(r"\(\?<?[=!][^()]*\)")


def _gate(regex: re.Pattern) -> str | None:
    """An RE2 pattern that occurs in a text wherever the Python regex matches on one of its lines, or None.

    Dropping lookarounds only widens a pattern, as does capping a repetition RE2 refuses; (?m)
    makes ^ and $ match at line ends, as they do on a line. (RE2's \\w and \\d are ASCII: a
    token of non-ASCII letters or digits can slip through, and is no provider's key format.)
    """
    pattern = re.sub(r"\{(\d+),\d{4,}\}", r"{\1,}", _LOOKAROUND.sub("", regex.pattern))
    pattern = ("(?mi)" if regex.flags & re.IGNORECASE else "(?m)") + pattern
    try:
        compile_re2(pattern)
    except ValueError:
        return None
    return pattern


@functools.lru_cache(maxsize=1)
def _plugins() -> tuple[list, list[list[str] | None]]:
    """detect-secrets' provider plugins we run, and each one's gate: RE2 patterns of which one occurs
    wherever the plugin finds anything (None: it has to run on every line with a long token)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes: dict[str, Any] = get_mapping_from_secret_type_to_class()
    plugins = [cls() for name, cls in sorted(classes.items()) if name not in _COVERED_BY_OUR_TABLE]
    gates: list[list[str] | None] = []
    for plugin in plugins:
        gate = [_gate(regex) for regex in getattr(plugin, "denylist", None) or ()]
        gates.append([g for g in gate if g is not None] if gate and None not in gate else None)
    return plugins, gates


# gitleaks' rules (v8.30.1, MIT: data/gitleaks.toml) add some 200 provider formats. Left out: the
# formats our table covers (with placeholder handling), its generic key=value rule (our
# secret_assignment), and rules that look at file paths, not text.
GITLEAKS = Path(__file__).parent / "data" / "gitleaks.toml"
_GITLEAKS_COVERED = re.compile(
    r"^(?:openai|anthropic|aws-access-token|github|gitlab|slack|gcp-api-key|stripe-access-token|"
    r"huggingface|private-key|jwt|generic-api-key|pkcs12-file)"
)
# Keywords that occur in much ordinary text ("s.", "sk", "password"): a rule with one triggers on its
# regex, widened (_widen) so that its trigger stays a small automaton.
_COMMON_KEYWORD = re.compile(r"^.{0,2}$|^(?:password|secret|token|api-|auth|access|client|bearer|key)$")
_COUNTED = re.compile(r"\{(\d+)(,\d*)?\}")


def _widen(regex: str) -> str:
    """A regex that matches wherever `regex` does, its counted repetitions opened up ({90,120} is {8,}):
    RE2 builds one state per counted step, and a set of such patterns is slow to match."""
    return _COUNTED.sub(
        lambda m: f"{{{min(int(m.group(1)), 8)},}}" if int(m.group(1)) > 8 or m.group(2) else m.group(), regex
    )


@dataclass(frozen=True)
class _GitleaksRule:
    entity: str
    regex: Any  # compiled RE2
    group: int
    entropy: float
    allow: tuple[Any, ...]  # compiled RE2: a secret (or match) that matches one is not a secret
    allow_match: bool  # the allowlist regexes test the whole match, not the secret
    stopwords: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def _gitleaks() -> tuple[list[_GitleaksRule], list[str], tuple[Any, ...], tuple[str, ...]]:
    """The rules we run, the RE2 triggers under which any of them can match, and the global allowlist."""
    config = tomllib.loads(GITLEAKS.read_text())
    rules, keywords, regex_triggers = [], set(), []
    for rule in config["rules"]:
        if "regex" not in rule or _GITLEAKS_COVERED.match(rule["id"]):
            continue
        allow = [entry for entry in rule.get("allowlists", ()) if entry.get("condition", "OR") == "OR"]
        rules.append(
            _GitleaksRule(
                entity=rule["id"].replace("-", "_"),
                regex=compile_re2(rule["regex"]),
                group=rule.get("secretGroup", 0),
                entropy=rule.get("entropy", 0.0),
                allow=tuple(compile_re2(regex) for entry in allow for regex in entry.get("regexes", ())),
                allow_match=any(entry.get("regexTarget") == "match" for entry in allow),
                stopwords=tuple(word for entry in allow for word in entry.get("stopwords", ())),
            )
        )
        if rule.get("keywords") and not any(_COMMON_KEYWORD.match(keyword) for keyword in rule["keywords"]):
            keywords.update(rule["keywords"])
        else:
            regex_triggers.append(_widen(rule["regex"]))
    global_allow = config.get("allowlist", {})
    triggers = ["(?i)(?:" + "|".join(re.escape(word) for word in sorted(keywords)) + ")", *regex_triggers]
    return (
        rules,
        triggers,
        tuple(compile_re2(regex) for regex in global_allow.get("regexes", ())),
        tuple(word.lower() for word in global_allow.get("stopwords", ())),
    )


@register
class SecretsDetector(PatternDetector):
    """API keys and tokens by provider format, private-key blocks, JWTs, secret-looking assignments."""

    name = "secrets"
    version = "2"
    patterns: ClassVar[tuple[Pattern, ...]] = (
        Pattern("openai_api_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}\b", 0.9, _random_looking),
        Pattern("anthropic_api_key", r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,120}\b", 0.95, _not_placeholder),
        Pattern("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b", 0.9, _not_placeholder),
        Pattern(
            "github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{82})\b", 0.95, _not_placeholder
        ),
        # detect-secrets' GitLab plugin reports its prefix group ("glpat") as the secret, so it never fired.
        Pattern(
            "gitlab_token",
            r"\b(?:(?:glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_-]{20,50}|GR1348941[A-Za-z0-9_-]{20,50}|"
            r"glcbt-(?:[0-9a-fA-F]{2}_)?[A-Za-z0-9_-]{20,50}|glimt-[A-Za-z0-9_-]{25}|glptt-[A-Za-z0-9_-]{40}|"
            r"glagent-[A-Za-z0-9_-]{50,1000}|gloas-[A-Za-z0-9_-]{64})\b",
            0.95,
            _not_placeholder,
        ),
        Pattern("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b", 0.9, _not_placeholder),
        Pattern(
            "slack_webhook", r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+", 0.95
        ),
        Pattern("gcp_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b", 0.9, _not_placeholder),
        Pattern("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247}\b", 0.9, _not_placeholder),
        Pattern("huggingface_token", r"\bhf_[A-Za-z]{34}\b", 0.85, _random_looking),
        Pattern(
            "private_key", r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----", 0.99
        ),
        Pattern("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}\b", 0.9),
        # key = value assignments (and Go's :=, PHP's =>) whose value looks random: the value (group 1) is the secret.
        Pattern(
            "secret_assignment",
            r"(?i)\b(?:[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|key|auth|credentials?)[a-z0-9_.-]*)"
            r"[\"'`]?\s*(?::=|=>|[:=])\s*[\"'`]?([A-Za-z0-9+/_.!@#$%^&*-]{12,})",
            0.7,
            _assigned_secret,
            group=1,
        ),
        Pattern("bearer_token", r"\bBearer\s+([A-Za-z0-9._~+/-]{16,}=*)", 0.8, _assigned_secret, group=1),
    )
    entities = tuple(dict.fromkeys([*(p.entity for p in patterns), *(rule.entity for rule in _gitleaks()[0])]))

    def open(self) -> None:
        self._gitleaks_gate = PatternSet(_gitleaks()[1])
        self._gitleaks_set = PatternSet([rule.regex.pattern for rule in _gitleaks()[0]])
        self._plugins, gates = _plugins()
        self._gates = PatternSet([pattern for gate in gates for pattern in gate or ()])
        # plugin -> the indices of its gate in self._gates (None: no gate, it always runs)
        self._gate_of: list[frozenset[int] | None] = []
        start = 0
        for gate in gates:
            self._gate_of.append(None if gate is None else frozenset(range(start, start + len(gate))))
            start += len(gate or ())

    def detect(self, text: str) -> list[DetectorMatch]:
        text = readable(text)
        plugins = self._detect_secrets_plugins(text) if self._plugins is not None else []
        return drop_overlaps(plugins + self._gitleaks_hits(text) + self._pattern_hits(text))

    def _gitleaks_hits(self, text: str) -> list[DetectorMatch]:
        """gitleaks' rules as gitleaks applies them: the secret group, its entropy, the allowlists."""
        rules, _, allow, stopwords = _gitleaks()
        if not self._gitleaks_gate.match(text):  # the detector ran for another of its triggers
            return []
        found = []
        for index in self._gitleaks_set.match(text):
            rule = rules[index]
            for m in rule.regex.finditer(text):
                group = rule.group or (1 if rule.regex.groups else 0)  # gitleaks: the first group, if any
                secret = m.group(group)
                if not secret or entropy(secret) < rule.entropy or not _not_placeholder(secret):
                    continue
                lowered = secret.lower()
                if any(a.search(secret) for a in allow) or any(word in lowered for word in stopwords + rule.stopwords):
                    continue
                if any(a.search(m.group() if rule.allow_match else secret) for a in rule.allow):
                    continue
                start, end = m.span(group)
                found.append(
                    DetectorMatch(rule.entity, start, end, 0.85, f"gitleaks rule {rule.entity.replace('_', '-')}")
                )
        return found

    _plugins: list | None = None  # set in open()

    def triggers(self) -> list[str]:
        gates = _plugins()[1]
        ungated = [_LONG_TOKEN_PATTERN] if None in gates else []  # they only look at lines with a long token
        return [*super().triggers(), *(pattern for gate in gates for pattern in gate or ()), *ungated, *_gitleaks()[1]]

    def _detect_secrets_plugins(self, text: str) -> list[DetectorMatch]:
        occurring = frozenset(self._gates.match(text))
        plugins = [
            plugin
            for plugin, gate in zip(self._plugins or (), self._gate_of)
            if gate is None or not gate.isdisjoint(occurring)
        ]
        found = []
        offset = 0
        for line in text.splitlines(keepends=True) if plugins else ():
            if _LONG_TOKEN.search(line) is None:  # every provider format has a long token: skip prose fast
                offset += len(line)
                continue
            for plugin in plugins:
                for secret in plugin.analyze_line(filename="audit", line=line, line_number=0):
                    value = secret.secret_value or ""
                    if len(value) < 8 or not _not_placeholder(value):
                        continue
                    entity = re.sub(r"[^a-z0-9]+", "_", secret.type.lower()).strip("_")
                    for m in re.finditer(re.escape(value), line):
                        found.append(
                            DetectorMatch(
                                entity,
                                offset + m.start(),
                                offset + m.end(),
                                0.8,
                                f"detect-secrets plugin {type(plugin).__name__}",
                            )
                        )
            offset += len(line)
        return found
