"""Erasure where it used to miss, on the real stack: the reviews and the audit log of the user's
violations, archive files committed after the erasure started, and a replay after it."""

import json
import pickle
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from pymongo import MongoClient
from typer.testing import CliRunner

from console.store import AUDIT_LOG, REVIEWS, Caller, Store
from flink_jobs.offline import erasure
from flink_jobs.offline.reader import ARCHIVE_SCHEMA, archive_fs, read_archive
from flink_jobs.cli import app
from tests.integration.conftest import job_env, produce
from udfs.archive import COLUMNS

HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


def _violation(n: int, tenant: str, user: str) -> dict:
    return {
        "_id": f"{tenant}/evt-{n}:pii.email@1:prompt:5-20",
        "event_id": f"evt-{n}",
        "tenant": tenant,
        "user_id": user,
        "rule_id": "pii.email",
        "severity": "medium",
        "event_time": HOUR_AGO,
    }


def test_the_users_reviews_go_and_their_audit_log_entries_are_pseudonymised_in_place(isolated_job):
    settings = isolated_job("erv")
    uri, database = settings.mongo_uri.get_secret_value(), settings.mongo_database
    with MongoClient(uri) as client:
        db = client[database]
        docs = [_violation(1, "acme", "u-erased"), _violation(2, "acme", "u-erased"), _violation(3, "acme", "u-kept")]
        db[settings.violations_collection].insert_many(docs)
        store = Store(client, database, settings.violations_collection, settings.anomalies_collection)
        rob = Caller("rob", "reviewer", ("acme",))
        for doc, note in zip(docs, ["u-erased mailed his own address", "same user, again", "fine"], strict=True):
            store.review(rob, doc, "confirmed", note)
        store.log("rob", "sign-in", "rob", "password")
        logged = db[AUDIT_LOG].count_documents({})

    args = ["erase", "--user-id", "u-erased", "--reason", "ticket GDPR-7", "--requested-by", "dpo"]
    cli = CliRunner().invoke(app, args, env=job_env(settings))
    assert cli.exit_code == 0, cli.output

    with MongoClient(uri) as client:
        db = client[database]
        assert [r["violation_id"] for r in db[REVIEWS].find()] == [docs[2]["_id"]]
        # Append-only: nothing deleted, the erased user's entries rewritten, the others as they were.
        assert db[AUDIT_LOG].count_documents({}) == logged
        trail = list(db[AUDIT_LOG].find({"action": "review"}).sort("at", 1))
        assert [e["who"] for e in trail] == ["rob"] * 3
        for entry, doc in zip(trail[:2], docs[:2], strict=True):
            assert entry["target"] == erasure.pseudonym(doc["_id"]) and entry["why"].startswith("confirmed: erased:")
            assert entry["pseudonymised_at"] and entry["tenant"] == "acme"
        assert (trail[2]["target"], trail[2]["why"]) == (docs[2]["_id"], "confirmed: fine")
        assert "pseudonymised_at" not in trail[2]
        assert db[AUDIT_LOG].find_one({"action": "sign-in"})["why"] == "password"
        everything = json.dumps(list(db[AUDIT_LOG].find({}, {"_id": 0, "at": 0, "pseudonymised_at": 0})))
        assert "u-erased" not in everything and "mailed" not in everything and "evt-1" not in everything
        record = db[erasure.ERASURES].find_one({"user_id": "u-erased"})
    assert (record["reviews"], record["audit_log"]) == (2, 2)
    assert "2 reviews, 2 audit_log entries pseudonymised" in cli.output


def _archive_file(fs, path: str, rows: list[dict]) -> None:
    """A part file of the archive's schema (the partition columns are in the path)."""
    schema = pa.schema([f for f in ARCHIVE_SCHEMA if f.name in COLUMNS])
    pq.write_table(
        pa.Table.from_pylist([{**dict.fromkeys(COLUMNS), "schema_version": 2, **r} for r in rows], schema),
        path,
        filesystem=fs,
    )


def _row(event_id: str, user: str, at: datetime) -> dict:
    return {"event_id": event_id, "user_id": user, "timestamp_ms": int(at.timestamp() * 1000), "tenant_full": "acme"}


