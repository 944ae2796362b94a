"""Labelled secrets from two more secret scanners' own test suites, read from their registry packages.

Neither scanner is one our secret rules come from (gitleaks and detect-secrets), and nobody on this project
read these tests while writing patterns: every case is in the test split. Like trufflehog's pattern tests
(`udfs.evaluation.corpora.secret_cases`), the data is read at evaluation time from the package that the
registry serves, extracted once per version into the cache, and never copied into this repository.

- ripsecrets (crates.io, fetched by cargo): its tests scan `test/none` (no line may be reported), every line
  of each `test/one_per_line/*` file (one secret each) and each `test/one_per_file/*` file (one secret). A
  case is one line (one file for one_per_file); the secret's span is what ripsecrets reports there: the match
  of its own patterns (read from its `src/lib.rs` and `src/matcher/mod.rs`, run with Python's `re`, whose
  leftmost-first alternation is the Rust crate's), the first capture group where one took part, and any other
  occurrence of that value in the text (`secret_spans`). A file of private keys is matched as a whole, so its
  span is the key block, from its BEGIN line to its END marker. A positive text where the patterns do not
  find exactly one match, and a negative line that is not reported only because the crate's own
  `.secretsignore` lists its value (a setting, not the text), are skipped.
- trivy (the Go module proxy): `pkg/fanal/secret/scanner_test.go` scans `testdata/*` files (and, in its
  streaming test, inline texts) and lists every expected finding. A case is a scanned text; a secret's span
  starts at the finding's byte `Offset` and is as long as the run of asterisks that the masked `Match` line
  (or, for a key spanning lines, the masked code line where it ends) shows there; the spans are checked by
  masking the text again and comparing every finding's `Match` and code lines, and a case where one differs
  is skipped. Only the reported occurrence is labelled: trivy's tests put the same value inside longer words
  on purpose, where it must not be reported. Offsets are into the file without carriage returns, as the test
  reads it, and so is the text. Only cases run with trivy's builtin rules are kept: the config adds no rule,
  or adds one that reports nothing in that text (the findings are all builtin rules'); tests of custom rules,
  allow rules, exclude blocks, keywords and enabling or disabling rules are left out, as are texts with no finding only
  because of their path (an `example` or `.md` file, which a builtin allow rule skips whole) and the
  streaming test's texts with no finding (one is a known miss of small chunks). The configs kept disable the
  builtin `tests` allow rule only, which would skip the whole of `testdata/`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from udfs.evaluation.corpora import SecretText, Source, cached_rows, go_extract, go_module, secret_spans

RIPSECRETS = Source(
    "ripsecrets",
    "ripsecrets",
    "test/ (none, one_per_line/*, one_per_file/*) with src/lib.rs and src/matcher/mod.rs",
    "MIT (read at evaluation time, never copied into this project)",
    "the texts of its no-false-positive and no-false-negative tests: provider keys, tokens, URLs with passwords, "
    "private keys and random values after key/token/secret/password, and look-alikes it must not report",
    pinned="0.1.11",
)
TRIVY = Source(
    "trivy",
    "github.com/aquasecurity/trivy",
    "pkg/fanal/secret/scanner_test.go with pkg/fanal/secret/testdata/*",
    "Apache-2.0 (read at evaluation time, never copied into this project)",
    "the files and texts its secret scanner tests scan with the builtin rules, with every expected finding "
    "(cloud, SaaS and registry credentials, private keys, JWTs) and files where nothing may be reported",
    pinned="v0.74.0",
)


def _cases(rows: list[dict]) -> list[SecretText]:
    """The rows that were not skipped, one case per distinct text (its first labelling)."""
    cases, seen = [], set()
    for row in rows:
        if row["skip"] or row["text"] in seen:
            continue
        seen.add(row["text"])
        secrets = tuple(tuple((start, end) for start, end in spans) for spans in row["secrets"])
        cases.append(SecretText(row["text"], secrets, row["group"], "test"))
    return cases


def skipped(source: Source) -> list[tuple[str, str]]:
    """(group, reason) of each case of the source's tests that is not among its cases."""
    rows = cached_rows(source, _EXTRACTORS[source.name])
    return [(row["group"], row["skip"]) for row in rows if row["skip"]]


