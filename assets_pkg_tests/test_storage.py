"""The storage layer against a real S3 server (SeaweedFS): publishing without rename, commit
objects, leases across processes, DuckDB and pyarrow over the store, and the errors a user
gets for a missing bucket, refused credentials or an unreachable endpoint."""

import os
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg import duck, layout
from assets_pkg.io.atomic import atomic_dir, atomic_path
from assets_pkg.io.locks import LockTimeout, hold
from assets_pkg.settings import get_settings
from assets_pkg.storage import StorageError, as_path, check_reachable, is_remote
from assets_pkg.storage import objects
from assets_pkg.storage.arrow import read_table
from assets_pkg.storage.root import _checked


def test_url_root_is_remote_and_layout_resolves_under_it(s3_root):
    root = get_settings().data_root
    assert is_remote(root) and str(root) == s3_root
    assert str(layout.asset_dir(["splits", "train"])) == f"{s3_root}/warehouse/splits/train"
    assert not is_remote(layout.scratch_dir("x")), "scratch must stay on local disk"
    assert not is_remote(get_settings().duckdb_spill_dir)


def test_local_root_stays_a_plain_path(data_root):
    root = get_settings().data_root
    assert type(root).__module__.startswith("pathlib") and not is_remote(root)


def test_atomic_path_publishes_one_object_only_on_success(s3_root):
    final = as_path(s3_root) / "warehouse" / "t" / "x.parquet"
    with atomic_path(final) as tmp:
        pq.write_table(pa.table({"a": [1, 2, 3]}), tmp)
        assert not final.exists(), "nothing is visible before the upload"
    assert read_table(final).num_rows == 3
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            pq.write_table(pa.table({"a": [9]}), tmp)
            raise RuntimeError("writer failed")
    assert read_table(final).num_rows == 3, "a failed write keeps the previous object"


def test_background_uploads_are_all_published_when_the_block_ends(s3_root):
    folder = as_path(s3_root) / "warehouse" / "months"
    with objects.BackgroundUploads(depth=1) as uploads:
        for i in range(3):
            with atomic_path(folder / f"{i}.parquet", uploads) as tmp:
                pq.write_table(pa.table({"a": [i] * (i + 1)}), tmp)
    # leaving the block waited for every PUT: each object is whole, no temp is left behind
    assert [read_table(folder / f"{i}.parquet").num_rows for i in range(3)] == [1, 2, 3]
    assert not list(objects.local_scratch("uploads").glob("*-?.parquet"))


def test_background_uploads_publish_nothing_of_a_failed_write(s3_root):
    folder = as_path(s3_root) / "warehouse" / "failed"
    with pytest.raises(RuntimeError, match="writer failed"):
        with objects.BackgroundUploads(depth=1) as uploads:
            with atomic_path(folder / "ok.parquet", uploads) as tmp:
                pq.write_table(pa.table({"a": [1]}), tmp)
            with atomic_path(folder / "bad.parquet", uploads) as tmp:
                pq.write_table(pa.table({"a": [9]}), tmp)
                raise RuntimeError("writer failed")
    assert objects.object_info(folder / "bad.parquet") is None
    assert not list(objects.local_scratch("uploads").glob("*-bad.parquet"))