def test_a_part_file_committed_after_the_erasure_started_is_swept_once_the_erasure_settles(isolated_job):
    settings = isolated_job("erf")
    uri, database, archive = settings.mongo_uri.get_secret_value(), settings.mongo_database, settings.archive_dir
    fs, root = archive_fs(archive)
    partition = f"{root}/date={HOUR_AGO:%Y-%m-%d}/tenant=acme"
    fs.create_dir(partition)
    _archive_file(fs, f"{partition}/part-aaa-0-0", [_row("e1", "u-erased", HOUR_AGO), _row("e2", "u-kept", HOUR_AGO)])
    # What the job's file sink holds in progress while the erasure runs: committed at its next checkpoint.
    in_progress = f"{partition}/.part-bbb-0-1.inprogress.5f1c"
    _archive_file(fs, in_progress, [_row("e3", "u-erased", HOUR_AGO), _row("e4", "u-kept", HOUR_AGO)])

    record = erasure.erase_user(uri, database, archive, "u-erased", "ticket GDPR-8", "dpo")
    assert sorted(r["event_id"] for r in read_archive(archive).df().to_dict("records")) == ["e2"]
    assert record["status"] == "settling"  # not done: files in progress may still be committed

    fs.move(in_progress, f"{partition}/part-bbb-0-1")  # the checkpoint completes
    # The user's later event is new data, not what was erased.
    later = datetime.now(UTC) + timedelta(seconds=1)
    _archive_file(fs, f"{partition}/part-ccc-0-2", [_row("e5", "u-erased", later)])
    assert {"e3", "e5"} <= {r["event_id"] for r in read_archive(archive).df().to_dict("records")}

    early = CliRunner().invoke(app, ["erase", "--finish"], env=job_env(settings))
    assert early.exit_code == 0 and "0 erasures finished" in early.output, early.output
    with MongoClient(uri) as client:  # the settle time passes
        client[database][erasure.ERASURES].update_one({"_id": record["_id"]}, {"$set": {"settle_until": later}})
    time.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()))
    done = CliRunner().invoke(app, ["erase", "--finish"], env=job_env(settings))
    assert done.exit_code == 0 and "1 erasures finished" in done.output and "1 archive rows" in done.output, done.output

    assert sorted(r["event_id"] for r in read_archive(archive).df().to_dict("records")) == ["e2", "e4", "e5"]
    with MongoClient(uri) as client:
        record = client[database][erasure.ERASURES].find_one({"user_id": "u-erased"})
    assert record["status"] == "done" and [f["rows"] for f in record["late"]["archive_files"]] == [1]


def test_an_erasure_in_one_tenant_leaves_the_same_user_id_of_another_alone(isolated_job):
    settings = isolated_job("ert")
    uri, database, archive = settings.mongo_uri.get_secret_value(), settings.mongo_database, settings.archive_dir
    fs, root = archive_fs(archive)
    for tenant in ("acme", "globex"):
        fs.create_dir(f"{root}/date={HOUR_AGO:%Y-%m-%d}/tenant={tenant}")
        rows = [{**_row(f"{tenant}-1", "u-1", HOUR_AGO), "tenant_full": tenant}, _row(f"{tenant}-2", "u-2", HOUR_AGO)]
        _archive_file(fs, f"{root}/date={HOUR_AGO:%Y-%m-%d}/tenant={tenant}/part-{tenant}-0-0", rows)
    # A row of schema 1 (no tenant_full): its tenant is its directory's.
    old = f"{root}/date={HOUR_AGO:%Y-%m-%d}/tenant=acme/part-old-0-0"
    pq.write_table(pa.table({"event_id": ["acme-0"], "user_id": ["u-1"], "timestamp_ms": [0]}), old, filesystem=fs)
    with MongoClient(uri) as client:
        client[database][settings.violations_collection].insert_many(
            [_violation(1, "acme", "u-1"), _violation(2, "globex", "u-1")]
        )

    args = ["erase", "--user-id", "u-1", "--tenant", "acme", "--reason", "t", "--settle-s", "0"]
    cli = CliRunner().invoke(app, args, env=job_env(settings))
    assert cli.exit_code == 0 and "1 MongoDB documents" in cli.output and "2 archive rows in 2 files" in cli.output
    finish = CliRunner().invoke(app, ["erase", "--finish"], env=job_env(settings))
    assert finish.exit_code == 0 and "1 erasures finished" in finish.output, finish.output

    rows = read_archive(archive).df().to_dict("records")
    assert sorted(r["event_id"] for r in rows) == ["acme-2", "globex-1", "globex-2"]
    with MongoClient(uri) as client:
        left = [d["tenant"] for d in client[database][settings.violations_collection].find()]
    assert left == ["globex"]


