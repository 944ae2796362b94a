"""The console's InfluxDB point: a rule's verdict totals per tenant after each review, for Grafana."""

from __future__ import annotations

import logging
import time

from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from udfs.metrics import review_point

log = logging.getLogger("llm_audit.console")


class ReviewMetrics:
    def __init__(self, url: str, token: str, org: str, bucket: str):
        self._url, self._token, self._org, self._bucket = url, token, org, bucket

    def write(self, tenant: str, rule_id: str, verdicts: dict[str, int]) -> None:
        """Writes the point; a failure is logged, not raised: the review is stored in MongoDB already, and
        the next review of the rule writes its totals again."""
        p = review_point(tenant, rule_id, verdicts, int(time.time() * 1000))
        try:
            with InfluxDBClient(url=self._url, token=self._token, org=self._org, timeout=5_000) as client:
                client.write_api(write_options=SYNCHRONOUS).write(
                    self._bucket,
                    record={"measurement": p["measurement"], "tags": p["tags"], "fields": p["fields"],
                            "time": p["time_ms"]},
                    write_precision="ms",
                )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any client or server failure: logged with what was lost
            log.warning(
                "rule_reviews point not written",
                extra={"influx_url": self._url, "tenant": tenant, "rule_id": rule_id, "error": str(exc)},
            )
