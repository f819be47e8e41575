"""Outputs that are not regular files (issue #20, 1): written through, never replaced or
removed.

``transcribe -o PATH --force`` renamed its temporary file over whatever PATH was (as root
it turned the system's ``/dev/stdout`` into a regular file), and ``record --force DEVICE``
unlinked the device when the write failed. The rule, everywhere a file is written (the
atomic writer: sidecars, ``transcribe -o``, ``export``; the recorder's file output): a FIFO,
a character device, ``/dev/stdout``, ``/dev/fd/N`` and process substitution are written
into; only regular files are replaced; only a regular file this process created is ever
removed; a block device, a socket or a symlink to nothing is refused.

Real nodes, made in the test's directory (never the system's /dev): FIFOs with a reader,
``mknod`` character devices with the numbers of /dev/null (1,3) and /dev/full (1,7, every
write fails with ENOSPC: a full disk), a block device node, symlinks, a pipe passed as a
descriptor, bash's process substitution, and a real full tmpfs.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

import audiolab
import speech as speechlab
from cliutil import CLI, no_device_env, one_error_line, run

TRANSCRIPT = {"version": 1, "model": "tiny.en", "language": "en", "duration": 1.0,
              "text": "hello there", "segments": [{"start": 0.0, "end": 1.0, "text": "hello there",
                                                   "words": []}]}


@pytest.fixture
def root():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run as root to make device nodes (mknod)")
        pytest.skip("mknod needs root")


@pytest.fixture
def env(tmp_path):
    return no_device_env(tmp_path)


@pytest.fixture
def clip(env, tmp_path):
    """A clip 'memo' with a saved transcript ('hello there'): transcribe prints it without
    loading a model."""
    src = audiolab.make_tone(tmp_path / "tone.wav", 1.0, 440)
    r = run("record", "--input", src, "--name", "memo", "-q", env=env)
    assert r.returncode == 0, r.stderr
    audio = Path(env["DICTAPHONE_HOME"]) / "memo.wav"
    Path(f"{audio}.transcript.json").write_text(json.dumps(TRANSCRIPT))
    return audio


def char_device(path: Path, minor: int) -> Path:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    return path


def kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    return ("fifo" if stat.S_ISFIFO(mode) else "chr" if stat.S_ISCHR(mode) else "blk" if stat.S_ISBLK(mode)
            else "link" if stat.S_ISLNK(mode) else "file" if stat.S_ISREG(mode) else "other")


class FifoReader:
    """``cat FIFO > file`` in a thread: what a reader of the FIFO got."""

    def __init__(self, fifo: Path):
        self.fifo = fifo
        self.data = b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with open(self.fifo, "rb") as f:
            self.data = f.read()

    def result(self) -> bytes:
        self.thread.join(60)
        assert not self.thread.is_alive(), "the FIFO was never closed"
        return self.data


def fifo(tmp_path: Path, name: str = "out.fifo") -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------------------------------------
# transcribe -o


@pytest.mark.parametrize("force", [False, True])
def test_transcribe_into_a_fifo_and_a_device_writes_through_them(root, env, clip, tmp_path, force):
    extra = ["--force"] if force else []
    f = fifo(tmp_path)
    reader = FifoReader(f)
    r = run("transcribe", "memo", "-o", f, *extra, env=env)
    assert r.returncode == 0, r.stderr
    assert reader.result().decode().strip() == "hello there"
    assert kind(f) == "fifo"
    null = char_device(tmp_path / "null", 3)
    r = run("transcribe", "memo", "-o", null, *extra, env=env)
    assert r.returncode == 0, r.stderr
    assert kind(null) == "chr" and os.stat(null).st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dictaphone")) == []


def test_transcribe_into_a_full_device_fails_in_one_line_and_keeps_the_node(root, env, clip, tmp_path):
    full = char_device(tmp_path / "full", 7)
    r = run("transcribe", "memo", "-o", full, "--force", env=env)
    assert r.returncode == 1
    assert "no space left" in one_error_line(r.stderr)
    assert kind(full) == "chr" and os.stat(full).st_rdev == os.makedev(1, 7)


def test_transcribe_to_dev_stdout_and_dev_fd_writes_the_descriptor(env, clip, tmp_path):
    assert os.path.islink("/dev/stdout"), "the system's /dev/stdout was replaced before this test"
    # /dev/stdout into a pipe (no --force: with it, the old code renamed a file over the
    # system's /dev/stdout, so --force is shown on a link of our own, the same thing)
    r = run("transcribe", "memo", "-o", "/dev/stdout", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hello there"
    assert os.path.islink("/dev/stdout")
    mine = tmp_path / "stdout"
    mine.symlink_to("/proc/self/fd/1")
    r = run("transcribe", "memo", "-o", mine, "--force", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hello there"
    assert mine.is_symlink() and os.readlink(mine) == "/proc/self/fd/1"
    # stdout redirected to a file opened for appending (>>): /dev/stdout appends too
    log = tmp_path / "log.txt"
    log.write_text("before\n")
    with open(log, "a") as out:
        p = subprocess.run([*CLI, "transcribe", "memo", "-o", "/dev/stdout"], env=env, stdout=out,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert log.read_text() == "before\nhello there\n"
    # /dev/fd/N and /proc/self/fd/N: a pipe handed to the process
    for alias in ("/dev/fd/{fd}", "/proc/self/fd/{fd}"):
        rfd, wfd = os.pipe()
        p = subprocess.Popen([*CLI, "transcribe", "memo", "-o", alias.format(fd=wfd), "--force"], env=env,
                             pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as got:
            data = got.read()
        assert p.wait(60) == 0, p.stderr.read()
        assert data.decode().strip() == "hello there"


def test_transcribe_into_a_process_substitution(env, clip, tmp_path):
    out = tmp_path / "upper.txt"
    script = f'{" ".join(CLI)} transcribe memo -o >(tr a-z A-Z > {out}) && wait'
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for _ in range(100):
        if out.exists() and out.read_text():
            break
        threading.Event().wait(0.05)
    assert out.read_text().strip() == "HELLO THERE"


def test_transcribe_through_a_symlink_replaces_its_target_and_keeps_the_link(env, clip, tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    r = run("transcribe", "memo", "-o", link, env=env)
    assert r.returncode == 2 and "exists" in one_error_line(r.stderr)
    assert target.read_text() == "old\n"
    r = run("transcribe", "memo", "-o", link, "--force", env=env)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().strip() == "hello there"
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "nowhere" / "x.txt")
    r = run("transcribe", "memo", "-o", dangling, "--force", env=env)
    assert r.returncode == 2 and "symlink to nothing" in one_error_line(r.stderr)
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_block_device_is_never_written(root, env, clip, tmp_path):
    disk = tmp_path / "disk"
    os.mknod(disk, 0o600 | stat.S_IFBLK, os.makedev(7, 200))  # a loop device number; never opened
    for args in (["transcribe", "memo", "-o", disk, "--force"],
                 ["record", "--input", clip, "--force", "-f", "wav", disk],
                 ["export", "memo", "-f", "wav", disk, "--force"]):
        r = run(*args, env=env)
        assert r.returncode in (1, 2), (args, r.stderr)
        assert "block device" in one_error_line(r.stderr), args
        assert kind(disk) == "blk"


def test_a_real_transcription_goes_through_a_fifo(root, whisper_model, tmp_path):
    env = dict(no_device_env(tmp_path), DICTAPHONE_MODEL=whisper_model, HF_HUB_OFFLINE="1")
    src = speechlab.make_script(tmp_path / "talk.wav", ["The quick brown fox jumps over the lazy dog."]).path
    f = fifo(tmp_path)
    reader = FifoReader(f)
    r = run("transcribe", src, "-o", f, "--force", env=env)
    assert r.returncode == 0, r.stderr
    assert "lazy dog" in reader.result().decode().lower()
    assert kind(f) == "fifo"


# ---------------------------------------------------------------------------------------------
# record OUTPUT


def test_record_into_a_fifo_streams_it_without_force_and_leaves_the_fifo(root, env, tmp_path, speech):
    f = fifo(tmp_path, "take.wav")
    reader = FifoReader(f)
    r = run("record", "--input", speech, "-q", f, env=env)
    assert r.returncode == 0, r.stderr
    got = tmp_path / "got.wav"
    got.write_bytes(reader.result())
    assert kind(f) == "fifo"
    assert audiolab.speech_score(speech, got) > 0.99
    assert not any(p.name.startswith("take.wav.") for p in tmp_path.iterdir())  # no sidecars beside it


@pytest.mark.parametrize("force", [False, True])
def test_record_into_a_null_device_writes_through_it(root, env, tmp_path, speech, force):
    null = char_device(tmp_path / "null", 3)
    r = run("record", "--input", speech, "-q", "-f", "flac", *(["--force"] if force else []), null, env=env)
    assert r.returncode == 0, r.stderr
    assert kind(null) == "chr" and os.stat(null).st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["null", "clips", "runtime"]
                                                                 if (tmp_path / "clips").exists()
                                                                 else ["null", "runtime"])


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_record_force_into_a_full_device_fails_and_never_unlinks_it(root, env, tmp_path, speech, fmt):
    full = char_device(tmp_path / "full", 7)
    r = run("record", "--input", speech, "--force", "-f", fmt, full, env=env)
    assert r.returncode == 1
    assert "disk full" in one_error_line(r.stderr)
    assert kind(full) == "chr" and os.stat(full).st_rdev == os.makedev(1, 7)


def test_record_into_dev_fd_and_a_process_substitution(env, tmp_path, speech):
    rfd, wfd = os.pipe()
    p = subprocess.Popen([*CLI, "record", "--input", str(speech), "-q", f"/dev/fd/{wfd}"], env=env,
                         pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as got:
        data = got.read()
    assert p.wait(60) == 0, p.stderr.read()
    (tmp_path / "fd.wav").write_bytes(data)
    assert audiolab.speech_score(speech, tmp_path / "fd.wav") > 0.99
    out = tmp_path / "sub.flac"
    script = f'{" ".join(CLI)} record --input {speech} -q -f flac >(cat > {out}); wait'
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for _ in range(100):
        if out.exists() and out.stat().st_size > 1000:
            break
        threading.Event().wait(0.05)
    threading.Event().wait(0.3)
    got = tmp_path / "sub.wav"
    subprocess.run(["sox", str(out), str(got)], check=True, capture_output=True)
    assert audiolab.speech_score(speech, got) > 0.99


def test_split_pieces_into_a_device_are_refused(root, env, tmp_path, speech):
    null = char_device(tmp_path / "null", 3)
    r = run("record", "--input", speech, "--split", "1", null, env=env)
    assert r.returncode == 2 and "need a file name" in one_error_line(r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("null")) == ["null"]




def test_record_force_over_a_file_on_a_full_disk_never_removes_what_it_did_not_create(small_disk, env, tmp_path):
    # A regular file that was there before: --force truncates and writes it; when the disk
    # is full the recording fails, and the file (not ours) is not unlinked.
    src = audiolab.make_noise(tmp_path / "long.wav", 10, amplitude=0.3)
    old = small_disk / "old.wav"
    old.write_bytes(b"x" * 1000)
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    r = run("record", "--input", src, "--force", old, env=env)
    assert r.returncode == 1 and "disk full" in one_error_line(r.stderr)
    assert old.exists() and kind(old) == "file"


# ---------------------------------------------------------------------------------------------
# export and recover


def test_export_into_a_fifo_and_a_device(root, env, clip, tmp_path):
    f = fifo(tmp_path, "out.flac")
    reader = FifoReader(f)
    r = run("export", "memo", f, env=env)
    assert r.returncode == 0, r.stderr
    data = reader.result()
    assert data[:4] == b"fLaC" and kind(f) == "fifo"
    null = char_device(tmp_path / "null", 3)
    assert run("export", "memo", "-f", "wav", null, "--force", env=env).returncode == 0
    assert kind(null) == "chr"


def test_recover_refuses_a_fifo_and_a_device_and_leaves_them(root, env, tmp_path):
    f = fifo(tmp_path, "x.wav")
    null = char_device(tmp_path / "null.wav", 3)
    for path in (f, null):
        r = run("recover", path, env=env, timeout=30)
        assert r.returncode == 2 and "not a regular file" in one_error_line(r.stderr)
    assert kind(f) == "fifo" and kind(null) == "chr"


# ---------------------------------------------------------------------------------------------
# the writer itself (the sidecars go through it)


def test_the_atomic_writer_classifies_outputs(root, tmp_path):
    from dictaphone.atomic import NotRegularError, output_kind, write_text

    f = fifo(tmp_path)
    null = char_device(tmp_path / "null", 3)
    regular = tmp_path / "a.txt"
    regular.write_text("a")
    (tmp_path / "link").symlink_to(regular)
    assert output_kind(f) == output_kind(null) == output_kind("/dev/stdout") == "through"
    assert output_kind(regular) == output_kind(tmp_path / "link") == "file"
    assert output_kind(tmp_path / "new.txt") == "new"
    for bad in (tmp_path, ):
        with pytest.raises(NotRegularError):
            output_kind(bad)
    write_text(null, "into the device")
    write_text(tmp_path / "link", "b")
    assert (tmp_path / "link").is_symlink() and regular.read_text() == "b"
    with pytest.raises(FileExistsError):
        write_text(regular, "c", overwrite=False)
    assert kind(null) == "chr" and kind(f) == "fifo"


def test_the_python_api_refuses_pieces_into_a_device(root, tmp_path):
    from dictaphone.capture.sources import FileSource
    from dictaphone.errors import InvalidArgumentError
    from dictaphone.recording.recorder import MediaRecorder

    null = char_device(tmp_path / "null", 3)
    src = audiolab.make_tone(tmp_path / "tone.wav", 0.5, 440)
    for kw in ({"split": 1.0}, {"split_on_mark": True}):
        with pytest.raises(InvalidArgumentError, match="need a file name"):
            MediaRecorder(FileSource(str(src)), output=str(null), **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "tone.wav"]