def _event(event_id: str, user: str, tenant: str, at: datetime) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "timestamp": int(at.timestamp() * 1000),
            "tenant": tenant,
            "model": "m",
            "user_id": user,
            "prompt": f"mail {event_id}@example.com now",
            "response": "ok",
        }
    )


def test_a_replay_after_an_erasure_stores_none_of_the_erased_data_and_all_the_rest(
    isolated_job, unscored_rules, tmp_path
):
    from flink_jobs.offline.replay import replay_settings, run_replay

    settings = isolated_job("err", scorers=[], rules_path=unscored_rules)
    uri, database = settings.mongo_uri.get_secret_value(), settings.mongo_database
    began = int(time.time() * 1000)
    before = [
        _event(f"old-{i}", user, tenant, HOUR_AGO + timedelta(seconds=i))
        for i, (user, tenant) in enumerate([("u-erased", "acme"), ("u-erased", "globex"), ("u-kept", "acme")] * 3)
    ]
    produce(settings.kafka_bootstrap, settings.source_topic, [(None, None, e) for e in before])
    erasure.erase_user(uri, database, None, "u-erased", "ticket GDPR-9", "dpo")
    after = [_event(f"new-{i}", "u-erased", "acme", datetime.now(UTC) + timedelta(seconds=1)) for i in range(2)]
    produce(settings.kafka_bootstrap, settings.source_topic, [(None, None, e) for e in after])

    replay = replay_settings(settings, unscored_rules, "replayed", (tmp_path / "checkpoints").as_uri())
    assert run_replay(replay, began, int(time.time() * 1000) + 1, lambda done, total: None) == len(before + after)

    with MongoClient(uri) as client:
        stored = {(d["user_id"], d["event_id"]) for d in client[database]["replayed"].find()}
    expected = {("u-kept", f"old-{i}") for i in range(2, 9, 3)} | {("u-erased", f"new-{i}") for i in range(2)}
    assert stored == expected


def test_tombstones_cover_the_erased_users_events_up_to_the_erasure_and_refresh_on_time(isolated_job):
    from flink_jobs.offline.erasure import purge
    from flink_jobs.tombstones import Tombstones

    settings = isolated_job("erb")
    uri, database = settings.mongo_uri.get_secret_value(), settings.mongo_database
    erasure.erase_user(uri, database, None, "u-1", "t", tenant="acme")
    erasure.erase_user(uri, database, None, "u-2", "t")  # every tenant
    now = [0.0]
    pickle.dumps(Tombstones(uri, database))  # built at submission, opened on the worker
    tombstones = Tombstones(uri, database, refresh_s=30, clock=lambda: now[0])
    tombstones.open()
    try:
        later = datetime.now(UTC) + timedelta(seconds=5)

        def erased(tenant, user, at=HOUR_AGO) -> bool:
            return tombstones.erased({"tenant": tenant, "user_id": user, "event_time": at})

        assert erased("acme", "u-1") and not erased("globex", "u-1") and not erased("acme", "u-1", later)
        assert erased("acme", "u-2") and erased("globex", "u-2") and not erased("acme", "u-3")
        assert not tombstones.erased({"tenant": "acme", "user_id": None, "event_time": HOUR_AGO})
        assert tombstones.covers("acme", "u-1", int(HOUR_AGO.timestamp() * 1000))  # an archive row's time

        # An erasure recorded after open() is seen at the next refresh, not at every call.
        erasure.erase_user(uri, database, None, "u-3", "t")
        assert not erased("acme", "u-3")
        now[0] = 30.0
        assert erased("acme", "u-3")
    finally:
        tombstones.close()

    with MongoClient(uri) as client:
        client[database]["replayed"].insert_many(
            [_violation(1, "acme", "u-1"), _violation(2, "globex", "u-1"), _violation(3, "acme", "u-3")]
        )
    assert purge(uri, database, "replayed") == 2
    with MongoClient(uri) as client:
        assert [d["_id"] for d in client[database]["replayed"].find()] == [_violation(2, "globex", "u-1")["_id"]]
