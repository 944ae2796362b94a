"""The writers against the local stack's real servers (FerretDB, InfluxDB 1.8): idempotent, whatever the input
repeats, and a document or point the store refuses comes back instead of failing the job."""

import json
import math
import urllib.parse
import urllib.request

import pytest
from pymongo import MongoClient

from devstack import stack
from flink_jobs.streaming.sinks import influx
from flink_jobs.streaming.sinks.mongo import VIOLATION_INDEXES, MongoWriter
from flink_jobs.streaming.sinks.influx import InfluxWriter
from udfs.metrics import point


def test_prepare_creates_the_indexes_and_repeated_ids_store_one_document_each(stack_settings, run_id):
    database = f"llm_audit_sinks_{run_id}"
    writer = MongoWriter(stack_settings.mongo_uri, database, "violations", VIOLATION_INDEXES).prepare()
    with MongoClient(stack_settings.mongo_uri) as client:
        try:
            indexes = {tuple(index["key"]) for index in client[database]["violations"].list_indexes()}
            assert set(VIOLATION_INDEXES) <= indexes

            writer.open()  # as a subtask would, after prepare(): finds the indexes, creates none
            # A source that delivered an event twice repeats its violations within a batch (one document
            # per _id, the last one), and a replay after a restore repeats a whole batch: nothing changes.
            docs = [{"_id": f"v{i}", "rule_id": "pii.email", "n": i} for i in range(40)]
            writer.write(docs + [{**d, "n": -1} for d in docs[:25]])
            writer.write(docs[10:])
            writer.close()
            stored = {d["_id"]: d["n"] for d in client[database]["violations"].find()}
            assert stored == {d["_id"]: -1 if d["n"] < 25 else d["n"] for d in docs}
        finally:
            client.drop_database(database)


def test_a_stored_violation_is_never_changed_by_a_later_write(stack_settings, run_id):
    # Hole 5 of issue 30: a later document with the same _id $set every field, the reviewer's verdict aside.
    database = f"llm_audit_sinks_{run_id}"
    writer = MongoWriter(stack_settings.mongo_uri, database, "violations", VIOLATION_INDEXES).prepare()
    writer.open()
    with MongoClient(stack_settings.mongo_uri) as client:
        try:
            coll = client[database]["violations"]
            original = violation(1, user_id="alice", snippet="ja******", application="support")
            assert writer.write([original]) == []
            coll.update_one({"_id": original["_id"]}, {"$set": {"review": {"verdict": "confirmed"}}})
            stored = coll.find_one({"_id": original["_id"]})
            rewrite = {**original, "tenant": "evil", "user_id": "mallory", "snippet": "planted", "review": None}
            assert writer.write([rewrite, violation(2)]) == []  # refused as a duplicate, silently: not an error
            assert writer.write([original]) == []  # the replay of the same event: the identical document
            assert coll.find_one({"_id": original["_id"]}) == stored
            assert coll.count_documents({}) == 2
        finally:
            writer.close()
            client.drop_database(database)


def test_violations_stored_before_ids_named_the_tenant_move_to_their_new_ids_with_their_reviews(stack_settings, run_id):
    from datetime import UTC, datetime

    from flink_jobs.offline.migrations import migrate_violation_ids
    from udfs.findings import Finding, violation_id

    def stored(event_id: str, tenant: str) -> dict:
        finding = Finding(event_id, "pii.email", 1, "pii", "email", "medium", "prompt", 5, 21, 1.0, "ja****", "why")
        legacy = f"{event_id}:pii.email@1:prompt:5-21"  # the id before it named the tenant
        return {"_id": legacy, **finding.to_dict(), "tenant": tenant, "event_time": datetime(2026, 11, 1, tzinfo=UTC)}

    database = f"llm_audit_sinks_{run_id}"
    with MongoClient(stack_settings.mongo_uri) as client:
        try:
            violations, reviews = client[database]["violations"], client[database]["reviews"]
            old = [stored("e/1", "acme"), stored("e2", "globex")]
            violations.insert_many(old)
            reviews.insert_one({"violation_id": old[0]["_id"], "tenant": "acme", "verdict": "confirmed"})
            new = violation_id("acme", Finding(**{k: old[0][k] for k in Finding.__slots__}))
            violations.insert_one({**old[0], "_id": new})  # a crash after the insert: the move finishes

            assert migrate_violation_ids(violations, reviews) == 2
            assert migrate_violation_ids(violations, reviews) == 0  # idempotent
            assert sorted(d["_id"] for d in violations.find()) == ["acme/e%2F1:pii.email@1:prompt:5-21",
                                                                    "globex/e2:pii.email@1:prompt:5-21"]
            assert reviews.find_one()["violation_id"] == new
        finally:
            client.drop_database(database)


