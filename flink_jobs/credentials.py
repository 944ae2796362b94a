"""Credentials the job's operators read where they run, never carried in the job graph.

(Not named secrets.py: `flink run -py flink_jobs/streaming/job.py` puts this folder first on sys.path, where
such a module hides the standard library's `secrets`, which numpy imports.)

Flink ships every Python operator pickled in the job graph: to the JobManager at each submission, into
each TaskManager, and with the graph into the JobManager's HA store and savepoints' metadata. An operator
holding the MongoDB URI, the InfluxDB token or the archive key would spread them to all of those. It holds
a `Secret` instead, which names where the value is:
- its environment variable (LLM_AUDIT_MONGO_URI, ...), as on Kubernetes and compose, where every
  JobManager and TaskManager pod gets the same variables from the same Secret;
- or, for a value that Flink's processes do not have in their environment (given in code: a local run,
  a test), a file only this user can read, under the cache, named by the value's digest.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from udfs.cache import cache_dir


@dataclass(frozen=True)
class Secret:
    """Where an operator finds a credential at open(); its repr and pickle hold no value."""

    env: str  # the variable that holds it
    file: str | None = None  # or a private file that does (a value not from the environment)

    def value(self) -> str:
        if self.file is not None:
            return Path(self.file).read_text(encoding="utf-8")
        try:
            return os.environ[self.env]
        except KeyError:
            raise RuntimeError(
                f"{self.env} is not set where this operator runs: give the TaskManagers the same variable as the "
                "JobManager (on Kubernetes, the same secretKeyRef in the pod template both use)"
            ) from None


def reveal(value: str | Secret) -> str:
    """The credential itself, for the stores' clients (a plain str is one given by a test or a tool)."""
    return value.value() if isinstance(value, Secret) else value


def secret(env: str, value: SecretStr) -> Secret:
    """A Secret for a setting's value: its variable when Flink's processes have it, else a private file."""
    text = value.get_secret_value()
    if _flink_env(env) == text:
        return Secret(env)
    folder = cache_dir() / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / hashlib.sha256(f"{env}\0{text}".encode()).hexdigest()[:32]
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    return Secret(env, str(path))


def _flink_env(name: str) -> str | None:
    """The variable as Flink's JVM has it: the operators' processes inherit its environment (on a cluster, the
    pods' own, from the same Secret). A local MiniCluster's JVM started before this process set it has not."""
    from pyflink.java_gateway import get_gateway

    return get_gateway().jvm.System.getenv(name)
