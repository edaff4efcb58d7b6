"""checkpoint and restore with criu (Debian's criu 3.17.1).

criu needs a kernel it can read: on this project's host kernel `criu check` fails (its vDSO),
so there the runtime must refuse at once, naming criu and its reason, and leave the container
as it was. In the qemu guest (hack/v2vm, Debian's 6.1 kernel) criu works, and the rest of this
file runs there (hack/test does it): each test that needs criu is skipped, saying why, where
`criu check` fails.

The containers count in a loop with their stdio on the container's own /dev/null (stdio from
the test would be files outside the container, which criu cannot dump) or on a terminal; the
count is read from the host, so a restored container that did not resume shows."""

import fcntl
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import (IS_RUNC, leftover_cgroups, pid_alive, remove_cgroup_dir, runc_deviates,
                      wait_for)
from test_terminal import ConsoleServer

CRIU = shutil.which("criu")


def criu_check():
    """(ok, errors): `criu check`'s verdict here, and the errors it printed."""
    if CRIU is None:
        return False, ["criu is not installed"]
    r = subprocess.run([CRIU, "check"], capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        return True, []
    errors = [l.split("): ", 1)[-1].strip() for l in (r.stderr + r.stdout).splitlines()
              if "Error (" in l]
    return False, errors or [f"criu check exited {r.returncode}"]


CRIU_OK, CRIU_ERRORS = criu_check()
# What failed in the end, which the runtime's error must name.
CRIU_WHY = CRIU_ERRORS[-1] if CRIU_ERRORS else ""
needs_criu = pytest.mark.skipif(
    not CRIU_OK, reason=f"criu check fails here: {'; '.join(CRIU_ERRORS)}")

# Criu under emulation (the guest) takes seconds per dump.
SLOW = 180

COUNTER = ("exec </dev/null >/dev/null 2>&1; i=0; "
           "while :; do i=$((i+1)); echo $i > {path}.new; mv {path}.new {path}; sleep 0.1; done")


def counter(ctx, path="/tmp/count"):
    # The count is read from the host, in the rootfs: writable, then.
    ctx.config["root"]["readonly"] = False
    ctx.sh(COUNTER.format(path=path))


def count(file):
    try:
        with open(file) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def counts_past(file, n, timeout=60):
    """Whether the counter in `file` goes past `n` within `timeout` seconds."""
    return wait_for(lambda: count(file) > n, timeout, 0.1)


def start_counter(ctx, path="/tmp/count", host=None):
    counter(ctx, path)
    cid, r = ctx.run("-d")
    assert r.ok, r
    st = ctx.state(cid)
    host = host or os.path.join(ctx.rootfs, path.lstrip("/"))
    assert counts_past(host, 2), f"counter never ran: {count(host)}"
    return cid, st["pid"], host


def checkpoint(ctx, cid, img, *extra, timeout=SLOW):
    return ctx.rt("checkpoint", "--image-path", img, "--work-path", img + "-work", *extra, cid,
                  timeout=timeout)


def restore(ctx, cid, img, *extra, timeout=SLOW):
    r = ctx.rt("restore", "-d", "--bundle", ctx.bundle, "--image-path", img,
               "--work-path", img + "-work", *extra, cid, timeout=timeout)
    if r.ok:
        ctx.state(cid)  # tracked for the teardown
    return r


def image(ctx, name="img"):
    return os.path.join(ctx.dir, name)


def frozen(file, settle=1.0):
    """The counter's value once it stopped moving (checked for `settle` seconds)."""
    before = count(file)
    time.sleep(settle)
    return count(file) if count(file) == before else None


def stopped_at(host):
    """The checkpointed counter's last value, asserting that it stopped."""
    n = frozen(host)
    assert n is not None and n > 0, f"the counter still moves after the checkpoint: {count(host)}"
    return n


def assert_resumes(host, n, since=None):
    """The restored counter goes on: its first value other than `n` (the file's) is past
    `since` (where it was checkpointed, `n` by default), where one started afresh would count
    from 1 again."""
    since = n if since is None else since
    first = wait_for(lambda: (v := count(host)) != n and v, 60, 0.05)
    assert first, f"the restored counter stays at {count(host)}"
    assert first > since, f"the counter restarted: {first} after {since}"


def restore_resumes(ctx, cid, img, host, *extra, since=None):
    """Restores `cid` from `img` and asserts that the counter in `host` resumes (see
    assert_resumes)."""
    n = stopped_at(host)
    r = restore(ctx, cid, img, *extra)
    assert r.ok, r
    assert_resumes(host, n, since)
    return n


# ---------------------------------------------------------------- host: no usable criu


@pytest.mark.skipif(CRIU_OK, reason="criu check passes here: this case needs a kernel "
                                    "criu cannot use (the project's host)")
@pytest.mark.skipif(CRIU is None, reason="criu is not installed")
@runc_deviates("its error says only where criu's log is, not why criu failed")
def test_checkpoint_fails_fast_naming_criu_and_leaves_container_running(ctx):
    cid, pid, host = start_counter(ctx)
    img = image(ctx)
    t0 = time.monotonic()
    r = checkpoint(ctx, cid, img, timeout=30)
    took = time.monotonic() - t0
    assert r.rc == 1, r
    assert took < 10, f"checkpoint took {took:.1f}s to fail"
    assert "criu" in r.err, r
    assert CRIU_WHY in r.err, (CRIU_WHY, r.err)
    if not IS_RUNC:  # runc quotes criu's log over several lines
        assert len(r.err.strip().splitlines()) == 1, r.err
    st = ctx.state(cid)
    assert st["status"] == "running" and st["pid"] == pid, st
    n = count(host)
    assert counts_past(host, n), "the container stopped counting after the failed checkpoint"
    ctx.delete(cid, force=True)


def test_features_report_checkpoint_as_criu_check_says(ctx):
    r = ctx.rt("features")
    assert r.ok, r
    ann = json.loads(r.out).get("annotations", {})
    if IS_RUNC and not CRIU_OK:
        # runc 1.1.5 claims checkpoint whatever its host's criu can do.
        assert ann.get("org.opencontainers.runc.checkpoint.enabled") == "true", ann
        pytest.xfail("runc deviates: reports checkpoint enabled where criu check fails")
    assert ann.get("org.opencontainers.runc.checkpoint.enabled") == str(CRIU_OK).lower(), ann
    if not CRIU_OK and not IS_RUNC:
        assert CRIU_WHY in ann.get("io.github.kiln.checkpoint.unavailable", ""), ann


def features_checkpoint(ctx):
    r = ctx.rt("features")
    assert r.ok, r
    return json.loads(r.out)["annotations"]["org.opencontainers.runc.checkpoint.enabled"]


@pytest.mark.skipif(IS_RUNC, reason="runc runs no criu check for features, so keeps no verdict")
@pytest.mark.skipif(CRIU is None, reason="criu is not installed")
def test_features_keeps_criu_checks_verdict_for_its_key_only(ctx):
    os.makedirs(ctx.root, exist_ok=True)
    assert features_checkpoint(ctx) == str(CRIU_OK).lower()
    record = os.path.join(ctx.root, ".cache", "criu-check")
    with open(record) as f:
        header, key, verdict = f.read().splitlines()
    assert (verdict == "ok") if CRIU_OK else verdict.startswith("unavailable "), verdict
    # The record is what features reads: a forged opposite verdict under the same key shows...
    forged = "unavailable forged" if CRIU_OK else "ok"
    with open(record, "w") as f:
        f.write(f"{header}\n{key}\n{forged}\n")
    assert features_checkpoint(ctx) == str(not CRIU_OK).lower()
    # ...and under another boot's key is not trusted: criu check runs again.
    with open(record, "w") as f:
        f.write(f"{header}\n{key.replace('boot ', 'boot x', 1)}\n{forged}\n")
    assert features_checkpoint(ctx) == str(CRIU_OK).lower()


def test_checkpoint_flags_are_checked_before_criu_runs(ctx):
    cid, pid, host = start_counter(ctx)
    for extra, words in [(["--manage-cgroups-mode", "hard"], "manage cgroups mode"),
                         (["--page-server", "nocolon"], "page server"),
                         (["--parent-path", "/abs"], "parent path")]:
        r = checkpoint(ctx, cid, image(ctx), *extra, timeout=30)
        assert r.rc == 1 and words in r.err.lower().replace("-", " "), (extra, r)
    assert ctx.state(cid)["pid"] == pid
    ctx.delete(cid, force=True)


# ---------------------------------------------------------------- guest: criu works


@needs_criu
def test_counter_survives_checkpoint_and_restore(ctx):
    cid, pid, host = start_counter(ctx)
    img = image(ctx)
    r = checkpoint(ctx, cid, img)
    assert r.ok, r
    # The container is gone and stopped counting.
    assert wait_for(lambda: not pid_alive(pid), 10)
    assert ctx.rt("state", cid).rc != 0
    n = restore_resumes(ctx, cid, img, host)
    st = ctx.state(cid)
    assert st["status"] == "running" and st["pid"] > 0, st
    r = ctx.rt("exec", cid, "cat", "/tmp/count")
    assert r.ok and int(r.out) > n, r
    assert ctx.rt("kill", cid, "KILL").ok
    assert ctx.wait_status(cid, "stopped", 10)
    ctx.delete(cid)
    ctx.assert_gone(cid, st["pid"])


@needs_criu
@runc_deviates("restores init into the checkpointed container's cgroup (criu recreates it) "
               "and leaves that cgroup behind")
def test_restore_into_a_new_id_is_a_container_like_any_other(ctx):
    cid, pid, host = start_counter(ctx)
    if IS_RUNC:
        # runc's leftover cgroup (the deviation above), removed after the test's own delete.
        ctx.cleanups.insert(0, lambda: [remove_cgroup_dir(d) for d in leftover_cgroups([cid])])
    img = image(ctx)
    assert checkpoint(ctx, cid, img).ok
    new = ctx.new_id()
    pidfile = os.path.join(ctx.dir, "restored.pid")
    n = restore_resumes(ctx, new, img, host, "--pid-file", pidfile)
    st = ctx.state(new)
    assert st["id"] == new and st["status"] == "running", st
    with open(pidfile) as f:
        assert int(f.read()) == st["pid"]
    assert new in ctx.list_ids() and cid not in ctx.list_ids()
    # Its init is in the new container's cgroup.
    with open(f"/proc/{st['pid']}/cgroup") as f:
        assert f"/{new}" in f.read()
    r = ctx.rt("exec", new, "sh", "-c", "echo $$ >/dev/null; cat /tmp/count")
    assert r.ok and int(r.out) > n, r
    r = ctx.rt("delete", new)
    assert r.rc != 0, "delete of a running restored container must need --force"
    ctx.delete(new, force=True)
    ctx.assert_gone(new, st["pid"])


@needs_criu
def test_leave_running(ctx):
    cid, pid, host = start_counter(ctx)
    img = image(ctx)
    before = count(host)
    r = checkpoint(ctx, cid, img, "--leave-running")
    assert r.ok, r
    st = ctx.state(cid)
    assert st["status"] == "running" and st["pid"] == pid, st
    n = count(host)
    assert counts_past(host, n), "the container stopped counting after --leave-running"
    ctx.delete(cid, force=True)
    # The images are good: restored, the counter goes on from where it was checkpointed
    # (which the file has passed since).
    restore_resumes(ctx, cid, img, host, since=before)
    ctx.delete(cid, force=True)


@needs_criu
def test_pre_dump_then_dump_with_parent_path(ctx):
    cid, pid, host = start_counter(ctx)
    pre, final = image(ctx, "pre"), image(ctx, "final")
    r = ctx.rt("checkpoint", "--pre-dump", "--image-path", pre, cid, timeout=SLOW)
    assert r.ok, r
    st = ctx.state(cid)
    assert st["status"] == "running" and st["pid"] == pid, st
    assert counts_past(host, count(host))
    r = checkpoint(ctx, cid, final, "--parent-path", "../pre")
    assert r.ok, r
    # criu links the final images to the pre-dump's.
    assert os.path.realpath(os.path.join(final, "parent")) == os.path.realpath(pre)
    restore_resumes(ctx, cid, final, host)
    ctx.delete(cid, force=True)


TIOCGPTPEER = 0x5441  # opens a pty master's slave, in whichever devpts it lives


def terminal_of(pid):
    """(tty_nr of /proc/PID/stat: the controlling terminal, the rdev of its fd 0)."""
    with open(f"/proc/{pid}/stat") as f:
        tty_nr = int(f.read().rsplit(")", 1)[1].split()[4])
    return tty_nr, os.stat(f"/proc/{pid}/fd/0").st_rdev


@needs_criu
def test_terminal_container(ctx):
    ctx.config["process"]["terminal"] = True
    ctx.config["root"]["readonly"] = False
    ctx.sh("i=0; while :; do i=$((i+1)); echo $i > /tmp/count; echo tick-$i; sleep 0.2; done")
    console = ConsoleServer()
    ctx.cleanups.append(console.close)
    cid, r = ctx.run("-d", "--console-socket", console.path)
    assert r.ok, r
    console.wait_master()
    assert "tick-2" in console.read_until_eof(timeout=30, stop=b"tick-2")
    host = os.path.join(ctx.rootfs, "tmp/count")
    img = image(ctx)
    r = checkpoint(ctx, cid, img)
    assert r.ok, r
    again = ConsoleServer()
    ctx.cleanups.append(again.close)
    n = restore_resumes(ctx, cid, img, host, "--console-socket", again.path)
    master = again.wait_master()
    # The restored shell writes to the new terminal, counting on.
    out = again.read_until_eof(timeout=30, stop=f"tick-{n + 2}".encode())
    assert f"tick-{n + 2}" in out, out
    # That terminal is init's controlling terminal and the container's /dev/console, as on
    # `run`; and it is the one whose master came over the socket.
    pid = ctx.state(cid)["pid"]
    tty_nr, rdev = terminal_of(pid)
    assert tty_nr == rdev, (tty_nr, rdev)
    assert os.stat(f"/proc/{pid}/root/dev/console").st_rdev == rdev
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    try:
        assert os.fstat(slave).st_rdev == rdev
    finally:
        os.close(slave)
    ctx.delete(cid, force=True)


@needs_criu
def test_bind_mount_is_restored_from_its_source(ctx):
    data = ctx.hostdir("data")
    ctx.add_mount({"destination": "/data", "type": "bind", "source": data,
                   "options": ["rbind", "rw"]})
    cid, pid, host = start_counter(ctx, "/data/count", os.path.join(data, "count"))
    img = image(ctx)
    assert checkpoint(ctx, cid, img).ok
    # The restored container writes into the host's directory again.
    restore_resumes(ctx, cid, img, host)
    ctx.delete(cid, force=True)


@needs_criu
def test_restore_without_images_fails_and_leaves_nothing(ctx):
    ctx.sh("true")
    ctx.save()
    cid = ctx.new_id()
    r = ctx.rt("restore", "-d", "--bundle", ctx.bundle, "--image-path", image(ctx, "none"),
               cid, timeout=SLOW)
    assert r.rc != 0, r
    assert cid not in ctx.list_ids()


# ---------------------------------------------------------------- Podman


@needs_criu
def test_podman_checkpoint_restore(podman):
    from clients import IMAGE
    cid = podman.start_bg(IMAGE, "sh", "-c", COUNTER.format(path="/tmp/count"))
    assert podman.wait_running(cid)

    def podman_count():
        r = podman("exec", cid, "cat", "/tmp/count")
        return int(r.out) if r.rc == 0 and r.out.strip().isdigit() else 0

    # Far enough (10 s of counting) that a counter started afresh by the restore could not
    # have caught up by the first read after it.
    assert wait_for(lambda: podman_count() >= 100, SLOW, 1.0)
    before = podman_count()
    r = podman("container", "checkpoint", cid, timeout=SLOW)
    assert r.rc == 0, r
    assert podman.inspect(cid, "{{.State.Status}}") == "exited"
    r = podman("container", "restore", cid, timeout=SLOW)
    assert r.rc == 0, r
    assert podman.wait_running(cid)
    r = podman("exec", cid, "cat", "/tmp/count")
    assert r.rc == 0 and int(r.out) >= before, (before, r)


# ---------------------------------------------------------------- containerd


@needs_criu
def test_ctr_checkpoint_and_restore_into_a_new_container(ctr, tmp_path):
    """containerd 1.6's way: `ctr containers checkpoint --task` (the shim pauses the task,
    checkpoints it leaving it running, resumes it) into a checkpoint image, then
    `ctr containers restore --live` into a new container, whose runtime options (the binary,
    its root) come from the checkpoint."""
    data = tmp_path / "data"
    data.mkdir()
    host = str(data / "count")
    cid = ctr.start_bg("sh", "-c", COUNTER.format(path="/data/count"),
                       opts=["--mount", f"type=bind,src={data},dst=/data,options=rbind:rw"])
    # Past a few counts: a counter started afresh shows as a lower count after the restore.
    assert counts_past(host, 5), f"counter never ran: {count(host)}"
    ref = f"localhost/kilntest-checkpoint/{cid}:1"
    try:
        before = count(host)
        r = ctr("containers", "checkpoint", "--task", cid, ref, timeout=SLOW)
        assert r.rc == 0, r
        # Left running: counting on, resumed after the shim's pause.
        assert ctr.status(cid) == "RUNNING", ctr("tasks", "ls")
        assert counts_past(host, count(host)), "the container stopped after the checkpoint"
        assert ctr("tasks", "kill", "-s", "SIGKILL", cid).rc == 0
        assert wait_for(lambda: ctr.status(cid) == "STOPPED", 20, 0.1), ctr("tasks", "ls")
        assert ctr("tasks", "delete", cid).rc == 0
        assert ctr("containers", "delete", cid).rc == 0
        n = stopped_at(host)
        new = ctr.new_id()
        r = ctr("containers", "restore", "--live", new, ref, timeout=SLOW)
        assert r.rc == 0, r.err
        # Resumed from the checkpoint, which the count since had passed.
        assert_resumes(host, n, since=before)
        assert ctr.status(new) == "RUNNING", ctr("tasks", "ls")
        # The runtime under test restored it: its state has the task's pid.
        r = subprocess.run([ctr.binary, "--root", os.path.join(ctr.root, ctr.d.NAMESPACE),
                            "state", new], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and json.loads(r.stdout)["pid"] == ctr.pid(new), r
    finally:
        ctr.d.ctr("images", "rm", ref)