def test_the_violation_writer_never_stores_an_erased_users_events_again(stack_settings, run_id):
    from datetime import UTC, datetime

    from flink_jobs.tombstones import ERASURES, Tombstones

    database = f"llm_audit_sinks_{run_id}"
    erased_at = datetime(2026, 11, 20, tzinfo=UTC)
    with MongoClient(stack_settings.mongo_uri) as client:
        try:
            client[database][ERASURES].insert_one({"_id": "e1", "user_id": "u1", "tenant": "acme", "started_at": erased_at})
            writer = MongoWriter(stack_settings.mongo_uri, database, "violations", VIOLATION_INDEXES,
                                 tombstones=Tombstones(stack_settings.mongo_uri, database))
            writer.open()
            before, after = datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)
            docs = [violation(1, user_id="u1", event_time=before),  # erased: a replay, a restore, a late event
                    violation(2, user_id="u1", event_time=after),  # the same user's new traffic
                    violation(3, user_id="u1", event_time=before, tenant="globex"),  # another tenant's u1
                    violation(4, user_id="u2", event_time=before)]
            assert writer.write(docs) == []  # dropped, not refused: a dead letter would carry the erased data
            writer.close()
            assert sorted(d["_id"] for d in client[database]["violations"].find()) == sorted(d["_id"] for d in docs[1:])
        finally:
            client.drop_database(database)


def violation(i: int, **fields) -> dict:
    return {"_id": f"e{i}:pii.email@1:prompt:0-5", "rule_id": "pii.email", "tenant": "acme", "score": 0.9, **fields}


def test_the_documents_mongodb_refuses_come_back_with_their_error_and_the_others_are_stored(stack_settings, run_id):
    from pymongo.errors import WriteError

    database = f"llm_audit_sinks_{run_id}"
    writer = MongoWriter(stack_settings.mongo_uri, database, "violations", VIOLATION_INDEXES).prepare()
    good = [violation(i, tenant=tenant) for i, tenant in enumerate(["a\x00b", "a\\", "a\nb", "\U0001f600" * 256])]
    good += [violation(10 + i) for i in range(20)]
    bad = {
        "key": violation(100, evidence={"$where": "1"}),  # FerretDB: invalid key (2); MongoDB 5+ stores it
        "inf": violation(101, score=math.inf),  # FerretDB: infinity values are not allowed (2)
        "nan": violation(102, score=math.nan),  # FerretDB drops the connection: refused before sending
        "surrogate": violation(103, tenant="a\ud800"),  # BSON cannot encode it: the batch is bisected
    }
    batch = good[:12] + list(bad.values()) + good[12:]
    with MongoClient(stack_settings.mongo_uri) as client:
        try:
            writer.open()
            for attempt in ("first", "replay"):  # a replay updates the stored ones and refuses the same
                rejected = {doc["_id"]: exc for doc, exc in writer.write(batch)}
                assert rejected.keys() == {doc["_id"] for doc in bad.values()}, attempt
                assert isinstance(rejected[bad["key"]["_id"]], WriteError) and rejected[bad["key"]["_id"]].code == 2
                assert isinstance(rejected[bad["inf"]["_id"]], WriteError) and "infinity" in str(
                    rejected[bad["inf"]["_id"]]
                )
                assert isinstance(rejected[bad["nan"]["_id"]], ValueError)
                assert isinstance(rejected[bad["surrogate"]["_id"]], UnicodeEncodeError)
                stored = {d["_id"]: d["tenant"] for d in client[database]["violations"].find()}
                assert stored == {d["_id"]: d["tenant"] for d in good}, attempt
            writer.close()
        finally:
            client.drop_database(database)


