"""The MongoDB writer against the local stack's real server (FerretDB): idempotent, whatever the input repeats."""

from pymongo import MongoClient

from flink_jobs.sinks import VIOLATION_INDEXES, MongoWriter


def test_prepare_creates_the_indexes_and_repeated_ids_store_one_document_each(stack_settings, run_id):
    database = f"llm_audit_sinks_{run_id}"
    writer = MongoWriter(stack_settings.mongo_uri, database, "violations", VIOLATION_INDEXES).prepare()
    with MongoClient(stack_settings.mongo_uri) as client:
        try:
            indexes = {tuple(index["key"]) for index in client[database]["violations"].list_indexes()}
            assert set(VIOLATION_INDEXES) <= indexes

            writer.open()  # as a subtask would, after prepare(): finds the indexes, creates none
            # A source that delivered an event twice repeats its violations within a batch, and a
            # replay after a restore repeats a whole batch: one document per _id, the last one.
            docs = [{"_id": f"v{i}", "rule_id": "pii.email", "n": i} for i in range(40)]
            writer.write(docs + [{**d, "n": -1} for d in docs[:25]])
            writer.write(docs[10:])
            writer.close()
            stored = {d["_id"]: d["n"] for d in client[database]["violations"].find()}
            assert stored == {d["_id"]: -1 if d["n"] < 10 else d["n"] for d in docs}
        finally:
            client.drop_database(database)
