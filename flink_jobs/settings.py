"""Settings of the audit job: every endpoint, name and credential, from LLM_AUDIT_* env vars."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from console.settings import PREFIX, InfluxSettings, MongoSettings
from udfs.archive import TextCipher
from udfs.events import FieldBounds
from udfs.scorers.suite import DEFAULT_CONFIG as DEFAULT_SCORERS_CONFIG
from udfs.signing import trusted_keys


class SettingsError(ValueError):
    """A setting with an invalid value; the message names its env var and the valid options."""


# File systems Flink reaches: its own (file), its plugins' (S3, GCS, Azure, OSS) and Hadoop's.
FLINK_SCHEMES = ("file", "s3", "s3a", "s3p", "gs", "abfs", "abfss", "wasb", "wasbs", "oss", "hdfs", "viewfs", "webhdfs")
# Object stores: the URI names the bucket (or container) as its authority.
_BUCKETED = ("s3", "s3a", "s3p", "gs", "abfs", "abfss", "wasb", "wasbs", "oss")
_EXAMPLE = "s3://bucket/path"


def flink_uri(value: str, *, bare_path: bool) -> str:
    """A file system URI that Flink accepts; bare_path: an absolute path without a scheme is fine too
    (the option falls back to the local file system, while execution.checkpointing.dir refuses it).

    A relative path is refused everywhere: each JobManager, TaskManager and CLI would resolve it
    against its own working directory.
    """
    parts = urlsplit(value)
    scheme = parts.scheme
    if not scheme:
        if not value.startswith("/"):
            absolute = "an absolute path or a URI" if bare_path else "a URI"
            raise ValueError(f"is a relative path; Flink needs {absolute} such as file:///absolute/path or {_EXAMPLE}")
        if not bare_path:
            raise ValueError(f"has no scheme; Flink needs a URI such as {Path(value).as_uri()} or {_EXAMPLE}")
        return value
    if scheme not in FLINK_SCHEMES:
        raise ValueError(f"scheme {scheme!r} is no file system of Flink's; valid: {', '.join(FLINK_SCHEMES)}")
    if scheme == "file" and parts.netloc:
        # Flink refuses a host in a local path: file://tmp/x is host 'tmp', path /x.
        raise ValueError(
            f"names host {parts.netloc!r}; a local path takes three slashes: file:///{parts.netloc}{parts.path}"
        )
    if scheme in _BUCKETED and not parts.netloc:
        raise ValueError(f"names no bucket; Flink needs {scheme}://bucket/path")
    return value


# Kafka's rule for topic names (org.apache.kafka.common.internals.Topic).
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


_BOUNDS = FieldBounds()  # the event fields' default bounds, defined once in udfs.events


class AuditJobSettings(MongoSettings, InfluxSettings):
    """Audit job configuration. Each field reads the env var LLM_AUDIT_<FIELD NAME IN CAPITALS>; the MongoDB and
    InfluxDB ones are MongoSettings' and InfluxSettings' (console/settings.py), shared with the console."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="forbid")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    """LLM_AUDIT_KAFKA_BOOTSTRAP: Kafka bootstrap servers, comma-separated."""
    source_topic: str = "model-audit-logs"
    """LLM_AUDIT_SOURCE_TOPIC: topic of audit events (schema v1)."""
    dlq_topic: str = "model-audit-dlq"
    """LLM_AUDIT_DLQ_TOPIC: where malformed events go, with the reason."""
    group_id: str = Field(default="llm-audit", min_length=1)
    """LLM_AUDIT_GROUP_ID: consumer group; offsets live in checkpoints, the group only reports lag."""
    starting_offsets: Literal["earliest", "latest", "committed"] = "committed"
    """LLM_AUDIT_STARTING_OFFSETS: where a job without a checkpoint starts; 'committed' falls back to earliest."""
    bounded: bool = False
    """LLM_AUDIT_BOUNDED: stop once the offsets that were latest at start are consumed (demo, tests, backfill)."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """LLM_AUDIT_KAFKA_SECURITY_PROTOCOL: how the job talks to the brokers (source, rules topic and DLQ alike)."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    """LLM_AUDIT_KAFKA_SASL_MECHANISM: SASL mechanism, with SASL_PLAINTEXT or SASL_SSL."""
    kafka_sasl_username: str | None = None
    """LLM_AUDIT_KAFKA_SASL_USERNAME: SASL user; required with a SASL_* protocol."""
    kafka_sasl_password: SecretStr | None = None
    """LLM_AUDIT_KAFKA_SASL_PASSWORD: SASL password; required with a SASL_* protocol."""
    kafka_ssl_truststore_path: str | None = None
    """LLM_AUDIT_KAFKA_SSL_TRUSTSTORE_PATH: PEM or JKS/PKCS12 file of the CAs to trust (SSL, SASL_SSL); unset: the JVM's."""
    kafka_ssl_truststore_password: SecretStr | None = None
    """LLM_AUDIT_KAFKA_SSL_TRUSTSTORE_PASSWORD: password of a JKS/PKCS12 truststore."""
    kafka_ssl_keystore_path: str | None = None
    """LLM_AUDIT_KAFKA_SSL_KEYSTORE_PATH: client certificate keystore, for brokers that require mutual TLS."""
    kafka_ssl_keystore_password: SecretStr | None = None
    """LLM_AUDIT_KAFKA_SSL_KEYSTORE_PASSWORD: password of the client keystore."""

    # Rules
    rules_path: Path = Path("rules/default.yaml")
    """LLM_AUDIT_RULES_PATH: YAML ruleset the job starts with; a missing file is an error."""
    rules_topic: str = "audit-rules"
    """LLM_AUDIT_RULES_TOPIC: compacted topic of pushed rulesets (`llm-audit rules push`); the newest valid push wins."""
    ruleset_name: str = "default"
    """LLM_AUDIT_RULESET_NAME: which pushed ruleset this job follows (the record key on the rules topic)."""
    rules_trusted_keys: list[str] = []
    """LLM_AUDIT_RULES_TRUSTED_KEYS: JSON list of Ed25519 public keys (base64, the .pub of `llm-audit rules keygen`);
    the job runs only pushes signed by one of them and records the rest as rejected (k8s: a Secret)."""
    rules_allow_unsigned: bool = False
    """LLM_AUDIT_RULES_ALLOW_UNSIGNED: also run unsigned pushes (local use: anyone who can write the rules
    topic then sets the rules). Loud: a warning at start, and the `rules` point's `unsigned` field (alert
    llm-audit-rules-unsigned) while unsigned rules run. Without it, LLM_AUDIT_RULES_TRUSTED_KEYS is required."""
    max_id_chars: int = Field(default=_BOUNDS.id_chars, ge=1)
    """LLM_AUDIT_MAX_ID_CHARS: the most characters of each identifier of an event (event_id, tenant, application,
    model, model_version, user_id, session_id); longer, or with a control character, it is a dead letter."""
    max_text_chars: int = Field(default=_BOUNDS.text_chars, ge=1)
    """LLM_AUDIT_MAX_TEXT_CHARS: the most characters of an event's prompt and of its response; longer is a dead letter.
    (The rules inspect the first limits.max_text_chars of a text, 1 MiB by default, and report the rest as not inspected.)"""
    max_metadata_bytes: int = Field(default=_BOUNDS.metadata_bytes, ge=2)
    """LLM_AUDIT_MAX_METADATA_BYTES: the most bytes of an event's metadata as UTF-8 JSON; more is a dead letter."""
    store_raw_text: bool = False
    """LLM_AUDIT_STORE_RAW_TEXT: also store the raw prompt/response text in violations (off: spans and redacted snippets only)."""

    # Scorers
    scorers: list[Literal["toxicity", "bias", "entities", "injection"]] = ["toxicity", "bias", "entities", "injection"]
    """LLM_AUDIT_SCORERS: JSON list of the model scorers to run on every prompt and response; [] for rules only.
    "entities" finds names of people, places and organisations for the `entities` rules (pii.person, ...);
    "injection" scores prompt sentences by their closeness to known attacks, for `injection.similar`."""
    scorers_path: Path = DEFAULT_SCORERS_CONFIG
    """LLM_AUDIT_SCORERS_PATH: YAML of the scorers' models (backends, checkpoints, label maps); see docs/scorers.md."""
    scorer_device: str = "auto"
    """LLM_AUDIT_SCORER_DEVICE: auto (a GPU when the TaskManager has one), cpu, cuda or cuda:N."""
    score_batch_size: int = Field(default=64, ge=1, le=4096)
    """LLM_AUDIT_SCORE_BATCH_SIZE: events scored in one batch (each of their texts in one forward pass)."""
    score_max_wait_ms: int = Field(default=200, ge=1)
    """LLM_AUDIT_SCORE_MAX_WAIT_MS: the longest an event waits for its batch to fill."""

    # Anomaly detection, per (tenant, model)
    anomaly_window_s: int = Field(default=60, ge=1)
    """LLM_AUDIT_ANOMALY_WINDOW_S: tumbling event-time window whose statistics are judged against the baseline."""
    anomaly_threshold: float = Field(default=6.0, gt=0)
    """LLM_AUDIT_ANOMALY_THRESHOLD: deviations (EWMA of absolute deviation) from the baseline that make an anomaly."""
    anomaly_warmup: int = Field(default=10, ge=1)
    """LLM_AUDIT_ANOMALY_WARMUP: windows a key must have had before it can raise an anomaly."""
    anomaly_min_events: int = Field(default=20, ge=1)
    """LLM_AUDIT_ANOMALY_MIN_EVENTS: windows with fewer events are judged on their volume only."""

    # MongoDB, besides MongoSettings' MONGO_URI, MONGO_DATABASE, VIOLATIONS_COLLECTION and ANOMALIES_COLLECTION
    rule_changes_collection: str = "rule_changes"
    """LLM_AUDIT_RULE_CHANGES_COLLECTION: every push the job saw, accepted or rejected, with the reason."""
    violations_ttl_days: int | None = Field(default=None, ge=1)
    """LLM_AUDIT_VIOLATIONS_TTL_DAYS: delete violations this many days after their event time (TTL index); unset keeps them."""

    # InfluxDB, besides InfluxSettings' INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG and INFLUX_BUCKET
    metrics_window_s: int = Field(default=10, ge=1)
    """LLM_AUDIT_METRICS_WINDOW_S: event-time window of the per-tenant, per-model counters."""

    # Archive (docs/archive.md)
    archive_dir: str | None = None
    """LLM_AUDIT_ARCHIVE_DIR: where every valid event is archived once, as Parquet under date=YYYY-MM-DD/tenant=T/
    (file:///..., s3a://...); files are committed at checkpoints. Unset: no archive."""
    archive_text: Literal["redacted", "none", "encrypted"] = "redacted"
    """LLM_AUDIT_ARCHIVE_TEXT: the prompt and response in the archive: redacted (every finding's span masked),
    none (spans and snippets only), or encrypted (redacted, plus the raw text under AES-GCM with the archive key)."""
    archive_key: SecretStr | None = None
    """LLM_AUDIT_ARCHIVE_KEY: base64 of a 32-byte AES key, for archive_text=encrypted; its id is stored in every row."""

    # Sinks
    outputs: list[Literal["violations", "rule_changes", "anomalies", "metrics", "dead_letters", "archive"]] = [
        "violations",
        "rule_changes",
        "anomalies",
        "metrics",
        "dead_letters",
        "archive",
    ]
    """LLM_AUDIT_OUTPUTS: JSON list of what the job writes (`llm-audit replay` writes violations only);
    the archive needs LLM_AUDIT_ARCHIVE_DIR too."""
    sink_batch_size: int = Field(default=500, ge=1)
    """LLM_AUDIT_SINK_BATCH_SIZE: documents or points per MongoDB bulk write / InfluxDB request."""
    sink_max_wait_ms: int = Field(default=200, ge=1)
    """LLM_AUDIT_SINK_MAX_WAIT_MS: the longest a document or point waits for its batch (buffered in checkpointed state)."""

    # Flink
    parallelism: int = Field(default=1, ge=1)
    """LLM_AUDIT_PARALLELISM: default operator parallelism."""
    checkpoint_interval_ms: int = Field(default=5000, ge=100)
    """LLM_AUDIT_CHECKPOINT_INTERVAL_MS: exactly-once checkpoint interval."""
    checkpoint_dir: str | None = None
    """LLM_AUDIT_CHECKPOINT_DIR: checkpoint storage URI (file:///..., s3://...), retained on cancel; unset keeps Flink's config."""
    restore_from: str | None = None
    """LLM_AUDIT_RESTORE_FROM: a checkpoint or savepoint (file:///..., s3://...; its chk-N or savepoint-* directory)
    to start from."""
    state_backend: Literal["hashmap", "rocksdb"] = "hashmap"
    """LLM_AUDIT_STATE_BACKEND: hashmap (state on the heap) or rocksdb (state on local disk, incremental checkpoints)."""
    restart_attempts: int = Field(default=3, ge=0)
    """LLM_AUDIT_RESTART_ATTEMPTS: restarts from the last checkpoint before the job fails."""
    restart_delay_s: int = Field(default=5, ge=0)
    """LLM_AUDIT_RESTART_DELAY_S: pause before each restart."""
    max_out_of_orderness_s: int = Field(default=5, ge=0)
    """LLM_AUDIT_MAX_OUT_OF_ORDERNESS_S: how late an event may arrive and still count in its window."""
    idleness_s: int = Field(default=30, ge=1)
    """LLM_AUDIT_IDLENESS_S: a partition silent this long no longer holds the watermark back."""
    pipeline_jars: list[str] = []
    """LLM_AUDIT_PIPELINE_JARS: JSON list of jar URLs to ship (local runs); a cluster has them in /opt/flink/lib."""
    python_executable: str | None = None
    """LLM_AUDIT_PYTHON_EXECUTABLE: Python of the workers; unset keeps Flink's config."""
    python_execution_mode: Literal["process", "thread"] = "thread"
    """LLM_AUDIT_PYTHON_EXECUTION_MODE: Python functions embedded in the JVM (thread: ~1.25x the audit's rate
    here, timers checkpointed as they are asked for), or in a separate worker process. The scorer runs in a
    worker process either way: torch hangs in the embedded interpreter's open()."""
    python_bundle_size: int = Field(default=1000, ge=1)
    """LLM_AUDIT_PYTHON_BUNDLE_SIZE: elements per bundle sent to the Python worker (process mode)."""
    python_bundle_time_ms: int = Field(default=100, ge=1)
    """LLM_AUDIT_PYTHON_BUNDLE_TIME_MS: the longest a bundle waits before it is sent (process mode)."""
    flink_config: dict[str, str] = {}
    """LLM_AUDIT_FLINK_CONFIG: JSON object of further Flink options (e.g. metrics reporters); applied last."""

    @field_validator("source_topic", "dlq_topic", "rules_topic")
    @classmethod
    def _kafka_topic_name(cls, value: str) -> str:
        if not _TOPIC.fullmatch(value) or value in (".", ".."):
            raise ValueError("is not a Kafka topic name: 1 to 249 of the characters a-z A-Z 0-9 . _ -")
        return value

    @field_validator("checkpoint_dir")
    @classmethod
    def _checkpoint_uri(cls, value: str | None) -> str | None:
        return value and flink_uri(value, bare_path=False)

    @field_validator("restore_from", "archive_dir")
    @classmethod
    def _path_or_uri(cls, value: str | None) -> str | None:
        return value and flink_uri(value, bare_path=True)

    @field_validator("pipeline_jars")
    @classmethod
    def _jar_urls(cls, value: list[str]) -> list[str]:
        for jar in value:
            if len(urlsplit(jar).scheme) < 2:
                example = Path(jar).as_uri() if jar.startswith("/") else "file:///absolute/path.jar"
                raise ValueError(f"{jar!r} is not a URL; Flink needs one such as {example}")
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> AuditJobSettings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol={self.kafka_security_protocol} needs LLM_AUDIT_KAFKA_SASL_USERNAME "
                "and LLM_AUDIT_KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _trusted_keys_are_keys(self) -> AuditJobSettings:
        trusted_keys(self.rules_trusted_keys)  # names a key that is not one
        if not self.rules_trusted_keys and not self.rules_allow_unsigned:
            raise ValueError(
                "rule pushes must be signed, and no key is trusted: set LLM_AUDIT_RULES_TRUSTED_KEYS to the public "
                "keys of who may push (`llm-audit rules keygen`), or LLM_AUDIT_RULES_ALLOW_UNSIGNED=true for local use"
            )
        return self

    def field_bounds(self) -> FieldBounds:
        return FieldBounds(self.max_id_chars, self.max_text_chars, self.max_metadata_bytes)

    @model_validator(mode="after")
    def _encrypted_archive_needs_a_key(self) -> AuditJobSettings:
        if self.archive_text == "encrypted":
            if self.archive_key is None:
                raise ValueError("archive_text=encrypted needs LLM_AUDIT_ARCHIVE_KEY (base64 of 32 random bytes)")
            TextCipher.from_base64(self.archive_key.get_secret_value())  # names what is wrong with it
        return self


