"""The Parquet archive's sink: Flink SQL's filesystem sink (the FileSink's bucket writers, bulk Parquet format).

Part files are written in-progress under hidden names (`.part-*`) and committed at checkpoints, so a
reader sees whole checkpoints only and a restore never duplicates a row; partitions are Hive-style,
date=YYYY-MM-DD/tenant=T/ (T: udfs.archive.tenant_partition, bounded). The job's image and local runs
ship flink-sql-parquet with Hadoop's shaded client (the Parquet writer's configuration classes), see
devstack.artifacts.archive_jars. flink_jobs.offline.reader reads it.
"""

from __future__ import annotations

import uuid

from pyflink.datastream import DataStream
from pyflink.table import StreamTableEnvironment

from flink_jobs.pyflink_internals import table_env_of
from udfs.archive import ARCHIVE_COLUMNS, PARTITION_COLUMNS

# Part files roll at every checkpoint (bulk formats can only); these bound a file between two.
ROLLING = {"sink.rolling-policy.file-size": "128MB", "sink.rolling-policy.rollover-interval": "15 min"}


def archive_table(t_env: StreamTableEnvironment, path: str, extra: dict[str, str] | None = None) -> str:
    """Declares the archive under `path` as a temporary table (sink or source) -> its name."""
    name = f"archive_{uuid.uuid4().hex[:8]}"
    columns = ", ".join(f"`{column}` {kind}" for column, kind in ARCHIVE_COLUMNS.items())
    options = {"connector": "filesystem", "path": path, "format": "parquet", **(extra or {})}
    with_ = ", ".join(f"'{key}' = '{value}'" for key, value in options.items())
    partitions = ", ".join(f"`{column}`" for column in PARTITION_COLUMNS)
    t_env.execute_sql(f"CREATE TEMPORARY TABLE {name} ({columns}) PARTITIONED BY ({partitions}) WITH ({with_})")
    return name


def write_archive(rows: DataStream, path: str) -> None:
    """Adds the archive's sink for ARCHIVED rows to their job (executed with the rest of it)."""
    t_env = table_env_of(rows)
    # Uids of the planner's own, not hashes of the topology: the writer chains to its committer at
    # parallelism 1 and not at 2, which would change a hash and orphan the writer's state on a rescale.
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")
    t_env.get_config().set("table.exec.uid.format", "archive_<type>_<version>_<transformation>")
    name = archive_table(t_env, path, ROLLING)
    statements = t_env.create_statement_set()
    statements.add_insert(name, t_env.from_data_stream(rows))
    statements.attach_as_datastream()
