"""The provisioned Grafana files: what Grafana would reject or an on-call engineer would miss."""

import json
import re

import pytest
import yaml

from tests.support import grafana

DATASOURCE_UID = "llm-audit-influxdb"
SEVERITIES = {"critical", "warning"}
BOARDS = grafana.dashboards()
RULES = grafana.alert_rules({})


def test_the_datasource_is_influxdb_flux_configured_from_env_variables_only():
    (raw,) = yaml.safe_load((grafana.GRAFANA_DIR / "provisioning/datasources/llm-audit-influxdb.yaml").read_text())["datasources"]
    assert raw["uid"] == DATASOURCE_UID and raw["type"] == "influxdb" and raw["jsonData"]["version"] == "Flux"
    assert raw["url"] == "${LLM_AUDIT_INFLUX_URL}"
    assert raw["jsonData"]["organization"] == "${LLM_AUDIT_INFLUX_ORG}"
    assert raw["jsonData"]["defaultBucket"] == "${LLM_AUDIT_INFLUX_BUCKET}"
    assert raw["secureJsonData"] == {"token": "${LLM_AUDIT_INFLUX_TOKEN}"}  # no secret in the file
    env = {"LLM_AUDIT_INFLUX_URL": "https://influx:8086", "LLM_AUDIT_INFLUX_ORG": "audit",
           "LLM_AUDIT_INFLUX_BUCKET": "llm_audit", "LLM_AUDIT_INFLUX_TOKEN": "t0k$n"}
    (expanded,) = grafana.datasources(env)
    assert expanded["url"] == "https://influx:8086" and expanded["jsonData"]["defaultBucket"] == "llm_audit"
    assert expanded["secureJsonData"]["token"] == "t0k$n"
    assert grafana.datasource_min_interval(expanded) == 10  # the job's default metrics window


def test_the_dashboard_provider_loads_the_dashboards_folder_from_a_grafana_path():
    (provider,) = grafana.dashboard_providers({})
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert provider["options"]["path"].startswith(("/var/lib/grafana/dashboards", "/etc/grafana/dashboards"))
    assert provider["folder"] == {r.folder for r in RULES}.pop()  # alerts and dashboards side by side


