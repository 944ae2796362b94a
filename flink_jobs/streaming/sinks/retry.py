"""How the batch writers to MongoDB (sinks.mongo) and InfluxDB (sinks.influx) retry and isolate failures
(plain Python; sinks.buffered runs them).

A batch is written synchronously while Flink processes the element or timer that completes it,
and the elements of a batch not yet written live in checkpointed keyed state (BufferedWrite), so
nothing acknowledged by a checkpoint can be lost. Writes are idempotent: documents are inserted
if absent by their deterministic _id (never changed once stored), points overwrite their series +
timestamp, so the replay that follows a restart from a checkpoint never duplicates.

`write(batch)` returns the elements the store refused for good, each with its error (`[]` when all
were stored): the caller decides what becomes of them. Three kinds of failure, told apart by error
type and code, never by how many elements fail:

- An outage of MongoDB or InfluxDB (no connection, timeouts, 429, 5xx, a retryable write error)
  makes a write retry with capped exponential backoff, forever: the operator blocks, Flink
  backpressures up to the Kafka source, and nothing is dropped nor does the job fail. Each failed
  attempt is logged as one structured warning.
- A store's refusal of what it was sent (MongoDB: a failed command or a per-document write error,
  a document BSON cannot encode, a NaN, which FerretDB answers by dropping the connection; InfluxDB:
  400, 413, 422, a point with no finite field) is the fault of an element, not of the job: the batch
  is written again by halves until only the elements that fail on their own are left, and those are
  returned. MongoDB names its bad documents itself (an unordered insert stores the others), so there
  it mostly takes one round trip.
- Anything else fails the job loudly, which then restarts from its checkpoint: a configuration
  error that would fail every write (MongoDB: authentication or authorisation failed, an invalid
  namespace, a write concern it cannot meet; InfluxDB: 401, 403, 404 for a database or bucket that
  does not exist, the 500 of InfluxDB 1.8 for a retention policy that does not) and any error that
  is not the store's answer (a bug). Counting instead ("every element failed alike") would let one
  event whose violations fill a batch stop the job.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("llm_audit.sinks")
T = TypeVar("T")


def retrying(
    what: str,
    attempt: Callable[[], T],
    transient: Callable[[Exception], bool],
    first_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """attempt() until it succeeds; between transient failures wait first_delay_s, doubling up to
    max_delay_s. Any other failure (a rejected write, bad credentials) is raised: it fails the job
    loudly rather than hiding a configuration error behind endless retries."""
    delay, failures = first_delay_s, 0
    while True:
        try:
            result = attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            failures += 1
            log.warning(
                json.dumps(
                    {
                        "event": "sink_retry",
                        "sink": what,
                        "failures": failures,
                        "retry_in_s": delay,
                        "error": _describe(exc),
                    }
                )
            )
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
            continue
        if failures:
            log.warning(json.dumps({"event": "sink_recovered", "sink": what, "failures": failures}))
        return result


Rejected = list[tuple[T, Exception]]  # the elements a store refused, each with its error


def isolating(
    what: str,
    write: Callable[[list[T]], Rejected[T]],
    items: list[T],
    transient: Callable[[Exception], bool],
    refused: Callable[[Exception], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> Rejected[T]:
    """write(items) -> the items it refused, retried through outages (transient errors). An error
    the store raises for the whole batch that refused() names its answer to an element is narrowed
    down by halves: the good elements are written, and each element that fails alone is returned
    with its error. Any other error is raised."""
    try:
        return retrying(what, lambda: write(items), transient, sleep=sleep)
    except Exception as exc:
        if not refused(exc):
            raise
        if len(items) == 1:
            return [(items[0], exc)]
        half = len(items) // 2
        return isolating(what, write, items[:half], transient, refused, sleep) + isolating(
            what, write, items[half:], transient, refused, sleep
        )


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def logged(what: str, rejected: Rejected[T]) -> Rejected[T]:
    for _, exc in rejected:
        log.warning(json.dumps({"event": "sink_refused", "sink": what, "error": _describe(exc)}))
    return rejected
