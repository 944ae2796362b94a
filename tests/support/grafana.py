"""Grafana as code, checked without Grafana: load what `grafana/` provisions, render its queries
the way Grafana does, run them against InfluxDB, and evaluate alert rules the way Grafana's
server-side expressions and alert evaluator do.

Grafana cannot run on this machine, so the parts of it that decide what a panel shows and whether
an alert fires are reproduced here, each after the Grafana code it mirrors:

- provisioning env expansion (`$VAR`, `${VAR}`, `$__env{VAR}`, `$$` for a literal `$`), applied to
  datasource and dashboard-provider files, and to alert rules except their query models and
  annotations (pkg/services/provisioning/alerting/rules_types.go);
- dashboard variables (`$var`, `${var}`, `${var:regex}` ...; "All" as the variable's allValue) and
  the Flux macros `v.timeRangeStart`, `v.timeRangeStop`, `v.windowPeriod`, `v.defaultBucket`,
  `v.organization`, `$__interval` (pkg/tsdb/influxdb/flux/macros.go);
- Flux tables to data frames: one frame per table, `_value` plus a time column is a time series
  labelled by the table's string columns that do not start with `_` (flux/builder.go);
- the expressions reduce (last, sum, mean, min, max, count; strict, dropNN, replaceNN), threshold
  and math (Grafana's operators, NaN and null rules and label unions; pkg/expr);
- the evaluator's states (pkg/services/ngalert/eval/eval.go): any datasource query without data
  makes the whole rule NoData; a condition value of 0 is Normal, any other value (NaN included)
  Alerting, null NoData; then noDataState / execErrState, and `for:` as a pending period.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "grafana"
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"
EXPRESSION_UID = "__expr__"
ALL = object()  # a dashboard variable set to "All"


class GrafanaError(ValueError):
    """A provisioned file Grafana would reject, or a query/expression that cannot be evaluated."""


# --- provisioning files ------------------------------------------------------------------------

_ENV_FUNC = re.compile(r"\$__env\{([^}]*)\}")
_ENV_VAR = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def expand_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """Grafana's provisioning expansion: `$__env{X}`, `${X}` and `$X` become X's value (empty if
    unset), `$$` a literal `$`."""
    env = os.environ if env is None else env
    text = _ENV_FUNC.sub(lambda m: env.get(m.group(1), ""), text)

    def repl(m: re.Match) -> str:
        if m.group(1) == "$":
            return "$"
        return env.get(m.group(2) or m.group(3), "")

    return _ENV_VAR.sub(repl, text)


def _expand_tree(value: Any, env: Mapping[str, str] | None, skip: frozenset[str] = frozenset()) -> Any:
    if isinstance(value, str):
        return expand_env(value, env)
    if isinstance(value, list):
        return [_expand_tree(v, env, skip) for v in value]
    if isinstance(value, dict):
        return {k: v if k in skip else _expand_tree(v, env, skip) for k, v in value.items()}
    return value


def _yaml_files(kind: str) -> list[Path]:
    return sorted((GRAFANA_DIR / "provisioning" / kind).glob("*.y*ml"))


def datasources(env: Mapping[str, str] | None = None) -> list[dict]:
    """Every provisioned datasource, env variables expanded as Grafana expands them."""
    out = []
    for path in _yaml_files("datasources"):
        out += _expand_tree(yaml.safe_load(path.read_text()), env).get("datasources", [])
    return out


def dashboard_providers(env: Mapping[str, str] | None = None) -> list[dict]:
    out = []
    for path in _yaml_files("dashboards"):
        out += _expand_tree(yaml.safe_load(path.read_text()), env).get("providers", [])
    return out


def dashboards() -> dict[str, dict]:
    """uid -> dashboard JSON, for every file in grafana/dashboards."""
    out = {}
    for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        if board.get("uid") in out:
            raise GrafanaError(f"{path}: dashboard uid {board['uid']!r} is used twice")
        out[board["uid"]] = board
    return out


@dataclass(frozen=True)
class AlertQuery:
    ref_id: str
    datasource_uid: str
    relative_from_s: int  # relativeTimeRange.from: seconds before the evaluation time
    relative_to_s: int
    model: dict

    @property
    def is_expression(self) -> bool:
        return self.datasource_uid == EXPRESSION_UID


@dataclass(frozen=True)
class AlertRule:
    uid: str
    title: str
    group: str
    folder: str
    interval_s: int
    condition: str
    data: tuple[AlertQuery, ...]
    no_data_state: str
    exec_err_state: str
    for_s: int
    labels: dict[str, str]
    annotations: dict[str, str]
    is_paused: bool = False
    dashboard_uid: str | None = None
    panel_id: int | None = None

    def query(self, ref_id: str) -> AlertQuery:
        return next(q for q in self.data if q.ref_id == ref_id)

    def dashboard_panel(self) -> tuple[str | None, int | None]:
        return self.dashboard_uid, self.panel_id


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus-style duration ('5m', '1h30m', '0s') in seconds."""
    text = str(text).strip()
    if text in ("", "0"):
        return 0.0
    if not _DURATION.fullmatch(text) and not re.fullmatch(r"(?:\d+(?:ms|s|m|h|d|w|y))+", text):
        raise GrafanaError(f"invalid duration {text!r}")
    return sum(int(n) * _UNIT_S[u] for n, u in _DURATION.findall(text))


