"""What MongoDB refuses of a document, told from errors of the client (flink_jobs/streaming/sinks/mongo.py),
without services."""

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import BulkWriteError, OperationFailure, WriteError

from flink_jobs.streaming.sinks.mongo import mongo_refused


def bulk_error(*codes, write_concern=False):
    details = {"writeErrors": [{"index": i, "code": c, "errmsg": "x"} for i, c in enumerate(codes)]}
    details["writeConcernErrors"] = (
        [{"code": 64, "errmsg": "waiting for replication timed out"}] if write_concern else []
    )
    return BulkWriteError(details)


@pytest.mark.parametrize(
    "exc, refused",
    [
        (OperationFailure("invalid key", code=2), True),
        (WriteError("document too large", code=10334), True),
        (bulk_error(2, 11000), True),
        (InvalidDocument("Key names must not contain the NULL byte"), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (OperationFailure("Authentication failed.", code=18), False),
        (OperationFailure("not authorized on llm_audit", code=13), False),
        (OperationFailure("Invalid namespace", code=73), False),
        (bulk_error(13), False),
        (bulk_error(2, write_concern=True), False),
        (TypeError("a bug"), False),
    ],
)
def test_mongo_refusals_of_a_document_are_told_from_errors_of_the_client(exc, refused):
    assert mongo_refused(exc) is refused
