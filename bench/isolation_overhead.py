"""What fault isolation and the time budget per event cost the engine: this checkout against an earlier commit.

Both run the same ~1 KB events (bench/rules_throughput.py's) through `RuleEngine.evaluate` with the
default rules, one core, in alternating child processes (this checkout's udfs/ on PYTHONPATH, then the
base commit's in a temporary git worktree), best of `--rounds` each; prints events/s and the ratio.
Usage: python bench/isolation_overhead.py [--base feca6cb] [--events 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import os, sys, time
sys.path.insert(0, {bench!r})
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
from rules_throughput import one_kb_events, rate
from udfs.engine import RuleEngine
from udfs.events import parse_event
from udfs.rules import load_rules
import udfs
assert udfs.__file__.startswith({root!r}), udfs.__file__
events = [parse_event(r) for r in one_kb_events({events})]
engine = RuleEngine(load_rules({rules!r}))
engine.open()
rate(engine.evaluate, events[:200])
print(rate(engine.evaluate, events))
"""


def run(checkout: Path, events: int) -> float:
    code = _CHILD.format(bench=str(ROOT / "bench"), root=str(checkout), events=events,
                         rules=str(ROOT / "rules" / "default.yaml"))
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=checkout, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="feca6cb", help="the commit to compare with")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.base], cwd=ROOT, check=True)
        try:
            best = {"base": 0.0, "this": 0.0}
            for i in range(args.rounds):
                for name, checkout in (("base", base), ("this", ROOT)):
                    best[name] = max(best[name], run(checkout, args.events))
                print(f"round {i + 1}/{args.rounds}: base {best['base']:,.0f}, this {best['this']:,.0f} events/s",
                      file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=True)
    print(f"base {args.base}: {best['base']:10,.0f} events/s")
    print(f"this checkout:  {best['this']:10,.0f} events/s   ({best['this'] / best['base']:.3f}x)")


if __name__ == "__main__":
    main()