def test_a_mongodb_authentication_failure_still_fails_the_write(stack_settings, run_id):
    from pymongo.errors import OperationFailure

    uri = stack_settings.mongo_uri.replace("mongodb://", "mongodb://nobody:wrong@")
    writer = MongoWriter(uri, f"llm_audit_sinks_{run_id}", "violations")
    with pytest.raises(RuntimeError, match="cannot create its indexes"):
        writer.open()
    writer._client = MongoClient(uri, serverSelectionTimeoutMS=5_000)  # as if the credential were revoked later
    writer._coll = writer._client[f"llm_audit_sinks_{run_id}"]["violations"]
    with pytest.raises(OperationFailure) as refused:
        writer.write([violation(i) for i in range(4)])
    assert refused.value.code == 18
    writer.close()


@pytest.fixture
def influx_database(stack_settings, run_id):
    database = f"llm_audit_sinks_{run_id}"
    stack.create_influx_database(stack_settings.influx_url, database)
    yield database
    stack.drop_influx_database(stack_settings.influx_url, database)


def influx_query(url: str, database: str, query: str) -> list:
    body = urllib.parse.urlencode({"q": query, "db": database}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=body), timeout=10) as resp:
        result = json.loads(resp.read())["results"][0]
    return result["series"][0]["values"] if "series" in result else []


@pytest.fixture
def no_retry(monkeypatch):
    """An error the writer would retry forever fails the test instead of hanging it."""
    transient = influx.influx_transient

    def checked(exc):
        if transient(exc):
            pytest.fail(f"retried as an outage: {exc}")
        return False

    monkeypatch.setattr(influx, "influx_transient", checked)


def test_the_points_influxdb_refuses_come_back_with_their_error_and_the_others_are_stored(
    stack_settings, influx_database, no_retry
):
    from influxdb_client.rest import ApiException

    writer = InfluxWriter(stack_settings.influx_url, "", "-", f"{influx_database}/autogen")
    writer.open()
    assert writer.write([point("violations", {"tenant": "acme"}, {"count": 1}, 0)]) == []
    # Tenants that the line protocol would store under another name (trailing backslash) or mangle.
    good = [point("violations", {"tenant": t, "model": "m"}, {"count": 1}, 60_000) for t in ("a\\", "a\nb", "a\x00b")]
    good += [point("violations", {"tenant": f"t{i}", "model": "m"}, {"count": i}, 60_000) for i in range(20)]
    bad = {
        "type conflict": point("violations", {"tenant": "acme"}, {"count": 1.5}, 60_000),  # 400: count is an integer
        "int over 64 bits": point("violations", {"tenant": "acme"}, {"count": 2**63}, 120_000),  # 400
        "year 2300": point("violations", {"tenant": "acme"}, {"count": 1}, 10_413_792_000_000),  # 400: time range
        "NaN only": point("scores", {"tenant": "acme"}, {"mean": math.nan}, 60_000),  # no line at all
    }
    rejected = writer.write(good[:10] + list(bad.values()) + good[10:])
    writer.close()
    assert [p for p, _ in rejected] == [
        bad["NaN only"],
        bad["type conflict"],
        bad["int over 64 bits"],
        bad["year 2300"],
    ]
    assert isinstance(rejected[0][1], ValueError)
    assert all(isinstance(exc, ApiException) and exc.status == 400 for _, exc in rejected[1:])
    stored = influx_query(stack_settings.influx_url, influx_database, 'SELECT "count", "tenant" FROM "violations"')
    assert sorted(tenant for _, _, tenant in stored) == sorted(["acme"] + [p["tags"]["tenant"] for p in good])
    assert {"a＼", "a␊b", "a\x00b"} <= {tenant for _, _, tenant in stored}


@pytest.mark.parametrize("bucket", ["llm_audit_no_such_database/autogen", "{database}/no_such_policy"])
def test_a_database_or_retention_policy_that_does_not_exist_fails_the_write(
    stack_settings, influx_database, no_retry, bucket
):
    from influxdb_client.rest import ApiException

    writer = InfluxWriter(stack_settings.influx_url, "", "-", bucket.format(database=influx_database))
    writer.open()
    with pytest.raises(ApiException) as refused:
        writer.write([point("violations", {"tenant": f"t{i}"}, {"count": 1}, 60_000) for i in range(4)])
    writer.close()
    assert refused.value.status in (404, 500)
