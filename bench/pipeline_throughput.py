"""The audit job against a pass-through job, on the same pre-produced Kafka topic, in one run.

Beside the jobs, the same run measures what the job is held against:
- the engine: parse and rules in plain Python, one process, on the topic's events (no Kafka, no stores);
- the consumer a team would hand-roll: kafka-python, the same engine, insert_many of the violations
  into MongoDB, offsets committed after each batch (at-least-once).

Jobs (each bounded, on the local MiniCluster and stack, Python functions in process or thread mode):
- pass-through: Kafka source -> three Python maps (parse JSON, identity, size) -> discarding sink;
- audit, rules only: the real job (parse, rules, sequences, windows, anomalies, MongoDB, InfluxDB, DLQ);
- audit, toxicity+bias: the same with the toxicity and bias models (the defaults of session 24);
- audit, default models: the same with the job's default scorers (toxicity, bias, entities, injection);
- in process mode, where the audit's time goes: a Python function that only parses each event
  (the audit's shape, SQL event time included, with no audit in it), parse and rules
  in one non-keyed Python map (the pass-through's shape), and the audit with an empty ruleset.

Events/s are measured by difference: each job runs on N and on a small M events from the same
topic, and the rate is (N - M) / (T(N) - T(M)), which cancels JVM, worker and model start-up.
Then the audit in the job's default Python mode runs unbounded on live traffic, rules only and with the default
models, each at half its measured rate (--rate sets the rules-only one), in a process of its own; per violation,
the latency of each stage (event time -> Kafka append -> stored in MongoDB), p50, p99 and p99.9.
The last line is `SUMMARY engine_eps=… consumer_eps=… passthrough_eps=… audit_rules_eps=…
audit_scorers_eps=… audit_default_eps=… p50_ms=… p99_ms=… p999_ms=… per_event_p99_ms=… models_p50_ms=…
models_p99_ms=… models_per_event_p99_ms=…`, the best mode of each (audit_scorers_eps: toxicity+bias; latencies:
event time -> stored, of every violation or of the per-event rules' only: a sequence rule waits for the watermark).
Each run's databases, topics and checkpoints are dropped after it, and the bench's topics at the end:
the stack is the one the tests use.

Usage: python bench/pipeline_throughput.py [--events 200000] [--scored-events 4000] [--rate EVENTS_PER_S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import uuid
from datetime import timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Thread mode runs Python inside the JVM (pemja), which sees only PYTHONPATH, not this venv: set it
# before the first PyFlink call starts the JVM.
os.environ["PYTHONPATH"] = os.pathsep.join([*sys.path[1:], os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)

from pyflink.common import Types, WatermarkStrategy  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from devstack import stack, traffic  # noqa: E402
from flink_jobs.streaming import environment, job, sources  # noqa: E402
from flink_jobs.local import local_job_settings  # noqa: E402
from flink_jobs.settings import AuditJobSettings  # noqa: E402
from flink_jobs.pyflink_internals import discard  # noqa: E402
from rules_throughput import rate  # noqa: E402  (the sibling benchmark: bench/ is on sys.path)

console = Console(stderr=True)


def settings_for(run: str, topic: str, **overrides):
    settings = local_job_settings(**{
        "source_topic": topic, "dlq_topic": f"{topic}.dlq-{run}", "rules_topic": f"bench-{run}.rules",
        "group_id": f"bench-{run}", "mongo_database": f"llm_audit_bench_{run}",
        "influx_bucket": f"llm_audit_bench_{run}/autogen", "bounded": True,
        "checkpoint_dir": (Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{run}").as_uri(),
        "archive_dir": (Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{run}-archive").as_uri(), **overrides})
    stack.create_topics(settings.kafka_bootstrap, {settings.dlq_topic: {}, settings.rules_topic: {"cleanup.policy": "compact"}})
    stack.create_influx_database(settings.influx_url, settings.influx_bucket.split("/")[0])
    return settings


def drop_run_data(settings) -> None:
    """A run's MongoDB and InfluxDB databases, its DLQ and rules topics, its checkpoints and archive: each
    rules-only run stores ~50,000 violations, and the stack is the one the tests use."""
    from pymongo import MongoClient

    with MongoClient(settings.mongo_uri.get_secret_value()) as mongo:
        mongo.drop_database(settings.mongo_database)
    stack.drop_influx_database(settings.influx_url, settings.influx_bucket.split("/")[0])
    stack.delete_topics(settings.kafka_bootstrap, [settings.dlq_topic, settings.rules_topic])
    shutil.rmtree(settings.checkpoint_dir.removeprefix("file://"), ignore_errors=True)
    if settings.archive_dir:
        shutil.rmtree(settings.archive_dir.removeprefix("file://"), ignore_errors=True)


def parse(value: str):
    try:
        return json.loads(value)
    except ValueError:  # the stream's malformed share
        return None


def events_source(settings):
    """A new environment and its Kafka source of the topic's raw events."""
    env = environment.create_env(settings)
    return env, env.from_source(sources.kafka_source(settings, settings.source_topic),
                                WatermarkStrategy.no_watermarks(), "events")