# ripsecrets (crates.io)


def _crate_dir(name: str, version: str) -> Path:
    """A crate's source as cargo unpacks it from crates.io: a throwaway project depending on it, resolved
    (and its dependencies' sources downloaded) by `cargo metadata`; nothing is built."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "src").mkdir()
        (Path(tmp) / "src" / "lib.rs").write_text("", encoding="utf-8")
        (Path(tmp) / "Cargo.toml").write_text(
            f'[package]\nname = "fetch-{name}"\nversion = "0.0.0"\nedition = "2021"\n\n'
            f'[dependencies]\n{name} = "={version}"\n',
            encoding="utf-8",
        )
        metadata = json.loads(
            subprocess.run(
                ["cargo", "metadata", "--format-version", "1", "--quiet"],
                capture_output=True,
                text=True,
                check=True,
                cwd=tmp,
            ).stdout
        )
    package = next(p for p in metadata["packages"] if p["name"] == name and p["version"] == version)
    return Path(package["manifest_path"]).parent


def _rust_strings(code: str) -> list[str]:
    """The string literals in Rust code: raw (r"..", r#".."#) as they are, plain ones without escapes."""
    out = []
    for m in re.finditer(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', code, re.S):
        if m.group(2) is not None:
            out.append(m.group(2))
        elif "\\" in m.group(3):
            raise ValueError(f"an escaped Rust string literal: {m.group(3)!r}")
        else:
            out.append(m.group(3))
    return out


def _ripsecrets_matcher(root: Path) -> re.Pattern:
    """ripsecrets' combined pattern, as `find_secrets` builds it: `(p1|p2|...)`, its random-string pattern last."""
    lib = (root / "src" / "lib.rs").read_text(encoding="utf-8")
    body = lib[lib.index("fn predefined_secret_regexes") :]
    body = body[: body.index("matcher::RANDOM_STRING_REGEX")]
    patterns = _rust_strings(body)
    matcher = (root / "src" / "matcher" / "mod.rs").read_text(encoding="utf-8")
    random = re.search(r'pub const RANDOM_STRING_REGEX: &str = r(#*)"(.*?)"\1;', matcher, re.S)
    if len(patterns) < 20 or random is None:
        raise ValueError(f"ripsecrets' patterns not found in {root}")
    return re.compile("(" + "|".join([*patterns, random.group(2)]) + ")")


def _reported(matcher: re.Pattern, text: str) -> list[tuple[int, int]]:
    """What ripsecrets reports of each match: the first capture group (after the whole alternation's) that
    took part, else the whole match (its `IgnoringMatcher.find_at`)."""
    out = []
    for m in matcher.finditer(text):
        group = next((i for i in range(2, matcher.groups + 1) if m.group(i) is not None), 0)
        out.append(m.span(group))
    return out


def _ripsecrets_rows() -> list[dict]:
    version = RIPSECRETS.version
    print(f"fetching the ripsecrets {version} crate from crates.io with cargo (once) ...", file=sys.stderr, flush=True)
    root = _crate_dir(RIPSECRETS.package, version)
    if not re.search(r'^license = "MIT"$', (root / "Cargo.toml").read_text(encoding="utf-8"), re.M):
        raise ValueError(f"{root / 'Cargo.toml'}: not MIT licensed any more; check before use")
    matcher = _ripsecrets_matcher(root)
    ignore = (root / ".secretsignore").read_text(encoding="utf-8") if (root / ".secretsignore").exists() else ""
    ignored = [line.strip() for line in ignore.partition("[secrets]")[2].splitlines() if line.strip()]
    rows: list[dict[str, Any]] = []

    def positive(group: str, text: str) -> None:
        found = _reported(matcher, text)
        if len(found) != 1:
            rows.append({"group": group, "text": text, "secrets": [], "skip": f"matched {len(found)} times, not once"})
            return
        (start, end), *_ = found  # the value, wherever it is in the text (secret_spans finds this occurrence)
        rows.append({"group": group, "text": text, "secrets": [secret_spans(text, text[start:end])], "skip": ""})

    test = root / "test"
    for line in (test / "none").read_text(encoding="utf-8").splitlines():
        listed = [line[start:end] for start, end in _reported(matcher, line) if line[start:end] in ignored]
        skip = f"not reported only because .secretsignore lists {listed[0]}" if listed else ""
        rows.append({"group": "no_false_positives/none", "text": line, "secrets": [], "skip": skip})
    for path in sorted((test / "one_per_line").iterdir()):
        for line in path.read_text(encoding="utf-8").splitlines():
            positive(f"no_false_negatives/one_per_line/{path.name}", line)
    for path in sorted((test / "one_per_file").iterdir()):
        positive(f"no_false_negatives/one_per_file/{path.name}", path.read_text(encoding="utf-8"))
    return rows


def ripsecrets_cases() -> list[SecretText]:
    """ripsecrets' test texts: each line of its one-per-line files and each one-per-file file with its one
    secret, and each line of `test/none` with none."""
    return _cases(cached_rows(RIPSECRETS, _ripsecrets_rows))


# trivy (the Go module proxy)

_MAX_LINE = 100  # trivy's maxLineLength: a longer line's Match is cut to 30 bytes before the secret, 20 after


def _go_text(data: bytes) -> str:
    """trivy's sanitizeString: carriage returns dropped, each run of invalid UTF-8 one replacement character."""
    return re.sub("\ufffd+", "\ufffd", data.replace(b"\r", b"").decode("utf-8", "replace"))


def _match_start(content: bytes, start: int) -> tuple[int, int]:
    """Where the line holding `start` begins and where its shown part (`Match`) begins (findLocation)."""
    line_start = content.rfind(b"\n", 0, start) + 1
    line_end = content.find(b"\n", start)
    line_end = len(content) if line_end < 0 else line_end
    shown = line_start if line_end - line_start <= _MAX_LINE or start - line_start - 30 < 0 else start - 30
    return line_start, shown


def _match_line(content: bytes, start: int, end: int) -> str:
    """trivy's findLocation's match line for a secret at [start, end) of the (masked) content."""
    line_start, shown = _match_start(content, start)
    line_end = content.find(b"\n", start)
    line_end = len(content) if line_end < 0 else line_end
    if line_end - line_start > _MAX_LINE:
        line_end = line_end if end + 20 > line_end else end + 20
    return _go_text(content[shown:line_end])


def _finding_end(content: bytes, finding: dict) -> int:
    """Where a finding's secret ends: its start plus the asterisks that mask it on its line, or, for one spanning
    lines, the start of its last line plus the asterisks that line begins with."""
    start, first, last = finding["Offset"], finding["StartLine"], finding["EndLine"]
    if content.count(b"\n", 0, start) + 1 != first:
        raise ValueError(f"offset {start} is not on line {first}")
    if last == first:
        _, shown = _match_start(content, start)
        match = finding["Match"]
        column = len(_go_text(content[shown:start]))
        stars = len(match[column:]) - len(match[column:].lstrip("*"))
        if not stars:
            raise ValueError("no masked secret at its offset")
        return start + stars
    lines = {line["Number"]: line["Content"] for line in (finding.get("Code") or {}).get("Lines") or []}
    if last not in lines:
        raise ValueError("a secret spanning lines without its last line in the expected code")
    stars = len(lines[last]) - len(lines[last].lstrip("*"))
    line_start = 0
    for _ in range(last - 1):
        line_start = content.index(b"\n", line_start) + 1
    return line_start + stars


def _check_masking(content: bytes, spans: list[tuple[int, int]], findings: list[dict]) -> None:
    """Mask every span as trivy does (newlines kept) and compare each finding's Match and code lines."""
    masked = bytearray(content)
    for start, end in spans:
        for i in range(start, end):
            if masked[i] != ord("\n"):
                masked[i] = ord("*")
    lines = bytes(masked).split(b"\n")
    for (start, end), finding in zip(spans, findings):
        match = _match_line(bytes(masked), start, end)
        if match != finding["Match"]:
            raise ValueError(f"masked again, the match line is {match!r}, not {finding['Match']!r}")
        for line in (finding.get("Code") or {}).get("Lines") or []:
            raw = lines[line["Number"] - 1]
            if len(raw) <= _MAX_LINE and _go_text(raw) != line["Content"]:
                raise ValueError(f"masked again, line {line['Number']} is {_go_text(raw)!r}")


def _chars(content: bytes, offset: int) -> int:
    return len(content[:offset].decode("utf-8", "replace"))


def _trivy_case(case: dict, secret_dir: Path) -> dict:
    group = f"{case['func']}/{case['name']}"
    findings = (case.get("want") or {}).get("Findings") or []
    row: dict[str, Any] = {"group": group, "text": "", "secrets": [], "skip": ""}
    config = yaml.safe_load((secret_dir / case["configPath"]).read_text(encoding="utf-8")) or {}
    custom = {rule.get("id") for rule in config.get("rules") or []}
    path_allowed = set(case["pathAllowedBy"]) - set(config.get("disable-allow-rules") or [])
    if set(config) - {"rules", "disable-allow-rules"}:
        row["skip"] = f"a configuration test ({', '.join(sorted(set(config) - {'rules', 'disable-allow-rules'}))})"
    elif custom and (not findings or any(f.get("RuleID") in custom for f in findings)):
        row["skip"] = "a custom rule's test"
    elif path_allowed:
        row["skip"] = f"its path is skipped whole by the builtin allow rule {sorted(path_allowed)[0]}"
    elif case["func"] != "TestSecretScanner" and not findings:
        row["skip"] = "a streaming test with no finding (its chunk sizes may hide one)"
    if row["skip"]:
        return row
    if "input" in case:
        content = case["input"].encode() if isinstance(case["input"], str) else None
    else:
        content = (secret_dir / case["inputFilePath"]).read_bytes().replace(b"\r", b"")  # as the test reads it
    if content is None:
        return row | {"skip": "its input is not a constant"}
    row["text"] = content.decode("utf-8", "replace")
    try:
        spans = [(f["Offset"], _finding_end(content, f)) for f in findings]
        _check_masking(content, spans, findings)
    except (KeyError, TypeError, ValueError) as e:
        return row | {"skip": f"a finding not located: {e}"}
    row["secrets"] = [[[_chars(content, s), _chars(content, e)]] for s, e in spans]  # each finding where it is
    row["rules"] = [f["RuleID"] for f in findings]
    return row


def _trivy_rows() -> list[dict]:
    root = go_module(TRIVY)
    if "Apache License" not in (root / "LICENSE").read_text(encoding="utf-8")[:200]:
        raise ValueError(f"{root / 'LICENSE'}: not the Apache License any more; check before use")
    secret_dir = root / "pkg" / "fanal" / "secret"
    return [_trivy_case(case, secret_dir) for case in go_extract("scannercases", secret_dir)]


def trivy_cases() -> list[SecretText]:
    """trivy's secret scanner test texts run with its builtin rules, with every expected secret (none for a
    text where nothing may be reported)."""
    return _cases(cached_rows(TRIVY, _trivy_rows))


_EXTRACTORS = {RIPSECRETS.name: _ripsecrets_rows, TRIVY.name: _trivy_rows}
