"""Every use of PyFlink internals (`_j_*` fields, the Py4J gateway, Java classes PyFlink does not wrap),
each with the reason the public API does not do. flink-python 2.3.0: re-read these on an upgrade.
"""

from __future__ import annotations

from contextlib import contextmanager

from pyflink.common import Instant, Types, WatermarkStrategy
from pyflink.datastream import DataStream, KeyedStream, OutputTag, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment, Table
from pyflink.util.java_utils import get_j_env_configuration


def with_event_time(stream: DataStream, strategy: WatermarkStrategy, value_type) -> DataStream:
    """(value, event time) tuples -> the values, stamped with that time and watermarked by `strategy`.

    The same Java operators as PyFlink's assign_timestamps_and_watermarks with a Python
    TimestampAssigner, less its extra Python operator: the upstream function emits the time itself.
    Also what re-stamps a side output in thread mode, which PyFlink emits without a timestamp.
    """
    java = get_gateway().jvm.org.apache.flink.streaming.api.functions.python.eventtime
    stamped = stream._j_data_stream.assignTimestampsAndWatermarks(
        strategy._j_watermark_strategy.withTimestampAssigner(java.CustomTimestampAssigner())
    )
    return DataStream(stamped.map(java.RemoveTimestampMapFunction(), value_type.get_java_type_info()))


def keyed(stream: DataStream, key_type=Types.PICKLED_BYTE_ARRAY()) -> KeyedStream:
    """A stream of Row(key, value, ...) keyed by its first field, in Java; keyed functions see the value.

    PyFlink's key_by runs the key selector as one more Python operator; here the function upstream
    (or Flink SQL) emits the key with the value.
    """
    j_keyed = stream._j_data_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([key_type]).get_java_type_info()
    )
    return KeyedStream(j_keyed, Types.PICKLED_BYTE_ARRAY(), stream)


def table_env_of(source: DataStream | Table | StreamExecutionEnvironment) -> StreamTableEnvironment:
    """A Table's own table environment (a query must stay in it), or a new one on a stream's or an
    environment's execution environment, so that SQL steps join the same job. PyFlink exposes
    neither a Table's environment nor a DataStream's."""
    if isinstance(source, Table):
        return source._t_env
    if isinstance(source, DataStream):
        source = StreamExecutionEnvironment(source._j_data_stream.getExecutionEnvironment())
    return StreamTableEnvironment.create(source)


def side_output(stream: DataStream, tag: OutputTag) -> DataStream:
    """The stream of a Python operator's side output `tag`, as Java has it. PyFlink's get_side_output
    appends an identity Python map, which costs a round trip per record and, in thread mode, puts a
    second embedded interpreter on the operator's task thread. pemja gives each interpreter its own
    thread state, and a C extension built with pybind11 (google-re2, torch) first imported under the
    second of two thread states of one thread deadlocks in PyGILState_Ensure.

    The tag is also declared to the operator here: PyFlink declares only the tags it finds consumed
    when the job is submitted, and a function yielding an undeclared tag fails the job.
    """
    gateway, j_tag = get_gateway(), tag.get_java_output_tag()
    operator = gateway.jvm.org.apache.flink.python.util.PythonConfigUtil.getOperatorFactory(
        stream._j_data_stream.getTransformation()
    ).getOperator()
    operator.addSideOutputTags(gateway.jvm.java.util.Collections.singletonList(j_tag))
    return DataStream(stream._j_data_stream.getSideOutput(j_tag))


def declare_output_type(stream: DataStream, type_info) -> None:
    """Declare what a table-to-stream conversion emits as `type_info` (it reports an external Row type,
    which keyed() cannot pick a field of in Java)."""
    stream._j_data_stream.getTransformation().setOutputType(type_info.get_java_type_info())


@contextmanager
def python_execution_mode(stream: DataStream, mode: str):
    """Python operators defined inside run in `mode`, whatever the job's python.execution-mode:
    PyFlink picks each operator's runner (embedded in the JVM or a worker process) when the operator
    is defined, from the environment's live configuration."""
    conf = get_j_env_configuration(stream._j_data_stream.getExecutionEnvironment())
    option = get_gateway().jvm.org.apache.flink.python.PythonOptions.PYTHON_EXECUTION_MODE
    before = conf.get(option)
    conf.set(option, mode)
    try:
        yield
    finally:
        conf.set(option, before)


def discard() -> Sink:
    """A terminal for operators whose effect is their own idempotent write (PyFlink wraps no
    discarding sink)."""
    return Sink(get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink())


def stop_with_savepoint(client, directory: str | None) -> None:
    """Stop the job with a draining savepoint (every window closed, every timer fired). PyFlink's
    JobClient.stop_with_savepoint calls a Java signature Flink 2 no longer has."""
    formats = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType
    client._j_job_client.stopWithSavepoint(True, directory, formats.CANONICAL).get()


def epoch_ms(instant) -> int:
    """An INSTANT field's epoch milliseconds: a pyflink Instant in process mode; in thread mode the
    java.time.Instant itself, as pemja passes Java objects it does not convert."""
    return instant.to_epoch_milli() if isinstance(instant, Instant) else instant.toEpochMilli()
