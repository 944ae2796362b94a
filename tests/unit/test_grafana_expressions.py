"""tests/support/grafana.py reproduces Grafana: its macros, variable formats, expressions and alert states.

Each expectation is Grafana's documented or coded behaviour (pkg/expr, pkg/tsdb/influxdb/flux,
pkg/services/ngalert/eval), so the integration tests judge the provisioned rules as Grafana would.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from flink_jobs.reporter import flink_influx_reporter_config
from tests.support import grafana as g

T = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


def series(values, **labels):
    return g.Series(g.label_set(labels), tuple((T + timedelta(minutes=i), v) for i, v in enumerate(values)))


def number(value, **labels):
    return g.Number(g.label_set(labels), value)


def values(results):
    return [r.value for r in results]


# --- provisioning and query rendering ------------------------------------------------------------

def test_env_expansion_follows_grafana_provisioning():
    env = {"URL": "http://influx:8086", "TOKEN": "s3cret"}
    assert g.expand_env("${URL}/x $TOKEN $$literal $__env{URL} ${MISSING}|", env) == "http://influx:8086/x s3cret $literal http://influx:8086 |"


def test_alert_rule_models_and_annotations_are_not_expanded(tmp_path, monkeypatch):
    rules = tmp_path / "provisioning" / "alerting"
    rules.mkdir(parents=True)
    (rules / "r.yaml").write_text("""
apiVersion: 1
groups:
  - {orgId: 1, name: g, folder: $FOLDER, interval: 1m, rules: [
      {uid: u, title: $TITLE, condition: B, for: 2m, labels: {team: $TEAM},
       annotations: {summary: "{{ $values.B.Value }} $TEAM"},
       data: [{refId: A, datasourceUid: ds, relativeTimeRange: {from: 600, to: 0},
               model: {query: "from(bucket: v.defaultBucket) $TEAM"}},
              {refId: B, datasourceUid: __expr__, model: {type: math, expression: "$A > 0"}}]}]}