# Other settings that share the prefix: the local stack's, the cache's and the review console's.
_OTHER_VARS = ("LLM_AUDIT_STACK_", "LLM_AUDIT_CACHE", "LLM_AUDIT_CONSOLE_")


def load_settings(**overrides) -> AuditJobSettings:
    """AuditJobSettings from the environment (and overrides), with errors that name the env var.

    An LLM_AUDIT_* variable that no setting reads is an error too: a misspelt variable would
    otherwise leave its setting at the default without a word.
    """
    prefix = AuditJobSettings.model_config["env_prefix"]
    known = {prefix + name.upper() for name in AuditJobSettings.model_fields}
    unknown = sorted(
        var for var in os.environ if var.startswith(prefix) and var not in known and not var.startswith(_OTHER_VARS)
    )
    if unknown:
        raise SettingsError(f"unknown environment variables {unknown}; valid: {', '.join(sorted(known))}")
    try:
        return AuditJobSettings(**overrides)
    except ValidationError as exc:
        problems = [
            # A check across fields has no location, and its input (every setting) may hold secrets.
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}={err['input']!r}: "
            + err["msg"].removeprefix("Value error, ")
            if err["loc"]
            else err["msg"].removeprefix("Value error, ")
            for err in exc.errors(include_url=False)
        ]
        raise SettingsError("invalid audit job settings: " + "; ".join(problems)) from None
