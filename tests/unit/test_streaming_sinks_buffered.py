"""The writers' operator (flink_jobs/streaming/sinks/buffered.py): what a store refuses becomes an audit.error
document and a dead letter instead of failing the job; without services."""

def test_a_refused_violation_becomes_its_events_audit_error_document_and_a_dead_letter():
    """BufferedWrite's policy, with a writer that refuses one document: the others are stored, the refused
    one is replaced by an audit.error document of its event (same context), and both are in its dead letter."""
    import json

    from flink_jobs.streaming.sinks.buffered import BufferedWrite

    class Refusing:
        name = "mongodb llm_audit.violations"

        def __init__(self):
            self.stored: list[dict] = []

        def write(self, docs):
            refused = [(d, ValueError("NaN at scores.toxicity")) for d in docs if d.get("rule_id") == "toxicity.high"]
            self.stored += [d for d in docs if all(d is not r for r, _ in refused)]
            return refused

    writer = Refusing()
    good = {"_id": "e1:pii.email@1:prompt:0-5", "event_id": "e1", "rule_id": "pii.email", "field": "prompt",
            "tenant": "acme", "model": "m", "event_time": "2026-12-06T10:00:00Z"}
    bad = {**good, "_id": "e2:toxicity.high@1:response:0-9", "event_id": "e2", "rule_id": "toxicity.high",
           "field": "response", "scores": {"toxicity": float("nan")}}
    dead = list(BufferedWrite(writer, 10, 1000)._flush_batch([good, bad]))
    [substitute] = [d for d in writer.stored if d["rule_id"] == "audit.error"]
    assert writer.stored[0] == good
    assert (substitute["event_id"], substitute["entity"], substitute["snippet"], substitute["field"]) == (
        "e2", "write", "mongodb llm_audit.violations", "response")
    assert (substitute["tenant"], substitute["model"], substitute["category"]) == ("acme", "m", "audit_error")
    [(record, time_ms)] = dead
    letter = json.loads(record)
    assert letter["reason"] == "audit_error" and time_ms > 1_700_000_000_000
    assert letter["failures"][0]["stage"] == "write" and "NaN at scores.toxicity" in letter["failures"][0]["message"]
    assert json.loads(letter["raw"])["_id"] == bad["_id"]