NO_DATA_STATES = ("NoData", "Alerting", "OK", "KeepLast")
EXEC_ERR_STATES = ("Error", "Alerting", "OK", "KeepLast")


def alert_rules(env: Mapping[str, str] | None = None) -> list[AlertRule]:
    """Every provisioned alert rule. Like Grafana, env variables are expanded in titles, labels and
    other fields, but not in query models (macros and `$A` stay) nor in annotations (templates)."""
    rules = []
    for path in _yaml_files("alerting"):
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            group = _expand_tree(group, env, skip=frozenset({"rules"}))
            interval = parse_duration(group["interval"])
            for raw in group.get("rules", []):
                rule = _expand_tree(raw, env, skip=frozenset({"data", "annotations"}))
                data = tuple(
                    AlertQuery(
                        ref_id=expand_env(q["refId"], env),
                        datasource_uid=expand_env(q["datasourceUid"], env),
                        relative_from_s=int(q.get("relativeTimeRange", {}).get("from", 0)),
                        relative_to_s=int(q.get("relativeTimeRange", {}).get("to", 0)),
                        model=q["model"],
                    )
                    for q in rule["data"]
                )
                no_data = rule.get("noDataState") or "NoData"
                exec_err = rule.get("execErrState") or "Error"
                if no_data not in NO_DATA_STATES or exec_err not in EXEC_ERR_STATES:
                    raise GrafanaError(f"{path}: rule {rule['uid']}: invalid noDataState/execErrState")
                rules.append(AlertRule(
                    uid=rule["uid"], title=rule["title"], group=group["name"], folder=group["folder"],
                    interval_s=int(interval), condition=rule["condition"], data=data, no_data_state=no_data,
                    exec_err_state=exec_err, for_s=int(parse_duration(rule.get("for", "0s"))),
                    labels=dict(rule.get("labels") or {}), annotations=dict(rule.get("annotations") or {}),
                    is_paused=bool(rule.get("isPaused", False)),
                    dashboard_uid=rule.get("dashboardUid"), panel_id=rule.get("panelId"),
                ))
    return rules


# --- dashboards: panels, targets, variables ---------------------------------------------------------

def iter_panels(board: dict) -> Iterator[dict]:
    """Every panel, those inside (collapsed) rows included; rows themselves are not yielded."""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    query: str


def panel_queries(board: dict) -> list[PanelQuery]:
    """Every visible target (Flux text) of every panel."""
    return [PanelQuery(board["uid"], p["id"], p.get("title", ""), t["refId"], t.get("query", ""))
            for p in iter_panels(board) for t in p.get("targets", []) if not t.get("hide")]


def template_variables(board: dict) -> list[dict]:
    return board.get("templating", {}).get("list", [])


def _escape_regex(value: str) -> str:
    return re.sub(r"([\\^$.|?*+()\[\]{}/\-])", r"\\\1", value)


def format_variable(values: Sequence[str], fmt: str | None) -> str:
    """Grafana's variable formats for a list of selected values."""
    values = list(values)
    if fmt in (None, "", "glob"):
        return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"
    if fmt == "regex":
        escaped = [_escape_regex(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt == "pipe":
        return "|".join(values)
    if fmt in ("csv", "raw"):
        return ",".join(values)
    if fmt == "json":
        return json.dumps(values if len(values) != 1 else values[0])
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    raise GrafanaError(f"unsupported variable format {fmt!r}")


_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+)(?::(\w+))?\]\]|\$\{(\w+)(?:\.[^:}]+)?(?::([^}]+))?\}")


