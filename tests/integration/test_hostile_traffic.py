"""Traffic written by an attacker, through the real job on the local stack (issue 30, holes 5 and 6).

Event fields are written by whoever talks to the LLM. Tenant evil reuses tenant acme's event ids (one
with a '/', once unopenable in the console) with the same spans; other events carry a 300,000-character
application name full of e-mails' worth of violations, or control characters in an identifier. acme's
violations must stay acme's, unchanged; the bloated and smuggling events must be dead letters that
name the field, with nothing of them stored.
"""

import json

from flink_jobs.streaming import job
from flink_jobs.kafka import client_config
from tests.integration.conftest import produce
from tests.support.check import read_topic, stored_findings

START_MS = 1_795_200_000_000
PROMPT = "write to jane.doe@example.com and john.roe@example.org"


def _event(event_id: str, tenant: str, at_s: int, **fields) -> str:
    return json.dumps({"event_id": event_id, "timestamp": START_MS + at_s * 1000, "tenant": tenant, "model": "m",
                       "prompt": PROMPT, "response": "ok", **fields})


SHARED = ("acme-1", "acme/2")  # acme's event ids, which evil reuses
HOSTILE = {
    "bloated": _event("bloated", "acme", 5, application="a" * 300_000),
    "smuggled": _event("smuggled", "acme\u202e", 6),
    "forged-log": _event("forged-log", "acme", 7, user_id='u1\n{"event": "sink_recovered"}'),
}


def test_a_tenant_cannot_touch_anothers_violations_and_bloated_or_smuggling_events_are_dead_letters(
    isolated_job, unscored_rules
):
    settings = isolated_job("hostile", scorers=[], rules_path=unscored_rules)
    messages = [(START_MS + i * 1000, "acme", _event(e, "acme", i, user_id="alice")) for i, e in enumerate(SHARED)]
    # Later, another tenant's events with acme's ids and the same text (so the same rules and spans).
    messages += [(START_MS + 3000 + i * 1000, "evil", _event(e, "evil", 3 + i, user_id="mallory", application="x"))
                 for i, e in enumerate(SHARED)]
    messages += [(START_MS + 5000 + i * 1000, "acme", value) for i, value in enumerate(HOSTILE.values())]
    produce(settings.kafka_bootstrap, settings.source_topic, messages)

    job.main(settings)

    docs = stored_findings(settings, [*SHARED, *HOSTILE])
    by_tenant = {tenant: [d for d in docs if d["tenant"] == tenant] for tenant in ("acme", "evil")}
    assert len(docs) == len(by_tenant["acme"]) + len(by_tenant["evil"])  # nothing of the hostile events
    assert len(by_tenant["acme"]) == len(by_tenant["evil"]) == 2 * len(SHARED)  # two e-mails per event
    assert {d["user_id"] for d in by_tenant["acme"]} == {"alice"} and {d["user_id"] for d in by_tenant["evil"]} == {"mallory"}
    assert all(d["_id"].startswith("acme/") for d in by_tenant["acme"])
    assert all(d["_id"].startswith("evil/") and "application" in d for d in by_tenant["evil"])
    assert any("%2F" in d["_id"] for d in by_tenant["acme"])  # acme/2: its '/' encoded, the tenant's the only one

    dead = {json.loads(d["raw"])["event_id"]: d for d in map(json.loads, read_topic(client_config(settings), settings.dlq_topic))}
    assert dead.keys() == HOSTILE.keys() and {d["reason"] for d in dead.values()} == {"schema_violation"}
    assert dead["bloated"]["errors"] == ["application: 300,000 characters, over the bound of 256 (LLM_AUDIT_MAX_ID_CHARS)"]
    assert dead["smuggled"]["errors"] == ["tenant: control character U+202E at 4; identifiers hold printable text only"]
    assert dead["forged-log"]["errors"] == ["user_id: control character U+000A at 2; identifiers hold printable text only"]