def pass_through(settings):
    """Source -> parse -> identity -> size -> discard: what any Python job on this topic pays."""
    env, source = events_source(settings)
    source.map(parse, Types.PICKLED_BYTE_ARRAY()).map(lambda e: e, Types.PICKLED_BYTE_ARRAY()) \
        .map(lambda e: len(e or ()), Types.INT()).sink_to(discard())
    return env


def parse_only(settings):
    """Source -> event time in SQL -> a Python function that only parses each event -> discard: the
    audit job's shape with no audit in it, the floor of its cost."""
    from pyflink.datastream.functions import ProcessFunction

    from udfs.events import EventError, parse_event

    class ParseOnly(ProcessFunction):
        def process_element(self, value, ctx):
            try:
                parse_event(value[0])
            except EventError:
                pass
            return ()

    env = environment.create_env(settings)
    sources.timed_events(sources.kafka_events_table(env, settings)).process(ParseOnly(), Types.INT()) \
        .sink_to(discard())
    return env


class ParseAndRules:
    """parse and rules on each event, the engine built on the worker -> a small summary of it."""

    def __init__(self, rules_path: str):
        self._rules_path, self._engine = rules_path, None

    def __call__(self, raw: str):
        from udfs.engine import RuleEngine
        from udfs.events import EventError, parse_event
        from udfs.rules import load_rules

        if self._engine is None:
            self._engine = RuleEngine(load_rules(self._rules_path))
            self._engine.open()
        try:
            event = parse_event(raw)
        except EventError:
            return ()
        return event.tenant, event.model, event.timestamp, len(self._engine.evaluate(event))


def unkeyed_rules(rules_path: Path):
    """Source -> one non-keyed Python map (parse and rules, as the pass-through's shape) -> discard:
    what the audit would cost if only a small per-event summary went on to keyed state."""
    def build(settings):
        env, source = events_source(settings)
        source.map(ParseAndRules(str(rules_path)), Types.PICKLED_BYTE_ARRAY()).sink_to(discard())
        return env
    return build


def engine_rate(rules_path: Path, values: list[str]) -> float:
    """Events/s of parse + rules in plain Python on one core: the ceiling the job is measured against."""
    from udfs.engine import RuleEngine
    from udfs.events import EventError, parse_event
    from udfs.rules import load_rules

    engine = RuleEngine(load_rules(rules_path))
    engine.open()

    def audit(value: str) -> None:
        try:
            engine.evaluate(parse_event(value))
        except EventError:  # the stream's malformed share: parsed, then rejected
            pass

    return rate(audit, values, repeats=1)


def scorer_rate(values: list[str], scorers: tuple[str, ...]) -> float:
    """Events/s at which these scorers, batched as the job batches them, score these events' texts in
    plain Python: the ceiling of the audit with them."""
    from udfs.events import EventError, parse_event
    from udfs.scorers import ScorerSuite, load_config

    settings = local_job_settings()  # the job's scorers; unsigned pushes, as every local run here
    events = []
    for value in values:
        try:
            events.append(parse_event(value))
        except EventError:
            pass
    suite = ScorerSuite(load_config(settings.scorers_path), scorers, settings.scorer_device)
    suite.open()
    size = settings.score_batch_size
    suite.score_events(events[:size])  # the first batch warms the models up
    began = time.perf_counter()
    for start in range(0, len(events), size):
        suite.score_events(events[start:start + size])
    return len(values) / (time.perf_counter() - began)