""")
    monkeypatch.setattr(g, "GRAFANA_DIR", tmp_path)
    (rule,) = g.alert_rules({"FOLDER": "F", "TITLE": "T", "TEAM": "sre"})
    assert (rule.folder, rule.title, rule.labels, rule.for_s, rule.interval_s) == ("F", "T", {"team": "sre"}, 120, 60)
    assert rule.annotations["summary"] == "{{ $values.B.Value }} $TEAM"
    assert rule.query("A").model["query"].endswith("$TEAM") and rule.query("B").model["expression"] == "$A > 0"
    assert rule.query("A").relative_from_s == 600 and rule.no_data_state == "NoData" and rule.exec_err_state == "Error"


BOARD = {"templating": {"list": [
    {"name": "tenant", "includeAll": True, "allValue": ".*", "multi": True},
    {"name": "model", "includeAll": True, "multi": True, "options": [{"value": "$__all"}, {"value": "a.b"}, {"value": "c"}]},
    {"name": "one", "includeAll": False, "current": {"value": "x/y"}},
]}}


@pytest.mark.parametrize("text, selected, expected", [
    ("/^${tenant:regex}$/", {}, "/^.*$/"),  # All with a custom all value: not formatted
    ("/^${tenant:regex}$/", {"tenant": ["acme"]}, "/^acme$/"),
    ("/^${tenant:regex}$/", {"tenant": ["llama-3.1", "a/b"]}, r"/^(llama\-3\.1|a\/b)$/"),
    ("${model:regex}", {}, r"(a\.b|c)"),  # All without one: every option
    ("${tenant:json} ${tenant:pipe} $tenant", {"tenant": ["a", "b"]}, '["a", "b"] a|b {a,b}'),
    ("[[one]] ${one}", {}, "x/y x/y"),
    ("$__interval ${unknown} $other", {}, "$__interval ${unknown} $other"),
])
def test_dashboard_variables_are_formatted_as_grafana_formats_them(text, selected, expected):
    assert g.interpolate_variables(text, BOARD, selected) == expected


@pytest.mark.parametrize("seconds, text", [(0.5, "500ms"), (10, "10s"), (60, "1m0s"), (90, "1m30s"), (3600, "1h0m0s"),
                                           (5400.5, "1h30m0.5s")])
def test_window_period_is_a_go_duration(seconds, text):
    assert g.go_duration(seconds) == text


def test_flux_macros_are_replaced_as_the_backend_does():
    flux = ('from(bucket: v.defaultBucket) |> range(start: v.timeRangeStart, stop: v.timeRangeStop) '
            '|> aggregateWindow(every: v.windowPeriod, fn: sum) |> set(key: "org", value: v.organization) '
            '|> map(fn: (r) => ({r with _value: r._value * $__interval_ms, i: "$__interval"}))')
    out = g.interpolate_flux(flux, start=T, stop=T + timedelta(hours=1, microseconds=500), interval_s=30,
                             bucket="llm_audit/autogen", organization="audit")
    assert out == ('from(bucket: "llm_audit/autogen") |> range(start: 2026-12-01T10:00:00Z, stop: 2026-12-01T11:00:00.0005Z) '
                   '|> aggregateWindow(every: 30s, fn: sum) |> set(key: "org", value: "audit") '
                   '|> map(fn: (r) => ({r with _value: r._value * 30000, i: "30s"}))')


def test_panel_interval_is_range_over_points_rounded_and_at_least_the_min_interval():
    assert g.grafana_interval(T, T + timedelta(hours=6), 1000) == 20  # 21.6 s -> 20 s
    assert g.grafana_interval(T, T + timedelta(minutes=10), 1000) == 0.5
    assert g.grafana_interval(T, T + timedelta(minutes=10), 1000, min_interval_s=10) == 10
    assert g.grafana_interval(T, T + timedelta(days=7), 1000) == 600


# --- Flux tables as frames -----------------------------------------------------------------------

@dataclass
class Col:
    label: str
    data_type: str


@dataclass
class Rec:
    values: dict


@dataclass
class Table:
    columns: list
    records: list


def test_a_table_with_value_and_time_is_a_series_labelled_by_its_string_columns():
    cols = [Col("result", "string"), Col("table", "long"), Col("_start", "dateTime:RFC3339"), Col("_time", "dateTime:RFC3339"),
            Col("_value", "long"), Col("_measurement", "string"), Col("tenant", "string"), Col("n", "long")]
    rows = [Rec({"result": "_result", "table": 0, "_start": T, "_time": T + timedelta(seconds=s), "_value": s,
                 "_measurement": "m", "tenant": "acme", "n": 1}) for s in (10, 20)]
    (frame,) = g.flux_frames([Table(cols, rows)])
    assert frame.is_time_series and frame.name == "m" and frame.labels == {"tenant": "acme"} and frame.values == [10, 20]
    # sum() keeps _start: still a (one-point) series, on _start
    cols = [Col("_start", "dateTime:RFC3339"), Col("_stop", "dateTime:RFC3339"), Col("_value", "double")]
    (frame,) = g.flux_frames([Table(cols, [Rec({"_start": T, "_stop": T, "_value": 1.5})])])
    assert frame.times == [T] and g.frames_to_values([frame]) == [g.Series((), ((T, 1.5),))]


def test_a_table_without_time_is_a_table_frame_and_numbers_with_string_labels():
    cols = [Col("rule_id", "string"), Col("_value", "long")]
    frames = g.flux_frames([Table(cols, [Rec({"rule_id": "a", "_value": 3}), Rec({"rule_id": "b", "_value": 0})]),
                            Table(cols, [])])
    assert len(frames) == 1 and not frames[0].is_time_series and frames[0].columns == {"rule_id": ["a", "b"], "_value": [3, 0]}
    assert g.frames_to_values(frames) == [number(3.0, rule_id="a"), number(0.0, rule_id="b")]
    assert g.frames_to_values([]) == [g.NO_DATA]


# --- expressions ---------------------------------------------------------------------------------

def test_reduce_strict_mode_propagates_nan_and_null_and_empty_series_are_nan_except_sum_and_count():
    assert values(g.reduce_command([series([1, 2, 3])], "sum")) == [6]
    assert values(g.reduce_command([series([1, 2, 3])], "mean")) == [2]
    assert values(g.reduce_command([series([1, 5, 3])], "last")) == [3]
    assert math.isnan(g.reduce_command([series([1, None, 3])], "sum")[0].value)
    assert math.isnan(g.reduce_command([series([1, math.nan])], "max")[0].value)
    assert g.reduce_command([series([1, None])], "last")[0].value is None  # last takes the value as is
    assert values(g.reduce_command([series([])], "sum")) == [0] and values(g.reduce_command([series([])], "count")) == [0]
    assert all(math.isnan(g.reduce_command([series([])], r)[0].value) for r in ("mean", "min", "max", "last"))


def test_reduce_drop_and_replace_non_numbers():
    assert values(g.reduce_command([series([1, None, math.nan, math.inf, 3])], "sum", "dropNN")) == [4]
    assert values(g.reduce_command([series([])], "mean", "dropNN")) == [None]  # NaN out -> null -> NoData
    assert values(g.reduce_command([series([1, None])], "sum", "replaceNN", 10)) == [11]
    assert values(g.reduce_command([series([])], "max", "replaceNN", -1)) == [-1]
    assert g.reduce_command([number(None)], "sum", "dropNN") == []  # a number: mapped, dropped when null
    assert g.reduce_command([g.NO_DATA], "sum") == [g.NO_DATA]


@pytest.mark.parametrize("kind, params, inputs, expected", [
    ("gt", [0], [1, 0, -1, None], [1, 0, 0, None]),
    ("lt", [1], [0, 1, 2], [1, 0, 0]),
    ("gte", [2], [2, 1], [1, 0]),
    ("within_range", [0, 10], [0, 5, 10], [0, 1, 0]),
    ("outside_range_included", [0, 10], [0, 5, 10], [1, 0, 1]),
    ("gt", [0], [math.nan], [0]),  # NaN compares false
    ("ne", [0], [math.nan], [1]),
])
def test_threshold(kind, params, inputs, expected):
    assert values(g.threshold_command([number(v) for v in inputs], kind, params)) == expected


def test_math_operators_precedence_and_nan_rules():
    def m(expr, **vs):
        return values(g.math_command(expr, {k: [number(v)] for k, v in vs.items()}))
    assert m("$A / $B > 0.05 && $A >= 20", A=30, B=300) == [1]
    assert m("($A / $B > 0.05) && ($A >= 20)", A=10, B=100) == [0]
    assert m("$C >= 3 && $C > $D || $G >= 2", C=1, D=5, G=2) == [1]
    assert m("1 + 2 * 3 ** 2 - -1") == [20] and m("!$A", A=0) == [1] and m("abs($A)", A=-2) == [2]
    assert math.isnan(m("$A + 1", A=math.nan)[0])
    assert m("$A && $B", A=0, B=math.nan) == [0] and m("$A || $B", A=1, B=math.nan) == [1]  # short circuit first
    assert m("$A / $B", A=1, B=0) == [math.inf] and math.isnan(m("$A / $B", A=0, B=0)[0])
    assert m("$A > 0", A=None) == [None]
    assert m("${A} * 2", A=2) == [4]


def test_math_unions_values_by_labels():
    a = [number(30, reason="x"), number(2, reason="y")]
    total = [number(100)]
    assert sorted(values(g.math_command("$A / $B", {"A": a, "B": total}))) == [0.02, 0.3]  # no labels: each
    c = [number(1, job="j1"), number(5, job="j2")]
    d = [number(2, job="j1"), number(1, job="j2"), number(9, job="j3")]
    out = {dict(n.labels)["job"]: n.value for n in g.math_command("$C > $D", {"C": c, "D": d})}
    assert out == {"j1": 0, "j2": 1}  # j3 has no partner: dropped
    sub = g.math_command("$A + $B", {"A": [number(1, job="j1", host="h")], "B": [number(2, job="j1")]})
    assert [(dict(n.labels), n.value) for n in sub] == [({"job": "j1", "host": "h"}, 3)]  # subset labels match
    assert g.math_command("$A > 0", {"A": [g.NO_DATA]}) == [g.NO_DATA]


def test_math_on_a_series_maps_each_point():
    out = g.math_command("$A * 2", {"A": [series([1, None, 3], k="v")]})
    assert [p[1] for p in out[0].points] == [2, None, 6] and dict(out[0].labels) == {"k": "v"}


# --- evaluation and states -----------------------------------------------------------------------

def rule(*, condition="C", for_s=0, no_data="OK", exec_err="Error", threshold=("gt", [0])):
    data = (
        g.AlertQuery("A", "ds", 300, 0, {"refId": "A", "query": "q"}),
        g.AlertQuery("B", g.EXPRESSION_UID, 0, 0, {"type": "reduce", "expression": "A", "reducer": "sum"}),
        g.AlertQuery("C", g.EXPRESSION_UID, 0, 0, {"type": "threshold", "expression": "B",
                                                   "conditions": [{"evaluator": {"type": threshold[0], "params": threshold[1]}}]}),
    )
    return g.AlertRule("r", "R", "grp", "F", 60, condition, data, no_data, exec_err, for_s, {"severity": "warning"}, {})


def frames(*vals_by_labels):
    return lambda q, flux: [g.Frame("m", dict(labels), [T] * len(vs), list(vs)) for labels, vs in vals_by_labels]


def test_evaluation_states_per_instance():
    run = frames(({"t": "a"}, [1, 2]), ({"t": "b"}, [0]))
    ev = g.evaluate(rule(), T, run, "b")
    assert {dict(i.labels)["t"]: (i.state, i.value) for i in ev.instances} == {"a": (g.ALERTING, 1), "b": (g.NORMAL, 0)}
    assert ev.values["B"][0].value == 3


def test_a_query_without_data_makes_the_whole_rule_no_data():
    ev = g.evaluate(rule(), T, lambda q, flux: [], "b")
    assert [(dict(i.labels), i.state) for i in ev.instances] == [({"datasource_uid": "ds", "ref_id": "A"}, g.NODATA)]


def test_nan_is_alerting_null_is_no_data_and_a_series_condition_is_an_error():
    nan_rule = rule(condition="B")
    assert g.evaluate(nan_rule, T, frames(({}, [math.nan])), "b").instances[0].state == g.ALERTING
    null = g.AlertRule(**{**vars(rule()), "data": rule().data[:1] + (
        g.AlertQuery("B", g.EXPRESSION_UID, 0, 0, {"type": "reduce", "expression": "A", "reducer": "mean",
                                                   "settings": {"mode": "dropNN"}}),), "condition": "B"})
    assert g.evaluate(null, T, frames(({}, [None])), "b").instances[0].state == g.NODATA
    series_rule = g.AlertRule(**{**vars(rule()), "condition": "A"})
    assert g.evaluate(series_rule, T, frames(({}, [1])), "b").instances[0].state == g.ERROR


def test_a_failing_query_is_an_error_result():
    def boom(q, flux):
        raise ConnectionError("influx down")
    ev = g.evaluate(rule(), T, boom, "b")
    assert ev.instances[0].state == g.ERROR and "influx down" in ev.instances[0].error


def evaluation(at, *instances):
    return g.Evaluation(at, tuple(instances), {})


def inst(state, **labels):
    return g.Instance(g.label_set(labels), state)


def test_for_is_a_pending_period_and_recovery_is_immediate():
    tracker = g.AlertStateTracker(rule(for_s=120))
    states = [tracker.observe(evaluation(T + timedelta(minutes=i), inst(s)))[()]
              for i, s in enumerate([g.ALERTING, g.ALERTING, g.ALERTING, g.NORMAL, g.ALERTING])]
    assert states == [g.PENDING, g.PENDING, g.ALERTING, g.NORMAL, g.PENDING]


def test_no_data_and_error_follow_the_rule_s_choice():
    alerting = g.AlertStateTracker(rule(no_data="Alerting", for_s=60))
    assert [alerting.observe(evaluation(T + timedelta(minutes=i), inst(g.NODATA)))[()] for i in range(2)] == [g.PENDING, g.ALERTING]
    ok = g.AlertStateTracker(rule(no_data="OK"))
    assert ok.observe(evaluation(T, inst(g.NODATA)))[()] == g.NORMAL
    keep = g.AlertStateTracker(rule(no_data="KeepLast"))
    keep.observe(evaluation(T, inst(g.ALERTING)))
    assert keep.observe(evaluation(T + timedelta(minutes=1), inst(g.NODATA)))[()] == g.ALERTING
    err = g.AlertStateTracker(rule(exec_err="Error"))
    assert err.observe(evaluation(T, inst(g.ERROR)))[()] == g.ERROR


def test_an_instance_missing_from_two_evaluations_is_resolved():
    tracker = g.AlertStateTracker(rule())
    tracker.observe(evaluation(T, inst(g.ALERTING, t="a")))
    tracker.observe(evaluation(T + timedelta(minutes=1), inst(g.NORMAL)))
    assert tracker.firing == [{"t": "a"}]
    tracker.observe(evaluation(T + timedelta(minutes=2), inst(g.NORMAL)))
    assert tracker.firing == []


def test_simulate_evaluates_every_interval_up_to_the_end():
    seen = []

    def run(q, flux):
        seen.append(flux)
        return [g.Frame("m", {}, [T], [1])]
    tracker, evaluations = g.simulate(rule(for_s=120), T, run, "b")
    assert len(evaluations) == 5 and evaluations[-1].at == T and tracker.firing == [{}]


# --- Flink's InfluxDB reporter -------------------------------------------------------------------

def test_reporter_config_for_influxdb_with_the_metrics_the_dashboards_read():
    config = flink_influx_reporter_config("https://influx.example:8443", "llm_audit", interval_s=30,
                                            retention_policy="autogen", password="token")
    prefix = "metrics.reporter.influxdb."
    assert config[prefix + "factory.class"] == "org.apache.flink.metrics.influxdb.InfluxdbReporterFactory"
    assert (config[prefix + "scheme"], config[prefix + "host"], config[prefix + "port"]) == ("https", "influx.example", "8443")
    assert config[prefix + "db"] == "llm_audit" and config[prefix + "interval"] == "30 s"
    assert config[prefix + "username"] and config[prefix + "password"] == "token"
    assert not any(k.endswith(("connectTimeout", "writeTimeout")) for k in config)  # crash the 2.3.0 reporter
    assert "jobmanager.job:*Checkpoint*" in config[prefix + "filter.includes"]
    assert flink_influx_reporter_config("http://127.0.0.1", "db")[prefix + "port"] == "8086"
