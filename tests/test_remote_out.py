"""Remote --out: staging, pull of what the URI holds, push of finished stages (real pyarrow file systems)."""

from hyperrep_ray import remote_out


def test_push_then_pull_round_trips_a_stage_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERREP_STAGING", str(tmp_path / "staging"))
    uri = f"file://{tmp_path / 'bucket' / 'run'}"
    assert remote_out.is_remote(uri) and remote_out.is_remote("s3://b/run")
    assert not remote_out.is_remote("runs/quick")
    local = remote_out.staging_dir(uri)
    assert local.parent == tmp_path / "staging" and local != remote_out.staging_dir(uri + "2")
    assert remote_out.pull(uri, local) == 0  # nothing there yet: a fresh run

    (local / "zoo" / "checkpoints").mkdir(parents=True)
    (local / "zoo" / "checkpoints" / "shard-00000.parquet").write_bytes(b"PAR1" * 100)
    (local / "zoo" / "stage.json").write_text('{"fingerprint": "abc"}')
    (local / "ae").mkdir()
    (local / "ae" / "partial.pt").write_bytes(b"x")
    remote_out.push(local, uri, "zoo")  # only the finished stage goes up
    remote = tmp_path / "bucket" / "run"
    assert (remote / "zoo" / "checkpoints" / "shard-00000.parquet").read_bytes() == b"PAR1" * 100
    assert not (remote / "ae").exists()

    fresh = tmp_path / "other-node"  # a resubmitted job on another machine resumes from the URI
    assert remote_out.pull(uri, fresh) == 2
    assert (fresh / "zoo" / "stage.json").read_text() == '{"fingerprint": "abc"}'
    assert remote_out.pull(uri, fresh) == 0  # already complete: nothing copied again
    remote_out.push(local, uri)  # everything
    assert (remote / "ae" / "partial.pt").exists()