def hand_rolled_consumer(topic: str, n: int, rules_path: Path) -> float:
    """Events/s of the consumer loop a team would write instead of a Flink job: poll, parse, rules,
    insert_many of the violation documents, commit (at-least-once: a crash re-inserts a batch)."""
    from kafka import KafkaConsumer
    from pymongo import MongoClient

    from udfs.engine import RuleEngine
    from udfs.events import EventError, parse_event
    from udfs.findings import violation_document
    from udfs.rules import load_rules

    run = uuid.uuid4().hex[:8]
    settings = settings_for(run, topic)
    engine = RuleEngine(load_rules(rules_path))
    engine.open()
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=f"bench-consumer-{run}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2000)
    mongo = MongoClient(settings.mongo_uri.get_secret_value())
    violations = mongo[settings.mongo_database][settings.violations_collection]
    seen, began = 0, time.monotonic()
    try:
        while seen < n:
            docs = []
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    seen += 1
                    try:
                        event = parse_event(record.value)
                    except EventError:
                        continue
                    docs.extend(violation_document(event, finding) for finding in engine.evaluate(event))
            if docs:
                violations.insert_many(docs, ordered=False)
            consumer.commit()
        return seen / (time.monotonic() - began)
    finally:
        consumer.close()
        mongo.close()
        drop_run_data(settings)


def timed(build, settings) -> float:
    """Seconds to run the job to the end of its bounded input; then its data is dropped."""
    began = time.monotonic()
    try:
        build(settings).execute(f"bench-{settings.group_id}")
        return time.monotonic() - began
    finally:
        drop_run_data(settings)


