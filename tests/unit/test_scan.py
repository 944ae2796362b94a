"""`llm-audit scan` (flink_jobs/cli/detection.py) as a subprocess: the findings and scores the engine and
the suite compute."""

import json
import subprocess
import sys
from pathlib import Path

from devstack.traffic import generate
from udfs.engine import RuleEngine
from udfs.events import parse_event
from udfs.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]


def test_scan_prints_the_findings_the_engine_computes(tmp_path):
    samples = list(generate(200, seed=8, start_ms=1_800_000_000_000))
    (tmp_path / "events.jsonl").write_text("".join(s.value + "\n" for s in samples))
    result = subprocess.run([str(Path(sys.executable).parent / "llm-audit"), "scan", "-i", str(tmp_path / "events.jsonl"),
                             "-r", str(ROOT / "rules" / "default.yaml")], capture_output=True, text=True, timeout=120)
    malformed = sum(s.malformed is not None for s in samples)
    assert result.returncode == (2 if malformed else 0)
    assert result.stderr.count("skipped") == malformed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    engine = RuleEngine(load_rules(ROOT / "rules" / "default.yaml"))
    engine.open()
    expected = [f.to_dict() for s in samples if not s.malformed for f in engine.evaluate(parse_event(s.value))]
    assert [{k: v for k, v in line.items() if k != "type"} for line in lines] == expected and expected
    assert {line["type"] for line in lines} == {"finding"}


def test_scan_with_scores_feeds_score_rules_and_prints_each_events_scores(tmp_path):
    from devstack.traffic import TOXIC

    samples = [s for s in generate(300, seed=9, start_ms=1_800_000_000_000) if not s.malformed]
    toxic = {s.event_id for s in samples if any(t in s.value for t in TOXIC)}
    assert toxic
    (tmp_path / "events.jsonl").write_text("".join(s.value + "\n" for s in samples))
    result = subprocess.run([str(Path(sys.executable).parent / "llm-audit"), "scan", "--scores", "-i",
                             str(tmp_path / "events.jsonl"), "-r", str(ROOT / "rules" / "default.yaml"),
                             "--scorers-config", str(ROOT / "tests" / "fixtures" / "scorers" / "packaged.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    scores = [line for line in lines if line["type"] == "scores"]
    assert [line["event_id"] for line in scores] == [s.event_id for s in samples]
    assert all("toxicity" in line["scores"]["prompt"] for line in scores)
    flagged = {line["event_id"] for line in lines if line["type"] == "finding" and line["rule_id"] == "toxicity.high"}
    assert flagged == toxic