def test_a_large_upload_is_streamed_whole_with_its_content_type(s3_root, tmp_path):
    final = as_path(s3_root) / "warehouse" / "big" / "m.parquet"
    local = tmp_path / "m.parquet"
    # not a multiple of the piece size: the last, short piece is sent too
    local.write_bytes(os.urandom(objects.STREAM_UPLOAD_BYTES + objects.STREAM_PIECE_BYTES // 3))
    objects.upload(local, final)
    assert final.read_bytes() == local.read_bytes()
    assert objects.object_info(final)["ContentType"] == "application/vnd.apache.parquet"


def test_a_large_upload_interrupted_mid_stream_publishes_nothing(s3_root, tmp_path):
    """pyarrow completes a dropped output stream with the bytes sent so far: an interrupted
    upload must abort its multipart upload instead (a signal in a step is such an interrupt)."""
    import signal
    import threading

    final = as_path(s3_root) / "warehouse" / "big" / "interrupted.parquet"
    local = tmp_path / "interrupted.parquet"
    with open(local, "wb") as fh:  # sparse: reads as zeros, costs no disk
        fh.truncate(256 * 2**20)
    seen = {}

    def interrupt(signum, frame):
        while frame is not None and frame.f_code.co_name != "_stream_upload":
            frame = frame.f_back
        seen["mid_stream"] = frame is not None and "stream" in frame.f_locals
        raise InterruptedError("step interrupted")

    previous = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(InterruptedError):
            objects.upload(local, final)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert seen["mid_stream"], "the interrupt came before or after the stream: the test proved nothing"
    assert objects.object_info(final) is None, "a partial object was published"
    assert objects.abort_multipart_uploads(final) == 0, "the multipart upload was left open"


def test_remove_files_deletes_present_objects_and_ignores_missing_ones(s3_root):
    folder = as_path(s3_root) / "warehouse" / "rm"
    with atomic_path(folder / "a.json") as tmp:
        tmp.write_text("{}")
    objects.remove_files([folder / "a.json", folder / "never.json"])
    assert objects.list_objects(folder) == {}


def test_folder_is_visible_only_through_its_commit(s3_root):
    folder = as_path(s3_root) / "warehouse" / "ingest" / "files" / "a"
    with atomic_dir(folder) as work:
        for i in range(3):
            pq.write_table(pa.table({"i": [i]}), work / f"part-{i:05d}.parquet")
        assert objects.committed_files(folder) == [], "parts without a commit are invisible"
    names = [p.name for p in objects.committed_files(folder, "*.parquet")]
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert objects.verify_commit(folder) == []


def test_replacing_a_committed_folder_keeps_the_old_one_until_the_new_commit(s3_root):
    folder = as_path(s3_root) / "cache" / "seg"
    with atomic_dir(folder) as work:
        pq.write_table(pa.table({"v": ["old"]}), work / "part-00000.parquet")
    with pytest.raises(RuntimeError):
        with atomic_dir(folder, replace=True) as work:
            pq.write_table(pa.table({"v": ["new"]}), work / "part-00000.parquet")
            raise RuntimeError("killed before the commit")
    (old,) = objects.committed_files(folder)
    assert read_table(old).column("v").to_pylist() == ["old"]
    with atomic_dir(folder, replace=True) as work:
        pq.write_table(pa.table({"v": ["new"]}), work / "part-00000.parquet")
    (new,) = objects.committed_files(folder)
    assert read_table(new).column("v").to_pylist() == ["new"]
    assert objects.uncommitted_objects(folder) == [], "the old generation is deleted after the commit"


def test_refuses_to_overwrite_a_committed_folder_without_replace(s3_root):
    folder = as_path(s3_root) / "f"
    with atomic_dir(folder) as work:
        (work / "a.txt").write_text("x")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        with atomic_dir(folder):
            pass


def test_leftovers_of_a_killed_writer_are_reported_then_removed_after_the_grace(s3_root, seaweed):
    folder = as_path(s3_root) / "cache" / "killed"
    fs = seaweed.filesystem()
    fs.pipe_file(f"{folder.path}/part-00000.parquet", b"half an upload")  # no commit: a killed writer
    assert objects.committed_files(folder) == []
    assert objects.uncommitted_objects(folder) == ["part-00000.parquet"]
    assert objects.remove_uncommitted(folder, older_than_s=3600) == 0, "within the grace a writer may be live"
    with objects.put_folder_atomic(folder, grace_s=0) as work:
        (work / "part-00001.parquet").write_bytes(b"whole")
    assert objects.uncommitted_objects(folder) == [], "the next writer removed the leftover"
    assert [p.name for p in objects.committed_files(folder)] == ["part-00001.parquet"]


def test_a_part_changed_after_its_commit_is_reported(s3_root, seaweed):
    folder = as_path(s3_root) / "cache" / "corrupt"
    with atomic_dir(folder) as work:
        (work / "part-00000.parquet").write_bytes(b"x" * 100)
    seaweed.filesystem().pipe_file(f"{folder.path}/part-00000.parquet", b"x" * 10)
    (problem,) = objects.verify_commit(folder)
    assert "part-00000.parquet has 10 bytes, its commit lists 100" in problem


def test_duckdb_reads_and_writes_the_store(s3_root):
    out = as_path(s3_root) / "warehouse" / "t.parquet"
    con = duck.connect()
    con.execute(f"COPY (SELECT range AS i FROM range(1000)) TO '{out}' (FORMAT parquet)")
    assert con.execute(f"SELECT count(*), sum(i) FROM read_parquet('{out}')").fetchall() == [(1000, 499500)]


def test_lease_excludes_a_second_holder_and_is_free_after_release(s3_root):
    path = layout.state_dir("logs") / "x.lock"
    with hold(path, "logs state (x)", run_id="r1"):
        with pytest.raises(LockTimeout, match="run r1"):
            with hold_in_thread(path):
                pass
    with hold(path, "logs state (x)", timeout_s=0):
        pass


class hold_in_thread:
    """Take the lock from another thread: the process-local nesting must not let it in."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        import threading

        box = {}

        def take():
            try:
                with hold(self.path, "logs state (x)", timeout_s=0.5):
                    pass
            except BaseException as exc:  # noqa: BLE001 - handed back to the test
                box["error"] = exc

        t = threading.Thread(target=take)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return self

    def __exit__(self, *exc):
        return False


HOLDER = """
import sys, time
from assets_pkg.io.locks import hold
with hold(sys.argv[1], "test state", run_id=sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def test_a_killed_holders_lease_expires_and_another_process_takes_it(s3_root, monkeypatch):
    path = layout.state_dir("logs") / "killed.lock"
    env = {**os.environ, "ASSETS_PKG_LEASE_TTL_S": "3"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "run-a", "600"], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockTimeout, match="run-a"):
        with hold(path, "test state", timeout_s=0.5):
            pass
    holder.kill()
    holder.wait()
    started = time.monotonic()
    with hold(path, "test state", timeout_s=30):
        waited = time.monotonic() - started
    assert waited < 15, f"the dead holder's lease should expire after its TTL (waited {waited:.1f} s)"


def test_a_lease_deleted_while_held_is_reported_lost_at_release(s3_root):
    """Someone deletes the lease object mid-hold (an operator, or a waiter that saw it
    expire): the holder must not release quietly as if it had been exclusive all along."""
    from assets_pkg.storage.lease import LeaseLost

    path = layout.state_dir("logs") / "deleted.lock"
    with pytest.raises(LeaseLost, match=f"the lease {path} was broken or taken over while held") as caught:
        with hold(path, "logs state (deleted)"):
            objects.filesystem(path).rm_file(objects.object_key(path))
    assert isinstance(caught.value, StorageError) and caught.value.path == path
    assert "another writer may have written the logs state (deleted) meanwhile" in str(caught.value)
    with hold(path, "logs state (deleted)", timeout_s=0):  # free again
        pass


def test_a_lease_is_confirmed_before_publishing_and_a_lost_one_refuses(s3_root):
    """``confirm_held`` renews a lease that is still ours (its ETag changes) and raises
    LeaseLost, naming the lease, for one deleted (or broken and taken) meanwhile, so the
    holder publishes nothing more under it."""
    from assets_pkg.io.locks import confirm_held
    from assets_pkg.storage.lease import LeaseLost

    path = layout.state_dir("logs") / "confirmed.lock"
    with pytest.raises(LeaseLost), hold(path, "logs state (confirmed)"):  # release says it again
        before = objects.object_info(path)["ETag"]
        confirm_held(path)
        assert objects.object_info(path)["ETag"] != before, "confirming renews the lease"
        objects.filesystem(path).rm_file(objects.object_key(path))
        with pytest.raises(LeaseLost, match=f"the lease {path} was broken or taken over while held"):
            confirm_held(path)
    with pytest.raises(RuntimeError, match="does not hold that lock"):
        confirm_held(path)


def test_confirming_a_local_lock_is_a_no_op_and_needs_the_lock(data_root):
    from assets_pkg.io.locks import confirm_held

    path = layout.state_dir("logs") / "local.lock"
    with hold(path, "logs state (local)"):
        confirm_held(path)  # a held flock cannot be lost
    with pytest.raises(RuntimeError, match="does not hold that lock"):
        confirm_held(path)


def test_missing_bucket_is_named(s3_env, monkeypatch):
    _checked.clear()
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' .* does not exist"):
        check_reachable(as_path("s3://no-such-bucket/data"))


def test_wrong_credentials_are_refused_without_printing_the_secret(seaweed, s3_env, monkeypatch):
    bucket = seaweed.make_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-123")
    _checked.clear()
    with pytest.raises(StorageError, match="refused the credentials") as err:
        check_reachable(as_path(f"s3://{bucket}/data"))
    assert "wrong-secret-value-123" not in str(err.value)
    assert seaweed.secret_key not in str(err.value)


def test_unreachable_endpoint_fails_after_bounded_retries(s3_env, monkeypatch):
    from assets_pkg_tests.services.seaweedfs import free_ports

    (port,) = free_ports(1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ASSETS_PKG_S3_ATTEMPTS", "2")
    _checked.clear()
    started = time.monotonic()
    with pytest.raises(StorageError, match=f"cannot reach the object store at http://127.0.0.1:{port}"):
        check_reachable(as_path("s3://any-bucket/data"))
    assert time.monotonic() - started < 60


def test_a_dead_processes_scratch_is_removed_by_the_next_process(tmp_path, monkeypatch):
    from assets_pkg.storage import root

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f"assets_pkg-{int(dead.stdout)}"
    (leftover / "duckdb_spill").mkdir(parents=True)
    (leftover / "duckdb_spill" / "big.tmp").write_bytes(b"x" * 1000)
    mine = tmp_path / f"assets_pkg-{os.getpid()}"
    mine.mkdir()
    assert root.remove_dead_scratch(tmp_path) == 1
    assert not leftover.exists() and mine.exists()


def test_a_listing_sees_objects_another_client_wrote_meanwhile(s3_root, seaweed):
    folder = as_path(s3_root) / "inbox" / "accounts"
    seaweed.filesystem().pipe_file(f"{folder.path}/a.parquet", b"1")
    assert [p.name for p in folder.iterdir()] == ["a.parquet"]
    seaweed.filesystem().pipe_file(f"{folder.path}/b.parquet", b"2")  # another machine
    assert sorted(p.name for p in folder.iterdir()) == ["a.parquet", "b.parquet"]


def _names_in(url: str) -> list[str]:
    return sorted(p.name for p in objects.list_files(as_path(url)))


def test_a_forked_process_reads_the_store_through_its_own_client(s3_root):
    """A Celery worker imports the code location and then forks its pool: a path (and its
    s3fs client) cached in the parent must not be handed to the child, which s3fs refuses
    ("This class is not fork-safe")."""
    import multiprocessing

    folder = f"{s3_root}/inbox/files"
    with atomic_path(as_path(folder) / "a.csv") as tmp:
        tmp.write_text("x\n1\n")
    assert _names_in(folder) == ["a.csv"]  # the parent's client exists and has been used
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_names_in, (folder,)) == ["a.csv"]


@pytest.mark.slow
def test_the_test_server_takes_more_buckets_than_a_session_creates(seaweed):
    """Each S3 test writes into a bucket of its own on the session's server: 40 buckets with
    one object each must all be writable (with 7 volumes per bucket and the automatic volume
    cap, the 36th bucket's first write failed with InternalError)."""
    fs = seaweed.filesystem()
    for _ in range(40):
        bucket = seaweed.make_bucket()
        fs.pipe_file(f"{bucket}/probe/part.bin", b"x" * 100)
        assert fs.cat_file(f"{bucket}/probe/part.bin") == b"x" * 100