def head_topic(source: str, n: int, bootstrap: str, partitions: int) -> str:
    """A topic holding the first n records of source (same bytes), for the small run of the pair."""
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"{source}-first{n}"
    stack.create_topics(bootstrap, {topic: {}}, partitions=partitions)
    consumer = KafkaConsumer(source, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    for i, record in enumerate(consumer):
        if i >= n:
            break
        producer.send(topic, record.value, key=record.key, timestamp_ms=record.timestamp)
    producer.flush()
    producer.close()
    consumer.close()
    return topic


def rate_of(name: str, build, topics: dict[int, str], overrides: dict) -> tuple[float, dict]:
    times = {}
    for n, topic in topics.items():
        run = uuid.uuid4().hex[:8]
        times[n] = timed(build, settings_for(run, topic, **overrides))
        console.print(f"  {name}: {n} events in {times[n]:.1f}s")
    (small, t_small), (big, t_big) = sorted(times.items())
    if t_big <= t_small:  # start-up varies more than the extra events cost: no rate to report
        console.print(f"[yellow]{name}: the larger run was not slower; rerun with more events[/]")
        return None, times
    return (big - small) / (t_big - t_small), times


STAGES = ("event time -> Kafka append", "Kafka append -> stored", "event time -> stored")
# event time -> stored, by the kind of rule that fired: a sequence rule counts findings in event-time order, so
# it decides when the watermark passes, max_out_of_orderness_s (default 5 s) behind the newest event.
KINDS = ("per-event rules", "sequence rules")


def latency(overrides: dict, rate: float, seconds: float) -> dict[str, list[float]]:
    """Live traffic at `rate` for `seconds`; per violation of it, the seconds of each of STAGES (the Kafka
    append time is the record's timestamp; stored is the violation's stored_at). Runs in a process of its own,
    a fresh JVM as a deployment has: after the bounded jobs, translating the archive's sink in the bench's
    process failed ("no format factory for 'parquet'")."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_latency, (overrides, rate, seconds))


def _latency(overrides: dict, rate: float, seconds: float) -> dict[str, list[float]]:
    from kafka import KafkaConsumer
    from pymongo import MongoClient

    # Inherited from the bench's process once thread mode ran a Python function there: PyFlink would take
    # this process for a UDF worker and refuse to start its gateway.
    for name in ("PYFLINK_GATEWAY_DISABLED", "PYFLINK_GATEWAY_PORT"):
        os.environ.pop(name, None)

    run = uuid.uuid4().hex[:8]
    topic = f"bench-{run}.live"
    stack.create_topics("127.0.0.1:9092", {topic: {}})
    settings = settings_for(run, topic, **{**overrides, "bounded": False, "starting_offsets": "earliest"})
    client = job.build_job(settings).execute_async(f"bench-latency-{run}")
    mongo = MongoClient(settings.mongo_uri.get_secret_value())
    violations = mongo[settings.mongo_database][settings.violations_collection]
    try:
        # Warm-up traffic until its first violation is stored: tasks deployed, Python workers and models up.
        warm_up = traffic.produce(settings.kafka_bootstrap, topic, 200, seed=6, rate=50)
        deadline = time.monotonic() + 300
        while not violations.find_one({"event_id": {"$in": [t["event_id"] for t in warm_up]}}):
            if time.monotonic() > deadline:
                raise RuntimeError("the latency run's job stored nothing of its warm-up traffic in 300 s")
            time.sleep(0.5)
        truths = traffic.produce(settings.kafka_bootstrap, topic, int(rate * seconds), seed=5, rate=rate)
        time.sleep(10)  # the last batches: flushed within the sinks' and scorers' deadlines
    finally:
        client.cancel().result()
    try:
        valid = {t["event_id"] for t in truths if not t["malformed"]}
        docs = list(violations.find({"event_id": {"$in": list(valid)}},
                                    {"event_id": 1, "event_time": 1, "stored_at": 1, "rule_id": 1}))
        consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000)
        appended = {}
        for record in consumer:
            try:
                appended[json.loads(record.value)["event_id"]] = record.timestamp / 1000
            except (ValueError, KeyError, TypeError):  # the stream's malformed share
                continue
        consumer.close()
    finally:
        mongo.close()
        drop_run_data(settings)
        stack.delete_topics(settings.kafka_bootstrap, [topic])
    from udfs.rules import load_rules

    sequences = {rule.id for rule in load_rules(settings.rules_path).rules if rule.match.type == "sequence"}
    out: dict[str, list[float]] = {stage: [] for stage in (*STAGES, *KINDS)}
    for d in docs:
        # MongoDB returns naive UTC datetimes
        event, stored = (d[key].replace(tzinfo=timezone.utc).timestamp() for key in ("event_time", "stored_at"))
        append = appended.get(d["event_id"], event)
        for stage, value in zip(STAGES, (append - event, stored - append, stored - event)):
            out[stage].append(value)
        out[KINDS[d["rule_id"] in sequences]].append(stored - event)
    return {stage: sorted(values) for stage, values in out.items()}


def rules_for(folder: Path, scorers: tuple[str, ...] = ()) -> Path:
    """The default ruleset less the rules that read a scorer not in `scorers` (a job must not run them)."""
    import yaml

    def reads(rule: dict) -> str | None:
        return {"score": rule["match"].get("scorer"), "entities": "entities"}.get(rule["match"]["type"])

    folder = folder / "-".join(scorers or ("none",))
    shutil.copytree(ROOT / "rules", folder, dirs_exist_ok=True)  # with the keyword lists it names
    path = folder / "default.yaml"
    rules = yaml.safe_load((ROOT / "rules" / "default.yaml").read_text())
    rules["rules"] = [r for r in rules["rules"] if reads(r) in (None, *scorers)]
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def pct(values: list[float], q: float) -> float:
    if not values:
        raise RuntimeError("the latency run stored no violations of its live events")
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events of the large run (pass-through, rules only)")
    parser.add_argument("--scored-events", type=int, default=4000, help="events of the large run with scorers")
    parser.add_argument("--small", type=int, default=1000, help="events of the small run of each pair")
    parser.add_argument("--rate", type=float, help="events/s of the live traffic for the latency run "
                                                   "(default: half the best audit rate, rules only)")
    parser.add_argument("--modes", default="process,thread", help="Python execution modes to try")
    parser.add_argument("--parallelism", type=int, default=1, help="parallelism of every job")
    parser.add_argument("--latency-seconds", type=float, default=60, help="seconds of live traffic per latency run")
    args = parser.parse_args()

    stack.up()
    bootstrap = "127.0.0.1:9092"
    topic = f"bench-{uuid.uuid4().hex[:8]}.events"
    stack.create_topics(bootstrap, {topic: {}}, partitions=args.parallelism)  # a source reader per subtask
    console.print(f"producing {args.events} events to {topic}")
    traffic.produce(bootstrap, topic, args.events, seed=11, start_ms=1_790_000_000_000)
    sample = [len(s.value.encode()) for s in traffic.generate(2000, seed=11, start_ms=1_790_000_000_000)]
    size = round(sum(sample) / len(sample))
    small = head_topic(topic, args.small, bootstrap, args.parallelism)
    scored = head_topic(topic, args.scored_events, bootstrap, args.parallelism)

    rules_folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-rules-{uuid.uuid4().hex[:8]}"
    try:
        measure(args, topic, small, scored, size, rules_folder)
    finally:
        stack.delete_topics(bootstrap, [topic, small, scored])
        shutil.rmtree(rules_folder, ignore_errors=True)


# The scorer configurations measured: the defaults of session 24 (toxicity and bias), and the defaults now.
MODELS = {"toxicity+bias": ("toxicity", "bias"),
          "default models": tuple(AuditJobSettings.model_fields["scorers"].default)}


def rate_text(value: float | None) -> str:
    return f"{value:,.0f}" if value else "n/a"


def ratio_text(value: float | None, base: float | None, digits: int) -> str:
    return f"{value / base:.{digits}f}×" if value and base else ""


def measure(args, topic: str, small: str, scored: str, size: int, rules_folder: Path) -> None:
    """Every job's rate, the tables, and the latency run."""
    # The first job of a process also starts the JVM gateway: a warm-up run keeps that out of the pairs.
    timed(pass_through, settings_for(uuid.uuid4().hex[:8], small))
    rules_only = {"scorers": []}
    rules_only_rules = rules_for(rules_folder)
    values = [s.value for s in traffic.generate(min(args.events, 50_000), seed=11, start_ms=1_790_000_000_000)]
    engine = engine_rate(rules_only_rules, values)
    console.print(f"  engine (plain Python, parse and rules): {engine:,.0f} events/s")
    consumer = hand_rolled_consumer(topic, args.events, rules_only_rules)
    console.print(f"  hand-rolled consumer: {consumer:,.0f} events/s")
    scoring = {name: scorer_rate(values[:args.scored_events], scorers) for name, scorers in MODELS.items()}
    for name, value in scoring.items():
        console.print(f"  scorers ({name}), batched in plain Python: {value:,.0f} events/s")
    rows, floors = [], {}
    for mode in args.modes.split(","):
        mode_overrides = {"python_execution_mode": mode, "parallelism": args.parallelism}
        try:
            passed, _ = rate_of(f"pass-through ({mode})", pass_through, {args.small: small, args.events: topic},
                                mode_overrides)
            rules, _ = rate_of(f"audit, rules only ({mode})", job.build_job, {args.small: small, args.events: topic},
                               {**mode_overrides, **rules_only, "rules_path": rules_only_rules})
        except Exception as exc:  # noqa: BLE001 - a mode PyFlink cannot run is a result too
            causes = [line.strip() for line in str(exc).splitlines() if line.strip().startswith("Caused by")]
            console.print(f"[red]{mode} mode failed[/]: {(causes or [str(exc)])[-1][:400]}")
            rows.append((mode, None, None, None, None))
            continue
        scores = [rate_of(f"audit, {name} ({mode})", job.build_job, {args.small: small, args.scored_events: scored},
                          {**mode_overrides, "scorers": list(scorers), "rules_path": rules_for(rules_folder, scorers)})[0]
                  for name, scorers in MODELS.items()]
        rows.append((mode, passed, rules, *scores))
        if mode == "process":  # where the audit's time goes: the same shape with less and less in it
            empty = Path(rules_only_rules).with_name("empty.yaml")
            empty.write_text("rules: []\n")
            floors = {
                "pass-through": passed,
                "parse only (the audit's shape, no audit)": rate_of("parse only", parse_only,
                                                                          {args.small: small, args.events: topic},
                                                                          mode_overrides)[0],
                "parse and rules, one non-keyed operator (no windows, no stores)": rate_of(
                    "parse and rules, non-keyed", unkeyed_rules(rules_only_rules), {args.small: small, args.events: topic},
                    mode_overrides)[0],
                "audit, no rules (parse, windows, sinks)": rate_of(
                    "audit, no rules", job.build_job, {args.small: small, args.events: topic},
                    {**mode_overrides, **rules_only, "rules_path": empty})[0],
                "audit, rules only": rules,
            }

    batched = ", ".join(f"{name} {value:,.0f}" for name, value in scoring.items())
    title = (f"events/s, generator events of ~{size} bytes, parallelism {args.parallelism}, {os.cpu_count()} CPUs; "
             f"engine {engine:,.0f}, consumer {consumer:,.0f}, scorers batched: {batched}")
    table = Table("python mode", "pass-through", "audit, rules only", "÷ engine", "÷ consumer",
                  *(column for name in MODELS for column in (f"audit, {name}", "÷ batched")), title=title)
    for mode, passed, rules, *scores in rows:
        if passed is None:
            table.add_row(mode, "failed", *[""] * (3 + 2 * len(MODELS)))
            continue
        table.add_row(mode, rate_text(passed), rate_text(rules), ratio_text(rules, engine, 2),
                      ratio_text(rules, consumer, 2),
                      *(cell for value, name in zip(scores, MODELS)
                        for cell in (rate_text(value), ratio_text(value, scoring[name], 2))))
    Console().print(table)
    if floors:
        breakdown = Table("job (process mode)", "events/s", "ratio to pass-through", title="where the audit's time goes")
        for name, value in floors.items():
            breakdown.add_row(name, rate_text(value), ratio_text(value, floors["pass-through"], 2))
        Console().print(breakdown)

    best_of = {i: max((r[i] or 0 for r in rows), default=0) or None for i in (1, 2, 3, 4)}
    lat: dict[str, dict[str, list[float]]] = {}
    measured = [r for r in rows if r[2] is not None]
    if measured:
        # The job's default mode, as users run it; another mode only if the default did not run.
        default = AuditJobSettings.model_fields["python_execution_mode"].default
        chosen = next((r for r in measured if r[0] == default), max(measured, key=lambda r: r[2]))
        mode = chosen[0]
        runs = {"rules only": ({**rules_only, "rules_path": rules_only_rules}, args.rate or chosen[2] / 2),
                "the default models": ({}, (chosen[4] or 0) / 2)}
        table = Table("stage", *(f"{name}: {q}" for name in runs for q in ("p50", "p99", "p99.9")),
                      title=f"latency (ms), {mode} mode, live traffic at half each configuration's rate: "
                            + ", ".join(f"{name} {r:.0f} events/s" for name, (_, r) in runs.items()))
        for name, (overrides, live_rate) in runs.items():
            if live_rate:
                lat[name] = latency({"python_execution_mode": mode, **overrides}, live_rate, args.latency_seconds)
                console.print(f"  latency, {name}: {len(lat[name][STAGES[-1]])} violations")
        for stage in (*STAGES, *(f"event time -> stored, {kind}" for kind in KINDS)):
            key = stage.rpartition(", ")[2] if stage.endswith(KINDS) else stage
            table.add_row(stage, *(f"{pct(lat[name][key], q) * 1000:,.0f}" if lat.get(name, {}).get(key) else "n/a"
                                   for name in runs for q in (0.5, 0.99, 0.999)))
        Console().print(table)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    def figure(value):
        return "n/a" if value is None else f"{value:.0f}"

    def ms(name: str, q: float, key: str = STAGES[-1]) -> str:
        return figure(pct(lat[name][key], q) * 1000 if lat.get(name, {}).get(key) else None)

    print(f"SUMMARY engine_eps={figure(engine)} consumer_eps={figure(consumer)} passthrough_eps={figure(best_of[1])} "
          f"audit_rules_eps={figure(best_of[2])} audit_scorers_eps={figure(best_of[3])} "
          f"audit_default_eps={figure(best_of[4])} p50_ms={ms('rules only', 0.5)} p99_ms={ms('rules only', 0.99)} "
          f"p999_ms={ms('rules only', 0.999)} per_event_p99_ms={ms('rules only', 0.99, KINDS[0])} "
          f"models_p50_ms={ms('the default models', 0.5)} models_p99_ms={ms('the default models', 0.99)} "
          f"models_per_event_p99_ms={ms('the default models', 0.99, KINDS[0])}")


if __name__ == "__main__":
    main()