def interpolate_variables(text: str, board: dict, selected: Mapping[str, Any] | None = None) -> str:
    """Replace dashboard variables in text the way Grafana's template service does. `selected` maps
    a variable name to a value, a list of values, or ALL (the default for an includeAll variable;
    otherwise the variable's current value)."""
    selected = dict(selected or {})
    definitions = {v["name"]: v for v in template_variables(board)}

    def value_of(name: str, fmt: str | None) -> str | None:
        if name.startswith("__") or name not in definitions:
            return None
        var = definitions[name]
        if var.get("type") == "constant" and name not in selected:
            return format_variable([var.get("query", "")], fmt)
        choice = selected.get(name, ALL if var.get("includeAll") else _current(var))
        if choice is ALL:
            if var.get("allValue") is not None:
                return var["allValue"]  # a custom all value is not formatted
            choice = [o["value"] for o in var.get("options", []) if o.get("value") not in ("$__all", None)]
            if not choice:
                raise GrafanaError(f"variable {name}: 'All' without allValue needs options; set allValue")
        values = [choice] if isinstance(choice, str) else list(choice)
        return format_variable(values, fmt)

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        value = value_of(name, fmt)
        return m.group(0) if value is None else value

    return _VARIABLE.sub(repl, text)


def _current(var: dict) -> Any:
    current = var.get("current", {}).get("value")
    if current in (None, "", [], "$__all", ["$__all"]):
        return ALL
    return current


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 500ms, 10s, 1m0s, 1h30m0s."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if ns >= size:
                value = ns / size
                return f"{value:g}{unit}"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = rest / 1e9
    sec_text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{minutes}m{sec_text}"
    return sec_text


# Grafana's rangeutil.roundInterval: a computed interval is rounded to one of these.
_ROUND_STEPS = [
    (0.015, 0.010), (0.035, 0.020), (0.075, 0.050), (0.15, 0.100), (0.35, 0.200), (0.75, 0.500),
    (1.5, 1), (3.5, 2), (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60), (210, 120),
    (450, 300), (750, 600), (1050, 900), (1500, 1200), (2700, 1800), (5400, 3600), (9000, 7200),
    (16200, 10800), (32400, 21600), (86400, 43200), (604800, 86400), (1814400, 604800),
    (3628800, 2592000),
]


def grafana_interval(start: datetime, stop: datetime, max_data_points: int = 1000, min_interval_s: float = 0) -> float:
    """The panel interval Grafana computes (seconds): range / max data points, rounded, at least
    the panel's or datasource's min interval."""
    raw = (stop - start).total_seconds() / max(1, max_data_points)
    rounded = next((step for limit, step in _ROUND_STEPS if raw < limit), 31536000)
    return max(rounded, min_interval_s)