def test_every_dashboard_is_valid_json_with_unique_uids_titles_and_panel_ids():
    files = sorted((grafana.GRAFANA_DIR / "dashboards").glob("*.json"))
    assert len(files) == len(BOARDS) == 5
    for path in files:
        board = json.loads(path.read_text())
        assert path.stem == board["uid"] and board["title"].startswith("LLM audit: ")
        ids = [p["id"] for p in board["panels"]] + [p["id"] for r in board["panels"] for p in r.get("panels", [])]
        assert len(ids) == len(set(ids)), path
        assert "llm-audit" in board["tags"] and board["editable"] is False
    assert len({b["title"] for b in BOARDS.values()}) == len(BOARDS)


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_every_panel_has_the_datasource_and_flux_targets_on_the_default_bucket(uid):
    board = BOARDS[uid]
    variables = {v["name"] for v in grafana.template_variables(board)}
    for panel in grafana.iter_panels(board):
        where = f"{uid} panel {panel['id']} {panel['title']!r}"
        assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, where
        assert panel["targets"] and panel["title"] and panel["type"] in (
            "stat", "timeseries", "table", "bargauge"), where
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), where
        for target in panel["targets"]:
            query = target["query"]
            assert target["datasource"]["uid"] == DATASOURCE_UID, where
            assert query.startswith("from(bucket: v.defaultBucket)\n  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)"), where
            used = set(re.findall(r"\$\{(\w+)", query)) | set(re.findall(r"\$(\w+)", query))
            assert used <= variables, f"{where}: undefined variables {used - variables}"
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert 0 <= x and x + w <= 24, where


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_panels_do_not_overlap(uid):
    cells = {}
    for panel in BOARDS[uid]["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{uid}: {panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_template_variables_are_multi_value_queries_with_an_all_that_matches_everything(uid):
    for var in grafana.template_variables(BOARDS[uid]):
        assert var["type"] == "query" and var["datasource"]["uid"] == DATASOURCE_UID
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".*"
        assert "v.defaultBucket" in var["query"] and "distinct(" in var["query"]


def test_severity_series_are_named_by_severity_and_coloured_by_it():
    panel = next(p for p in grafana.iter_panels(BOARDS["llm-audit-violations"]) if p["title"] == "Violations by severity")
    assert 'rename(columns: {severity: "_field"})' in panel["targets"][0]["query"]
    colours = {o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"] for o in panel["fieldConfig"]["overrides"]}
    assert colours["critical"] == "red" and set(colours) == {"critical", "high", "medium", "low", "info"}


def test_the_brief_s_views_are_all_there():
    titles = {uid: {p["title"] for p in grafana.iter_panels(b)} for uid, b in BOARDS.items()}
    assert {"Violations by severity", "Violations by category", "Top rules", "Violations by tenant and model"} \
        <= titles["llm-audit-violations"]
    assert {"Toxicity: mean score", "Bias: mean score"} <= titles["llm-audit-scores"]
    assert "Anomaly timeline" in titles["llm-audit-anomalies"]
    assert {"Tokens by tenant", "Cost by tenant"} <= titles["llm-audit-usage"]
    assert {"Events audited per second", "Kafka consumer lag", "Dead letters by reason", "Checkpoint duration",
            "Checkpoints completed and failed"} <= titles["llm-audit-pipeline"]


# --- alert rules ---------------------------------------------------------------------------------

def test_the_seven_alerts_exist_with_unique_uids():
    assert {r.uid for r in RULES} == {
        "llm-audit-critical-violation", "llm-audit-not-fully-audited", "llm-audit-violation-rate-anomaly",
        "llm-audit-dlq-spike", "llm-audit-job-stalled", "llm-audit-checkpoint-failures", "llm-audit-rules-unsigned"}
    assert len({r.uid for r in RULES}) == len(RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.uid)
def test_every_alert_has_severity_summary_and_an_existing_runbook(rule):
    assert rule.labels["severity"] in SEVERITIES
    assert len(rule.annotations["summary"]) > 30 and rule.annotations["description"]
    runbook = rule.annotations["runbook_url"]
    name = rule.uid.removeprefix("llm-audit-")
    assert runbook == f"docs/runbooks/{name}.md"
    text = (grafana.ROOT / runbook).read_text()
    for heading in ("## What it means", "## First checks", "## Mitigation"):
        assert heading in text, f"{runbook}: missing {heading!r}"
    assert rule.title in text.splitlines()[0]
    # Templates may only use the rule's own results.
    for ref in re.findall(r"\$values\.(\w+)", rule.annotations["summary"] + rule.annotations["description"]):
        assert ref in {q.ref_id for q in rule.data}, f"{rule.uid}: summary uses unknown ${ref}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.uid)
def test_every_alert_is_a_well_formed_grafana_rule(rule):
    refs = {q.ref_id for q in rule.data}
    assert rule.condition in refs and rule.interval_s == 60 and not rule.is_paused
    assert rule.exec_err_state == "Error"  # an unreadable InfluxDB is an alert of its own, not silence
    for query in rule.data:
        assert query.model["refId"] == query.ref_id
        if query.is_expression:
            assert set(grafana.expression_inputs(query.model)) <= refs
            if query.model["type"] == "math":
                grafana.math_command(query.model["expression"], {r: [] for r in refs})  # parses
            continue
        assert query.datasource_uid == DATASOURCE_UID and query.relative_from_s >= 300 and query.relative_to_s == 0
        assert "from(bucket: v.defaultBucket)" in query.model["query"]
        assert "range(start: v.timeRangeStart, stop: v.timeRangeStop)" in query.model["query"]
    assert rule.dashboard_panel() in {(uid, p["id"]) for uid, b in BOARDS.items() for p in grafana.iter_panels(b)}


def test_no_data_is_an_incident_only_for_the_stalled_job_rule():
    states = {r.uid: (r.no_data_state, r.for_s) for r in RULES}
    assert states == {
        "llm-audit-critical-violation": ("OK", 0),  # no critical finding is the normal state
        "llm-audit-not-fully-audited": ("OK", 0),  # no audit_error finding likewise
        "llm-audit-violation-rate-anomaly": ("OK", 0),  # no anomaly likewise
        "llm-audit-dlq-spike": ("OK", 120),  # nothing dead-lettered likewise
        "llm-audit-job-stalled": ("Alerting", 300),  # no audited events: the incident itself
        "llm-audit-checkpoint-failures": ("OK", 300),  # no Flink metrics: left to the stalled rule
        "llm-audit-rules-unsigned": ("OK", 0),  # no push seen: the job runs its own rules file
    }


def test_labels_hold_no_dollar_that_provisioning_would_expand():
    raw = yaml.safe_load((grafana.GRAFANA_DIR / "provisioning/alerting/llm-audit-rules.yaml").read_text())
    for group in raw["groups"]:
        for rule in group["rules"]:
            for key in ("uid", "title", "condition", "noDataState", "execErrState", "for"):
                assert "$" not in str(rule[key]), (rule["uid"], key)
            assert not any("$" in v for v in rule["labels"].values()), rule["uid"]
