"""Where flink_jobs.streaming.records lived before 0.2: savepoints taken before then hold SequenceHit
pickled under this name (the sequence rules' keyed state), and restoring them needs it importable."""

from flink_jobs.streaming.records import SequenceHit

__all__ = ["SequenceHit"]
