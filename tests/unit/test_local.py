import os

from flink_jobs.local import latest_checkpoint


def _checkpoint(root, job: str, n: int, written_ns: int):
    chk = root / job / f"chk-{n}"
    chk.mkdir(parents=True)
    (chk / "state-file").write_bytes(b"x")
    meta = chk / "_metadata"
    meta.write_bytes(b"m")
    os.utime(meta, ns=(written_ns, written_ns))
    return chk


def test_the_latest_checkpoint_is_the_last_metadata_written_not_the_last_directory_touched(tmp_path):
    older = _checkpoint(tmp_path, "job-a", 7, 1_000_000_000)
    newer = _checkpoint(tmp_path, "job-a", 8, 2_000_000_000)
    # Flink discarding chk-7 after chk-8 completed: its state files go first, its _metadata last, so a
    # kill mid-discard leaves chk-7 complete-looking with the newest directory time.
    (older / "state-file").unlink()
    os.utime(older, ns=(3_000_000_000, 3_000_000_000))
    (tmp_path / "job-b" / "chk-x").mkdir(parents=True)  # not a checkpoint Flink wrote
    (tmp_path / "job-b" / "chk-x" / "_metadata").write_bytes(b"m")
    assert latest_checkpoint(tmp_path.as_uri()) == newer.as_uri()


def test_checkpoint_ids_break_a_tie_and_an_empty_dir_has_none(tmp_path):
    assert latest_checkpoint(tmp_path.as_uri()) is None
    _checkpoint(tmp_path, "job-a", 9, 5_000_000_000)
    restored = _checkpoint(tmp_path, "job-b", 10, 5_000_000_000)  # ids go on across a restore
    assert latest_checkpoint(tmp_path.as_uri()) == restored.as_uri()