def _rfc3339(t: datetime) -> str:
    t = t.astimezone(timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


_FLUX_VARIABLE = re.compile(r"([a-zA-Z]+)\.([a-zA-Z]+)")


def interpolate_flux(query: str, *, start: datetime, stop: datetime, interval_s: float, bucket: str,
                     default_bucket: str | None = None, organization: str = "-") -> str:
    """The InfluxDB datasource's backend macros (flux/macros.go), quirks included: any `x.name` whose
    name is a macro is replaced, and `$__interval` after `$__interval_ms`."""
    values = {
        "timeRangeStart": _rfc3339(start), "timeRangeStop": _rfc3339(stop), "windowPeriod": go_duration(interval_s),
        "bucket": json.dumps(bucket), "defaultBucket": json.dumps(default_bucket or bucket),
        "organization": json.dumps(organization),
    }
    query = _FLUX_VARIABLE.sub(lambda m: values.get(m.group(2), m.group(0)), query)
    query = query.replace("$__interval_ms", str(int(interval_s * 1000)))
    return query.replace("$__interval", _format_interval(interval_s))


def _format_interval(seconds: float) -> str:
    """gtime.FormatInterval: the largest whole unit (1d, 5m, 30s, 500ms)."""
    ms = int(seconds * 1000)
    for unit, size in (("y", 31536000000), ("w", 604800000), ("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def datasource_min_interval(datasource: dict) -> float:
    return parse_duration(datasource.get("jsonData", {}).get("timeInterval", "0s"))


def render_panel_query(board: dict, panel: dict | None, query: str, *, start: datetime, stop: datetime, bucket: str,
                       selected: Mapping[str, Any] | None = None, max_data_points: int = 1000,
                       min_interval_s: float = 0, organization: str = "-") -> str:
    """A panel target as Grafana sends it: variables first (frontend), then macros (backend)."""
    panel_min = parse_duration((panel or {}).get("interval") or "0s")
    interval = grafana_interval(start, stop, (panel or {}).get("maxDataPoints") or max_data_points,
                                max(panel_min, min_interval_s))
    text = interpolate_variables(query, board, selected)
    return interpolate_flux(text, start=start, stop=stop, interval_s=interval, bucket=bucket, organization=organization)


# --- Flux results as Grafana data frames ----------------------------------------------------------

@dataclass
class Frame:
    """One Flux table as Grafana's InfluxDB (Flux) datasource returns it."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    times: list[datetime] | None = None  # set for a time series
    values: list[Any] = field(default_factory=list)  # the _value column of a time series
    columns: dict[str, list[Any]] = field(default_factory=dict)  # a table frame's columns
    field_name: str = ""  # a time series' value field: the table's _field (what the legend shows)

    @property
    def is_time_series(self) -> bool:
        return self.times is not None

    def __len__(self) -> int:
        return len(self.values) if self.is_time_series else len(next(iter(self.columns.values()), []))


_TIME_TYPES = ("dateTime:RFC3339", "dateTime:RFC3339Nano")


def flux_frames(tables) -> list[Frame]:
    """influxdb_client FluxTables -> frames, after pkg/tsdb/influxdb/flux/builder.go."""
    frames = []
    for table in tables:
        columns = table.columns
        names = [c.label for c in columns]
        value_col = next((c for c in columns if c.label == "_value"), None)
        time_col = None
        if value_col is not None:
            time_col = next((c.label for c in columns if c.label == "_time" and c.data_type in _TIME_TYPES), None) \
                or next((c.label for c in columns if c.data_type in _TIME_TYPES), None)
        if not table.records:
            continue
        first = table.records[0].values
        if time_col is not None:
            labels = {n: first[n] for n in names
                      if n not in ("result", "table") and not n.startswith("_") and isinstance(first.get(n), str)}
            frames.append(Frame(str(first.get("_measurement", "")), labels,
                                [r.values[time_col] for r in table.records], [r.values["_value"] for r in table.records],
                                field_name=first["_field"] if isinstance(first.get("_field"), str) else ""))
        else:
            cols = {n: [r.values.get(n) for r in table.records] for n in names if n not in ("result", "table")}
            frames.append(Frame("", {}, None, [], cols))
    return frames


def query_frames(url: str, token: str, org: str, flux: str) -> list[Frame]:
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(url=url, token=token, org=org, timeout=30_000) as client:
        return flux_frames(client.query_api().query(flux, org=org))


# --- server-side expressions ---------------------------------------------------------------------

@dataclass(frozen=True)
class Series:
    labels: tuple[tuple[str, str], ...]
    points: tuple[tuple[datetime, float | None], ...]


@dataclass(frozen=True)
class Number:
    labels: tuple[tuple[str, str], ...]
    value: float | None


@dataclass(frozen=True)
class Scalar:
    value: float | None

    labels: tuple = ()


class _NoData:
    labels: tuple = ()

    def __repr__(self) -> str:
        return "NoData"


NO_DATA = _NoData()
Value = Series | Number | Scalar | _NoData


def label_set(d: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(d.items()))


def _float(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    return float(v)


def frames_to_values(frames: list[Frame]) -> list[Value]:
    """A datasource response as SSE sees it: series, numbers (numeric tables), or NoData."""
    if not frames:
        return [NO_DATA]
    out: list[Value] = []
    for frame in frames:
        if frame.is_time_series:
            points = sorted(zip(frame.times, (_float(v) for v in frame.values)), key=lambda p: p[0])
            out.append(Series(label_set(frame.labels), tuple(points)))
            continue
        numeric = [n for n, col in frame.columns.items() if any(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                 for v in col)]
        strings = [n for n, col in frame.columns.items() if n not in numeric and all(isinstance(v, (str, type(None)))
                                                                                    for v in col)]
        if len(numeric) != 1:
            raise GrafanaError(f"a table frame needs exactly one numeric column to be alerted on, has {numeric}")
        for i, v in enumerate(frame.columns[numeric[0]]):
            labels = {n: frame.columns[n][i] for n in strings if frame.columns[n][i] is not None}
            out.append(Number(label_set(labels), _float(v)))
    return out


def _reduce_values(values: list[float | None], reducer: str) -> float | None:
    nan = math.nan
    if reducer == "count":
        return float(len(values))
    if reducer == "last":
        return values[-1] if values else nan
    if reducer in ("min", "max") and not values:
        return nan
    if any(v is None or math.isnan(v) for v in values):
        return nan
    if reducer == "sum":
        return float(sum(values))
    if reducer == "mean":
        return sum(values) / len(values) if values else nan
    if reducer == "min":
        return min(values)
    if reducer == "max":
        return max(values)
    raise GrafanaError(f"reduction {reducer} not implemented")


def reduce_command(values: list[Value], reducer: str, mode: str | None = None, replace_with: float | None = None) -> list[Value]:
    """Grafana's Reduce expression (mathexp/reduce.go, commands.go)."""
    reducer = reducer.lower()

    def map_in(v: float | None) -> float | None:
        bad = v is None or math.isnan(v) or math.isinf(v)
        if mode == "dropNN":
            return None if bad else v
        if mode == "replaceNN":
            return replace_with if bad else v
        return v

    def map_out(v: float | None) -> float | None:
        if v is not None and math.isnan(v):
            return None if mode == "dropNN" else replace_with if mode == "replaceNN" else v
        return v

    out: list[Value] = []
    for val in values:
        if isinstance(val, Series):
            points = [p[1] for p in val.points]
            if mode in ("dropNN", "replaceNN"):
                points = [m for m in (map_in(p) for p in points) if m is not None]
            result = _reduce_values(points, reducer)
            out.append(Number(val.labels, map_out(result) if mode else result))
        elif isinstance(val, Number):
            v = map_in(val.value) if mode else val.value
            if mode and v is None:
                continue
            out.append(Number(val.labels, v))
        elif val is NO_DATA:
            out.append(NO_DATA)
        else:
            raise GrafanaError(f"can only reduce type series, got {type(val).__name__}")
    return out


_THRESHOLDS: dict[str, Callable[[float, list[float]], bool]] = {
    "gt": lambda f, p: f > p[0], "lt": lambda f, p: f < p[0], "eq": lambda f, p: f == p[0],
    "ne": lambda f, p: f != p[0], "gte": lambda f, p: f >= p[0], "lte": lambda f, p: f <= p[0],
    "within_range": lambda f, p: p[0] < f < p[1], "outside_range": lambda f, p: f < p[0] or f > p[1],
    "within_range_included": lambda f, p: p[0] <= f <= p[1],
    "outside_range_included": lambda f, p: f <= p[0] or f >= p[1],
}


def threshold_command(values: list[Value], kind: str, params: list[float]) -> list[Value]:
    """Grafana's Threshold expression (pkg/expr/threshold.go): 1 or 0 per value, null stays null."""
    if kind not in _THRESHOLDS:
        raise GrafanaError(f"unsupported threshold type {kind!r}")
    test = _THRESHOLDS[kind]

    def ev(v: float | None) -> float | None:
        return None if v is None else (1.0 if test(v, params) else 0.0)

    out: list[Value] = []
    for val in values:
        if isinstance(val, Series):
            out.append(Series(val.labels, tuple((t, ev(v)) for t, v in val.points)))
        elif isinstance(val, Number):
            out.append(Number(val.labels, ev(val.value)))
        elif isinstance(val, Scalar):
            out.append(Scalar(ev(val.value)))
        else:
            out.append(NO_DATA)
    return out


# Math: Grafana's grammar (mathexp/parse, after bosun): || && comparisons + - * / % ** unary ! -.
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|\$\{([^}]+)\}|\$([A-Za-z0-9_]+)"
                    r"|(\|\||&&|==|!=|>=|<=|\*\*|[-+*/%<>!()])|([A-Za-z_][A-Za-z0-9_]*)|,)")
_PRECEDENCE = [("||",), ("&&",), ("==", "!=", ">", ">=", "<", "<="), ("+", "-"), ("*", "/", "%"), ("**",)]


def _tokenize(expr: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise GrafanaError(f"math: cannot parse {expr[pos:]!r} in {expr!r}")
        pos = m.end()
        if m.group(1):
            tokens.append(("num", m.group(1)))
        elif m.group(2) or m.group(3):
            tokens.append(("var", m.group(2) or m.group(3)))
        elif m.group(4):
            tokens.append(("op", m.group(4)))
        elif m.group(5):
            tokens.append(("func", m.group(5)))
        else:
            tokens.append(("op", ","))
    return tokens


def _parse_math(tokens: list[tuple[str, str]]):
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else ("end", "")

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def binary(level: int):
        if level == len(_PRECEDENCE):
            return unary()
        left = binary(level + 1)
        while peek()[0] == "op" and peek()[1] in _PRECEDENCE[level]:
            op = take()[1]
            left = ("bin", op, left, binary(level + 1))
        return left

    def unary():
        if peek() == ("op", "!") or peek() == ("op", "-"):
            op = take()[1]
            return ("un", op, unary())
        return atom()

    def atom():
        kind, text = take() if pos < len(tokens) else ("end", "")
        if kind == "num":
            return ("num", float(text))
        if kind == "var":
            return ("var", text)
        if kind == "func":
            if take() != ("op", "("):
                raise GrafanaError(f"math: {text} must be called")
            args = [] if peek() == ("op", ")") else [binary(0)]
            while peek() == ("op", ","):
                take()
                args.append(binary(0))
            if take() != ("op", ")"):
                raise GrafanaError("math: missing ')'")
            return ("func", text, args)
        if (kind, text) == ("op", "("):
            node = binary(0)
            if take() != ("op", ")"):
                raise GrafanaError("math: missing ')'")
            return node
        raise GrafanaError(f"math: unexpected {text or 'end of expression'!r}")

    node = binary(0)
    if pos != len(tokens):
        raise GrafanaError(f"math: unexpected {tokens[pos][1]!r}")
    return node


def math_vars(expr: str) -> list[str]:
    return [text for kind, text in _tokenize(expr) if kind == "var"]


def _binary_op(op: str, a: float, b: float) -> float:
    if op == "||" and a != 0:
        return 1.0
    if op == "&&" and a == 0:
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.nan
    try:
        return {
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
            "/": lambda: a / b if b else (math.nan if a == 0 else math.copysign(math.inf, a)),
            "%": lambda: math.fmod(a, b) if b else math.nan, "**": lambda: a ** b,
            "==": lambda: float(a == b), "!=": lambda: float(a != b), ">": lambda: float(a > b),
            "<": lambda: float(a < b), ">=": lambda: float(a >= b), "<=": lambda: float(a <= b),
            "||": lambda: float(a != 0 or b != 0), "&&": lambda: float(a != 0 and b != 0),
        }[op]()
    except OverflowError:
        return math.inf


_FUNCS: dict[str, Callable[[float], float]] = {
    "abs": abs, "log": lambda x: math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan),
    "ceil": math.ceil, "floor": math.floor, "round": lambda x: float(math.floor(x + 0.5)),
    "is_nan": lambda x: float(math.isnan(x)), "is_inf": lambda x: float(math.isinf(x)),
    "is_number": lambda x: float(not (math.isnan(x) or math.isinf(x))),
}


def _union(a: list[Value], b: list[Value]) -> list[tuple[tuple, Value, Value]]:
    """Pairs of values whose labels are compatible (mathexp/exp.go union)."""
    if not a or not b:
        return []
    if (len(a) == 1 or len(b) == 1) and (a[0] is NO_DATA or b[0] is NO_DATA):
        return [((), a[0], b[0])]
    pairs = []
    for x in a:
        for y in b:
            la, lb = dict(x.labels), dict(y.labels)
            if la == lb or not la or not lb:
                labels = x.labels if la else y.labels
            elif len(la) == len(lb):
                continue
            elif lb.items() <= la.items():
                labels = x.labels
            elif la.items() <= lb.items():
                labels = y.labels
            else:
                continue
            pairs.append((labels, x, y))
    if not pairs and len(a) == 1 and len(b) == 1:
        pairs.append(((), a[0], b[0]))
    return pairs


def _apply_binary(op: str, labels: tuple, x: Value, y: Value) -> Value:
    if x is NO_DATA:
        return x
    if y is NO_DATA:
        return y
    if isinstance(x, Series) or isinstance(y, Series):
        if isinstance(x, Series) and isinstance(y, Series):
            ys = {t: v for t, v in y.points}
            return Series(labels, tuple((t, None if v is None or ys[t] is None else _binary_op(op, v, ys[t]))
                                        for t, v in x.points if t in ys))
        s, other, series_first = (x, y, True) if isinstance(x, Series) else (y, x, False)
        o = other.value
        return Series(labels, tuple((t, None if v is None or o is None else
                                     _binary_op(op, v, o) if series_first else _binary_op(op, o, v)) for t, v in s.points))
    if x.value is None or y.value is None:
        return Scalar(None) if isinstance(x, Scalar) and isinstance(y, Scalar) else Number(labels, None)
    result = _binary_op(op, x.value, y.value)
    return Scalar(result) if isinstance(x, Scalar) and isinstance(y, Scalar) else Number(labels, result)


def _map_value(val: Value, fn: Callable[[float], float]) -> Value:
    def f(v):
        return None if v is None else (math.nan if math.isnan(v) and fn is not _FUNCS["is_nan"] else fn(v))
    if isinstance(val, Series):
        return Series(val.labels, tuple((t, f(v)) for t, v in val.points))
    if isinstance(val, Number):
        return Number(val.labels, f(val.value))
    if isinstance(val, Scalar):
        return Scalar(f(val.value))
    return val


def math_command(expr: str, variables: Mapping[str, list[Value]]) -> list[Value]:
    """Grafana's Math expression over the results of other queries/expressions."""
    def walk(node) -> list[Value]:
        kind = node[0]
        if kind == "num":
            return [Scalar(node[1])]
        if kind == "var":
            if node[1] not in variables:
                raise GrafanaError(f"math: unknown variable ${node[1]}")
            return list(variables[node[1]])
        if kind == "un":
            op = node[1]
            fn = (lambda v: 1.0 if v == 0 else 0.0) if op == "!" else (lambda v: -v)
            return [_map_value(v, fn) for v in walk(node[2])]
        if kind == "func":
            name, args = node[1], node[2]
            if name not in _FUNCS or len(args) != 1:
                raise GrafanaError(f"math: unsupported function {name}")
            return [_map_value(v, _FUNCS[name]) for v in walk(args[0])]
        _, op, left, right = node
        return [_apply_binary(op, labels, x, y) for labels, x, y in _union(walk(left), walk(right))]

    return walk(_parse_math(_tokenize(expr)))


def run_expression(model: dict, results: Mapping[str, list[Value]]) -> list[Value]:
    kind = model.get("type")
    if kind == "reduce":
        settings = model.get("settings") or {}
        return reduce_command(results[model["expression"].lstrip("$")], model["reducer"], settings.get("mode") or None,
                              settings.get("replaceWithValue"))
    if kind == "threshold":
        conditions = model.get("conditions") or []
        if len(conditions) != 1:
            raise GrafanaError("threshold expression requires exactly one condition")
        evaluator = conditions[0]["evaluator"]
        return threshold_command(results[model["expression"].lstrip("$")], evaluator["type"],
                                 [float(p) for p in evaluator.get("params", [])])
    if kind == "math":
        return math_command(model["expression"], results)
    raise GrafanaError(f"expression type {kind!r} is not emulated here")


def expression_inputs(model: dict) -> list[str]:
    if model.get("type") == "math":
        return math_vars(model["expression"])
    return [model["expression"].lstrip("$")]


# --- alert evaluation ---------------------------------------------------------------------------

NORMAL, ALERTING, PENDING, NODATA, ERROR = "Normal", "Alerting", "Pending", "NoData", "Error"


@dataclass(frozen=True)
class Instance:
    """One evaluated alert instance: its labels, raw result state and condition value."""

    labels: tuple[tuple[str, str], ...]
    state: str  # Normal, Alerting, NoData or Error (before noDataState / execErrState)
    value: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    instances: tuple[Instance, ...]
    values: Mapping[str, list[Value]]  # every refId's result, for messages and templates


QueryRunner = Callable[[AlertQuery, str], list[Frame]]  # (query, rendered Flux) -> frames


def render_alert_query(query: AlertQuery, now: datetime, bucket: str, organization: str = "-") -> str:
    start = now - timedelta(seconds=query.relative_from_s)
    stop = now - timedelta(seconds=query.relative_to_s)
    interval = max(query.model.get("intervalMs", 1000) / 1000, 0.001)
    return interpolate_flux(query.model["query"], start=start, stop=stop, interval_s=interval, bucket=bucket,
                            organization=organization)


def evaluate(rule: AlertRule, now: datetime, run: QueryRunner, bucket: str) -> Evaluation:
    """One evaluation of a rule at `now`, as Grafana's evaluator (before noDataState/execErrState)."""
    results: dict[str, list[Value]] = {}
    no_data: list[str] = []
    try:
        for query in [q for q in rule.data if not q.is_expression]:
            values = frames_to_values(run(query, render_alert_query(query, now, bucket)))
            results[query.ref_id] = values
            if values == [NO_DATA]:
                no_data.append(query.ref_id)
        pending = [q for q in rule.data if q.is_expression]
        while pending:  # expressions in dependency order
            ready = [q for q in pending if all(r in results for r in expression_inputs(q.model))]
            if not ready:
                raise GrafanaError(f"rule {rule.uid}: expressions {[q.ref_id for q in pending]} have unmet inputs")
            for q in ready:
                results[q.ref_id] = run_expression(q.model, results)
                pending.remove(q)
    except Exception as exc:  # a datasource or expression error: the whole rule is in Error
        return Evaluation(now, (Instance((), ERROR, error=str(exc)),), results)
    if no_data:
        uid = rule.query(no_data[0]).datasource_uid
        return Evaluation(now, (Instance(label_set({"datasource_uid": uid, "ref_id": ",".join(sorted(no_data))}), NODATA),),
                          results)
    condition = results.get(rule.condition)
    if condition is None:
        return Evaluation(now, (Instance((), ERROR, error=f"condition {rule.condition} does not exist"),), results)
    if not condition:
        return Evaluation(now, (Instance((), NODATA),), results)
    instances = []
    for val in condition:
        if val is NO_DATA:
            instances.append(Instance((), NODATA))
        elif isinstance(val, Series):
            instances.append(Instance(val.labels, ERROR, error="looks like time series data, only reduced data can be alerted on"))
        else:
            v = val.value
            state = NODATA if v is None else NORMAL if v == 0 else ALERTING
            instances.append(Instance(val.labels, state, v))
    if len({i.labels for i in instances}) != len(instances):
        return Evaluation(now, (Instance((), ERROR, error="frame cannot uniquely be identified by its labels"),), results)
    return Evaluation(now, tuple(instances), results)


@dataclass
class _Tracked:
    state: str
    since: datetime  # when the current state (Pending counts as its own) began
    missing: int = 0


class AlertStateTracker:
    """Grafana's state manager for one rule, reduced to what on-call sees: Normal, Pending,
    Alerting, NoData or Error per instance, with `for:` as the pending period, noDataState and
    execErrState applied, and instances missing from two evaluations resolved."""

    def __init__(self, rule: AlertRule):
        self.rule = rule
        self.instances: dict[tuple, _Tracked] = {}

    def _target(self, raw: str, previous: str | None) -> str:
        """The state a raw result asks for, after noDataState / execErrState."""
        keep = ALERTING if previous == PENDING else (previous or NORMAL)
        if raw == NODATA:
            return {"NoData": NODATA, "Alerting": ALERTING, "OK": NORMAL, "KeepLast": keep}[self.rule.no_data_state]
        if raw == ERROR:
            return {"Error": ERROR, "Alerting": ALERTING, "OK": NORMAL, "KeepLast": keep}[self.rule.exec_err_state]
        return raw

    def observe(self, evaluation: Evaluation) -> dict[tuple, str]:
        at, seen = evaluation.at, set()
        for inst in evaluation.instances:
            seen.add(inst.labels)
            tracked = self.instances.get(inst.labels)
            previous = tracked.state if tracked else None
            target = self._target(inst.state, previous)
            if target == ALERTING and previous != ALERTING and self.rule.for_s > 0:
                if previous == PENDING and (at - tracked.since).total_seconds() >= self.rule.for_s:
                    state, since = ALERTING, at
                elif previous == PENDING:
                    state, since = PENDING, tracked.since
                else:
                    state, since = PENDING, at
            else:
                state, since = target, (tracked.since if tracked and previous == target else at)
            self.instances[inst.labels] = _Tracked(state, since)
        for labels, tracked in list(self.instances.items()):
            if labels not in seen:
                tracked.missing += 1
                if tracked.missing >= 2:  # stale for two evaluations: resolved
                    del self.instances[labels]
        return self.states()

    def states(self) -> dict[tuple, str]:
        return {labels: t.state for labels, t in self.instances.items()}

    @property
    def firing(self) -> list[dict[str, str]]:
        return [dict(labels) for labels, t in self.instances.items() if t.state == ALERTING]


def simulate(rule: AlertRule, until: datetime, run: QueryRunner, bucket: str,
             duration_s: float | None = None) -> tuple[AlertStateTracker, list[Evaluation]]:
    """Evaluate a rule every group interval over `duration_s` (default: its `for` plus two
    intervals) ending at `until`, as the scheduler would; returns the states after the last one."""
    duration_s = rule.for_s + 2 * rule.interval_s if duration_s is None else duration_s
    steps = int(duration_s // rule.interval_s)
    tracker, evaluations = AlertStateTracker(rule), []
    for i in range(steps, -1, -1):
        evaluation = evaluate(rule, until - timedelta(seconds=i * rule.interval_s), run, bucket)
        tracker.observe(evaluation)
        evaluations.append(evaluation)
    return tracker, evaluations
