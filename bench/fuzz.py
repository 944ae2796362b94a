"""A long fuzz run of the rule engine, its detectors, decoders and validators; keeps what it finds.

Usage: python bench/fuzz.py --minutes 30 [--seed 1] [--corpus tests/fixtures/fuzz]

Each input is checked as the unit tests check it (tests/support/fuzz.py: `problems`): every detector
directly, every decoder and validator, and the default and all-rules-enabled engines with the input as
prompt and response; no exception, no rule failure, every span inside its text. Inputs come from a
mutational loop: a third are drawn fresh from the unit tests' Hypothesis strategies (the same shaped
pieces: digits, hex, base64, binary, escapes, e-mail, URLs, secrets, surrogates, controls, tag
characters, Morse, ascii85, long runs), the rest mutate and splice those, the public corpora's texts and
the corpus kept so far (insert a shaped piece, encode a slice as base64/hex/binary/percent/\\u/tags,
repeat a slice, cut, insert a surrogate or a control character).

Why a loop and not Hypothesis alone: a run is bounded by minutes, not examples, and must go on after a
failure, keeping every failing input whole rather than stopping at the first one to shrink it; it starts
from the public corpora and the kept inputs, which Hypothesis's generators cannot mutate; and it times
each input per KB, where Hypothesis's deadline only has a threshold. Hypothesis still generates (its
strategies are the shapes), and the unit tests still shrink. A failing input is cut down here by a
simple delta-debugging pass (drop chunks while the same failure remains) before it is kept.

Kept under --corpus, one JSON file per input (tests/support/fuzz.py: `keep`), each a regression case of
tests/unit/test_fuzz.py: every input that failed, and the --slowest inputs (at least 1 KB) with the
highest cost per KB of the default engine, replacing slower-kept ones that were kept only for speed.
Prints progress every 30 s and, at the end, inputs tried, failures found and the slowest input per KB.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.support import fuzz  # noqa: E402

MAX_CHARS = 16_384  # an input's size cap: the kept ones replay in the unit tests
MIN_SLOW_CHARS = 1_024  # below this, cost per KB is the engine's fixed cost per event
SPECIALS = ["\ud800", "\udfff", "\ud83d", "\x00", "\x0b", "\x1c", "\x85", "\u2028", "\u200b", "\ufeff", "\U000e0041",
            "\\u", "\\ud800", "%", "%e2%80", "<~", "~>", "=", "@", "://", "İ", "ß", "\u0301", "\n", " ", "0", "1"]


def _generated(n: int, round_seed: int) -> list[str]:
    """n texts drawn from the unit tests' strategy, reproducibly."""
    out: list[str] = []

    @seed(round_seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(fuzz.texts(max_atoms=12))
    def draw(text):
        out.append(text)

    draw()
    return out


def _encode(rng: random.Random, piece: str) -> str:
    data = piece.encode("utf-8", "surrogatepass")
    how = rng.randrange(7)
    if how == 0:
        return base64.b64encode(data).decode()
    if how == 1:
        return data.hex()
    if how == 2:
        return rng.choice(["", " "]).join(f"{b:08b}" for b in data)
    if how == 3:
        return "".join(f"%{b:02X}" for b in data)
    if how == 4:  # UTF-16 code units: astral characters as surrogate pairs
        units = piece.encode("utf-16-le", "surrogatepass")
        return "".join(f"\\u{int.from_bytes(units[k : k + 2], 'little'):04x}" for k in range(0, len(units), 2))
    if how == 5:
        return "".join(chr(0xE0000 + ord(ch)) for ch in piece if ord(ch) < 0x80)
    return base64.a85encode(data, adobe=True).decode()


def mutate(rng: random.Random, text: str, pool: list[str]) -> str:
    """One to four mutations of text, pieces taken from pool."""
    for _ in range(rng.randint(1, 4)):
        i, j = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        how = rng.randrange(7)
        if how == 0:  # insert a piece of another input
            other = rng.choice(pool)
            a, b = sorted(rng.randrange(len(other) + 1) for _ in range(2))
            text = text[:i] + other[a:b] + text[i:]
        elif how == 1:  # encode a slice
            text = text[:i] + _encode(rng, text[i:j]) + text[j:]
        elif how == 2:  # repeat a slice: long runs
            text = text[:i] + text[i:j] * rng.choice([2, 3, 10, 100, 1000]) + text[j:]
        elif how == 3:  # cut
            text = text[:i] + text[j:]
        elif how == 4:  # an awkward character
            text = text[:i] + rng.choice(SPECIALS) + text[i:]
        elif how == 5:  # splice two inputs
            other = rng.choice(pool)
            text = text[:i] + other[rng.randrange(len(other) + 1) :]
        else:  # flip the case of a slice
            text = text[:i] + text[i:j].swapcase() + text[j:]
    return text[:MAX_CHARS]


def shrink(text: str, signature: str, budget: int = 150) -> str:
    """A shorter input with the same failure: drop chunks (halves, then quarters, ...) while it stays."""
    chunk, tries = max(1, len(text) // 2), 0
    while chunk >= 1 and tries < budget:
        i, smaller = 0, False
        while i < len(text) and tries < budget:
            candidate = text[:i] + text[i + chunk :]
            tries += 1
            if any(sig == signature for sig, _ in fuzz.problems(candidate)):
                text, smaller = candidate, True
            else:
                i += chunk
        if not smaller:
            chunk //= 2
    return text


def _engine_ms(text: str, rounds: int = 3) -> float:
    """The default engine's time on the text, best of `rounds`: one timing also measures first-use loading
    (libphonenumber reads a region's metadata when first asked)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fuzz.audit(fuzz.engines()["default"], fuzz.as_event(text))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _kb(text: str) -> float:
    return len(text.encode("utf-8", "surrogatepass")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corpus", type=Path, default=fuzz.CORPUS)
    parser.add_argument("--slowest", type=int, default=5, help="how many of the slowest inputs per KB to keep")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    print(f"python {platform.python_version()} on {platform.machine()}, seed {args.seed}, {args.minutes} min, "
          f"corpus {args.corpus}", flush=True)
    started = time.perf_counter()
    fuzz.detectors(), fuzz.engines()  # load before the clock: rules, gitleaks
    from udfs.evaluation.corpora import entity_cases, injection_cases, secret_cases

    public = [c.text for c in injection_cases()] + [c.text for c in entity_cases()] + [c.text for c in secret_cases()]
    kept = fuzz.corpus(args.corpus)
    print(f"loaded in {time.perf_counter() - started:.0f}s: {len(public)} public texts, {len(kept)} kept inputs",
          flush=True)

    # The slowest per KB so far, as a min-heap of (ms per KB, ms, chars, file or "", text); the kept ones re-timed.
    slow: list[tuple[float, float, int, str, str]] = []
    for k in kept:
        if "slow" in k.why and len(k.text) >= MIN_SLOW_CHARS:
            ms = _engine_ms(k.text)
            heapq.heappush(slow, (ms / _kb(k.text), ms, len(k.text), str(k.path), k.text))
    worst: tuple[float, float, int, str] = (0.0, 0.0, 0, "")  # the slowest per KB of the run, kept or not
    failures: dict[str, str] = {}  # signature -> the kept file
    tried = chars = 0
    pool = public + [k.text for k in kept]
    fresh: list[str] = []
    round_seed = args.seed * 1_000_003
    deadline = time.perf_counter() + args.minutes * 60
    started = last_report = time.perf_counter()
    while time.perf_counter() < deadline:
        if not fresh:
            round_seed += 1
            fresh = _generated(500, round_seed)
            pool += rng.sample(fresh, 50)
        if rng.random() < 1 / 3:
            text = fresh.pop()
        else:
            text = mutate(rng, rng.choice(pool) if rng.random() < 0.7 else fresh.pop(), pool)
        tried += 1
        chars += len(text)
        t0 = time.perf_counter()
        found = fuzz.problems(text)
        ms = (time.perf_counter() - t0) * 1000
        for signature, description in found:
            if signature in failures:
                continue
            small = shrink(text, signature)
            path = fuzz.keep(small, f"raised {description} (bench/fuzz.py seed {args.seed})", args.corpus)
            failures[signature] = str(path)
            pool.append(small)
            print(f"FAILURE {signature}\n  {description}\n  input ({len(small)} chars, from {len(text)}): "
                  f"{small[:200]!r}\n  kept as {path}", flush=True)
        if len(text) >= MIN_SLOW_CHARS and ms / _kb(text) > (slow[0][0] if len(slow) >= args.slowest else 0):
            engine_ms = _engine_ms(text)  # the default engine alone: the cost an event has in the job
            per_kb = engine_ms / _kb(text)
            if per_kb > worst[0]:
                worst = (per_kb, engine_ms, len(text), "")
            if len(slow) < args.slowest or per_kb > slow[0][0]:
                if len(slow) >= args.slowest:
                    _, _, _, evicted, _ = heapq.heappop(slow)
                    if evicted and "raised" not in json.loads(Path(evicted).read_text(encoding="utf-8"))["why"]:
                        Path(evicted).unlink(missing_ok=True)  # kept only for its speed, now beaten
                path = fuzz.keep(text, f"slow: {per_kb:.1f} ms per KB in the default engine ({engine_ms:.0f} ms for "
                                 f"{_kb(text):.1f} KB, {platform.machine()}, bench/fuzz.py seed {args.seed})",
                                 args.corpus)
                heapq.heappush(slow, (per_kb, engine_ms, len(text), str(path), text))
                pool.append(text)
                if per_kb >= worst[0]:
                    worst = (per_kb, engine_ms, len(text), str(path))
        if time.perf_counter() - last_report >= 30:
            last_report = time.perf_counter()
            elapsed = last_report - started
            print(f"{elapsed / 60:5.1f} min  {tried} inputs ({tried / elapsed:.1f}/s, {chars / 1e6:.1f} M chars)  "
                  f"{len(failures)} failures  slowest {worst[0]:.1f} ms/KB ({worst[2]} chars)", flush=True)

    elapsed = time.perf_counter() - started
    print(f"\n{tried} inputs in {elapsed / 60:.1f} min ({tried / elapsed:.1f}/s, {chars / 1e6:.1f} M characters), "
          f"engines: default, all enabled")
    print(f"failures: {len(failures)}")
    for signature, path in failures.items():
        print(f"  {signature}  ->  {path}")
    print(f"slowest per KB (inputs of {MIN_SLOW_CHARS}+ chars, default engine): {worst[0]:.1f} ms/KB, "
          f"{worst[1]:.0f} ms for {worst[2]} chars {worst[3]}")
    for per_kb, ms, n, path, _ in sorted(slow, reverse=True):
        print(f"  kept: {per_kb:7.1f} ms/KB  {ms:7.0f} ms  {n:6d} chars  {path}")


if __name__ == "__main__":
    main()
