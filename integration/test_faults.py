"""Faults: a runtime command SIGKILLed at any moment, and a state directory damaged by hand,
leave nothing that `delete --force` cannot remove.

Fault trials kill a command after a seeded random delay spread over its whole duration
(measured first, on runs left to finish), then `delete --force` the container and check that
no state entry, cgroup, mount or process of it is left. The seed is printed (`-s`) and named
in every failure: KILN_FAULT_SEED=N repeats a run, KILN_FAULT_TRIALS=N changes the number of
trials of each command (hack/soak-faults runs many more and prints what the trials found).

Damage tests replace `state.json` (and the state directory itself) by what a crash, a full
disk or a person could leave there: `state` and `kill` must fail at once with one line naming
the file, `list` must still show the container (`unknown`), and `delete --force` must remove
it with its processes and cgroups.
"""

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import (
    RUNTIME,
    leftover_cgroups,
    leftover_mounts,
    leftover_processes,
    pid_alive,
    proc_starttime,
    remove_cgroup_dir,
    runc_deviates,
    wait_for,
)

TRIALS = int(os.environ.get("KILN_FAULT_TRIALS", "100"))
SEED = int(os.environ.get("KILN_FAULT_SEED", str(random.SystemRandom().randrange(2**32))))
# One killed command and the `delete --force` after it; a trial takes ~0.2 s.
CALL_TIMEOUT = 15
# A command refusing a damaged state file does so at once: far below any hang.
REFUSAL_BOUND = 5


def spawn(ctx, args):
    """`RUNTIME --root R args`, started; its output goes to a file (a container inherits it)."""
    out = tempfile.TemporaryFile(dir=ctx.dir)
    p = subprocess.Popen([RUNTIME, "--root", ctx.root, *args], cwd=ctx.dir,
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    p.out = out
    return p


def finish(p, timeout=CALL_TIMEOUT):
    """Waits for `p` (bounded) and returns (returncode, output)."""
    p.wait(timeout=timeout)
    p.out.seek(0)
    text = p.out.read().decode(errors="replace")
    p.out.close()
    return p.returncode, text


def listed_status(ctx, cid):
    """The container's status as `list -f json` shows it, `absent` if it is not listed."""
    r = ctx.rt("list", "-f", "json", timeout=CALL_TIMEOUT)
    assert r.ok, r
    for c in json.loads(r.out) or []:
        if c["id"] == cid:
            return c["status"]
    return "absent"


def assert_nothing_left(ctx, cid, where):
    """No state entry, cgroup, mount or process of `cid` (processes killed by `delete` may
    take a moment to be reaped; nothing else may)."""
    assert not os.path.lexists(os.path.join(ctx.root, cid)), f"{where}: state entry left"
    assert not leftover_cgroups([cid]), f"{where}: cgroups left: {leftover_cgroups([cid])}"
    assert not leftover_mounts([ctx.dir]), f"{where}: mounts left: {leftover_mounts([ctx.dir])}"
    procs = wait_for(lambda: not leftover_processes([ctx.dir], [cid], ctx.tracked), timeout=3)
    assert procs is True, \
        f"{where}: processes left: {leftover_processes([ctx.dir], [cid], ctx.tracked)}"


# ---------------------------------------------------------------- fault injection


class Kind:
    """A command to kill: `prepare(ctx, cid)` makes what it needs (not timed, not killed),
    `args(ctx, cid)` is the command."""

    def __init__(self, prepare, args, after=None):
        self.prepare, self.args, self.after = prepare, args, after


def created(ctx, cid):
    r = ctx.rt("create", "--bundle", ctx.bundle, cid)
    assert r.ok, r


def running(ctx, cid):
    created(ctx, cid)
    r = ctx.rt("start", cid)
    assert r.ok, r


def still_running(ctx, cid, where):
    """A killed `exec` never takes the container with it."""
    r = ctx.rt("state", cid)
    assert r.ok and json.loads(r.out)["status"] == "running", f"{where}: {r}"


KINDS = {
    "create": Kind(None, lambda ctx, cid: ["create", "--bundle", ctx.bundle, cid]),
    "start": Kind(created, lambda ctx, cid: ["start", cid]),
    "run-detached": Kind(None, lambda ctx, cid: ["run", "-d", "--bundle", ctx.bundle, cid]),
    # In the foreground, `run` also waits for the container and deletes it: a container of
    # `true` makes every phase short.
    "run": Kind(None, lambda ctx, cid: ["run", "--bundle", ctx.quick_bundle, cid]),
    "exec": Kind(running, lambda ctx, cid: ["exec", cid, "true"], after=still_running),
}


def fault_bundles(ctx):
    ctx.config["process"]["args"] = ["sleep", "1000"]
    ctx.save()
    quick = dict(ctx.config, process=dict(ctx.config["process"], args=["true"]),
                 root=dict(ctx.config["root"], path=ctx.rootfs))
    ctx.quick_bundle = ctx.hostdir("quick-bundle")
    ctx.save(quick, bundle=ctx.quick_bundle)


def duration(ctx, kind):
    """How long the command takes when left alone: the median of five runs (the first ones
    may be slower, with cold caches)."""
    times = []
    for _ in range(5):
        cid = ctx.new_id()
        if kind.prepare:
            kind.prepare(ctx, cid)
        t0 = time.monotonic()
        rc, out = finish(spawn(ctx, kind.args(ctx, cid)))
        times.append(time.monotonic() - t0)
        assert rc == 0, out
        r = ctx.rt("delete", "--force", cid, timeout=CALL_TIMEOUT)
        assert r.ok, r
    return sorted(times)[len(times) // 2]


def fault_trials(ctx, name):
    kind = KINDS[name]
    fault_bundles(ctx)
    span = duration(ctx, kind)
    rng = random.Random(f"{SEED}-{name}")
    found = collections.Counter()
    print(f"\nfaults {name}: seed {SEED}, {TRIALS} trials, kills within {span * 1100:.0f} ms")
    for i in range(TRIALS):
        cid = ctx.new_id()
        if kind.prepare:
            kind.prepare(ctx, cid)
        # Spread over the whole command, a little past its end: the kill lands in every
        # phase, and sometimes after the command finished.
        delay = rng.uniform(0, span * 1.1)
        p = spawn(ctx, kind.args(ctx, cid))
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        rc, _ = finish(p)
        seen = listed_status(ctx, cid)
        where = f"seed {SEED}, {name} trial {i}, killed after {delay * 1000:.1f} ms ({seen})"
        found[seen if rc == -signal.SIGKILL else f"{seen}, finished"] += 1
        if kind.after:
            kind.after(ctx, cid, where)
        r = ctx.rt("delete", "--force", cid, timeout=CALL_TIMEOUT)
        assert r.rc == 0, f"{where}: {r}"
        assert_nothing_left(ctx, cid, where)
    print(f"faults {name}: seed {SEED}, {TRIALS} trials, status when killed: "
          + ", ".join(f"{k} {v}" for k, v in sorted(found.items())))


KILLED_CREATE = ("runc's delete --force of a container whose create was killed before it saved "
                 "state.json removes only the directory: its cgroups (and `runc init`) stay")


@runc_deviates(KILLED_CREATE)
def test_create_killed_at_any_moment(ctx):
    fault_trials(ctx, "create")


def test_start_killed_at_any_moment(ctx):
    fault_trials(ctx, "start")


@runc_deviates(KILLED_CREATE)
def test_run_detached_killed_at_any_moment(ctx):
    fault_trials(ctx, "run-detached")


@runc_deviates(KILLED_CREATE)
def test_run_killed_at_any_moment(ctx):
    fault_trials(ctx, "run")


def test_exec_killed_at_any_moment(ctx):
    fault_trials(ctx, "exec")


# ---------------------------------------------------------------- damaged state


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def damage_state(path, how, outside):
    """Replaces the state file at `path` as `how` says; `outside` is a scratch directory out
    of the state root."""
    with open(path, "rb") as f:
        good = f.read()
    os.unlink(path)
    if how == "removed":
        return
    if how == "truncated":
        write(path, good[: len(good) // 2])
    elif how == "garbage":
        write(path, bytes(random.Random(SEED).randrange(256) for _ in range(4096)))
    elif how == "null":
        write(path, b"null")
    elif how == "empty-object":
        write(path, b"{}")
    elif how == "huge":
        # Valid JSON with the real state inside, padded past any state file's size.
        write(path, b" " * (2 << 20) + good)
    elif how == "directory":
        os.mkdir(path)
        write(os.path.join(path, "state.json"), good)
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "symlink-dev-zero":
        os.symlink("/dev/zero", path)
    elif how == "symlink-outside":
        # A valid state, out of the root: still not to be followed.
        target = os.path.join(outside, "state.json")
        write(target, good)
        os.symlink(target, path)
    else:
        raise ValueError(how)


def restore(path, good):
    """Puts the real state back if the damage is still there: a runtime that failed the test
    needs it to clean up (and its `list` would hang on a FIFO)."""
    if not os.path.isdir(os.path.dirname(path)):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    write(path, good)


DAMAGE = ["removed", "truncated", "garbage", "null", "empty-object", "huge", "directory",
          "fifo", "symlink-dev-zero", "symlink-outside"]


def assert_refused(ctx, r, path, started, rc=1):
    elapsed = time.monotonic() - started
    assert r.rc == rc, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and path in lines[0], r
    assert elapsed < REFUSAL_BOUND, f"{elapsed:.1f} s: {r}"


def json_shape(entry):
    return {k: type(v).__name__ for k, v in entry.items() if k != "annotations"}


@runc_deviates("runc hangs on a FIFO, panics on `null`, prints errors that do not name the "
               "file, hides the container from `list`, and its delete --force fails or leaves "
               "the processes and cgroups")
@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_state_json(ctx, how):
    ctx.sh("sleep 1000")
    cid, _ = ctx.create()
    ctx.start(cid)
    healthy, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    init = [(pid, proc_starttime(pid))]
    path = os.path.join(ctx.root, cid, "state.json")
    outside = ctx.hostdir("outside")
    with open(path, "rb") as f:
        good = f.read()
    ctx.cleanups.append(lambda: restore(path, good))
    damage_state(path, how, outside)

    for args in (["state", cid], ["kill", cid, "KILL"]):
        t0 = time.monotonic()
        r = ctx.rt(*args, timeout=REFUSAL_BOUND * 2)
        assert_refused(ctx, r, path, t0)
    assert pid_alive(pid), "kill refused, yet the container is gone"

    r = ctx.rt("list", timeout=REFUSAL_BOUND * 2)
    assert r.ok, r
    rows = {l.split()[0]: l.split() for l in r.out.splitlines()[1:]}
    assert rows[cid][2] == "unknown", r
    assert rows[healthy][2] == "created", r
    r = ctx.rt("list", "-f", "json", timeout=REFUSAL_BOUND * 2)
    assert r.ok, r
    entries = {e["id"]: e for e in json.loads(r.out)}
    # The healthy entry is runc's shape: the damaged one has every field, of the same types.
    assert json_shape(entries[cid]) == json_shape(entries[healthy]), entries
    assert entries[cid]["status"] == "unknown" and entries[cid]["pid"] == 0, entries
    assert time.strptime(entries[cid]["created"][:19], "%Y-%m-%dT%H:%M:%S")
    assert ctx.list_ids() == sorted([cid, healthy])

    r = ctx.rt("delete", "--force", cid)
    assert r.rc == 0, r
    assert wait_for(lambda: not pid_alive(pid), 5), "init survived delete --force"
    assert ctx.list_ids() == [healthy]
    assert not os.path.lexists(os.path.join(ctx.root, cid))
    assert not leftover_cgroups([cid]), leftover_cgroups([cid])
    assert wait_for(lambda: not leftover_processes([], [cid], init), timeout=3), \
        leftover_processes([], [cid], init)
    if how == "symlink-outside":
        assert os.path.isfile(os.path.join(outside, "state.json")), "the link's target went"


@runc_deviates("runc says the container does not exist, without naming what is there")
@pytest.mark.parametrize("what", ["symlink", "file", "fifo"])
def test_state_directory_not_a_directory(ctx, what):
    """`ROOT/ID` that is no directory is refused, never followed, even to a real container's
    directory; `delete --force` removes the entry itself and leaves its target alone."""
    ctx.sh("sleep 1000")
    cid, _ = ctx.create()
    real = os.path.join(ctx.root, cid)
    entry = os.path.join(ctx.root, "kilntest-tentry")
    elsewhere = os.path.join(ctx.hostdir("elsewhere"), cid)
    if what == "symlink":
        # The real container moved out of the root, a link to it left in its place.
        os.rename(real, elsewhere)
        os.symlink(elsewhere, entry)
        ctx.cleanups.append(lambda: os.path.isdir(elsewhere) and os.rename(elsewhere, real))
    elif what == "file":
        write(entry, b"not a container\n")
    else:
        os.mkfifo(entry)

    for args in (["state", "kilntest-tentry"], ["kill", "kilntest-tentry", "KILL"]):
        t0 = time.monotonic()
        r = ctx.rt(*args, timeout=REFUSAL_BOUND * 2)
        assert_refused(ctx, r, entry, t0)
    r = ctx.rt("list", timeout=REFUSAL_BOUND * 2)
    assert r.ok, r
    rows = {l.split()[0]: l.split() for l in r.out.splitlines()[1:]}
    assert rows["kilntest-tentry"][2] == "unknown", r

    r = ctx.rt("delete", "--force", "kilntest-tentry", timeout=REFUSAL_BOUND * 2)
    assert r.rc == 0, r
    assert not os.path.lexists(entry)
    if what == "symlink":
        assert os.path.isfile(os.path.join(elsewhere, "state.json")), "followed the link"


@runc_deviates("runc reads the exec fifo through a symlink: from /dev/zero it never stops")
def test_exec_fifo_replaced_by_dev_zero(ctx):
    ctx.sh("sleep 1000")
    cid, _ = ctx.create()
    fifo = os.path.join(ctx.root, cid, "exec.fifo")
    os.unlink(fifo)
    os.symlink("/dev/zero", fifo)
    t0 = time.monotonic()
    r = ctx.rt("start", cid, timeout=REFUSAL_BOUND * 2)
    assert_refused(ctx, r, fifo, t0)
    r = ctx.rt("delete", "--force", cid)
    assert r.rc == 0, r
    assert_nothing_left(ctx, cid, "after delete --force")


@pytest.mark.kiln_only
def test_seccomp_state_file_is_bounded(ctx):
    """`exec` reads the filter `create` saved (seccomp.json): a FIFO there fails at once."""
    ctx.sh("sleep 1000")
    cid, _ = ctx.create()
    ctx.start(cid)
    saved = os.path.join(ctx.root, cid, "seccomp.json")
    if os.path.lexists(saved):
        os.unlink(saved)
    os.mkfifo(saved)
    t0 = time.monotonic()
    r = ctx.rt("exec", cid, "true", timeout=REFUSAL_BOUND * 2)
    # runc's exit status for an exec that could not run its process.
    assert_refused(ctx, r, saved, t0, rc=255)


@pytest.mark.kiln_only
def test_state_and_record_both_damaged(ctx):
    """With state.json and recovery.json both unusable nothing says where the container's
    processes are: `delete --force` removes the directory, exits 0, and says so naming both."""
    ctx.sh("sleep 1000")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    d = os.path.join(ctx.root, cid)
    write(os.path.join(d, "state.json"), b"{")
    write(os.path.join(d, "recovery.json"), b"null")
    try:
        r = ctx.rt("delete", "--force", cid)
        assert r.rc == 0, r
        assert not os.path.lexists(d)
        assert "state.json" in r.err and "recovery.json" in r.err, r
        assert "no cgroup or process of it is known" in r.err, r
        assert pid_alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 5)
        for c in leftover_cgroups([cid]):
            remove_cgroup_dir(c)


@pytest.mark.kiln_only
def test_record_pointing_outside_cgroups_is_refused(ctx):
    """A record whose cgroup is no cgroup below a hierarchy (here the bundle) is not trusted:
    `delete --force` kills and removes nothing there."""
    ctx.sh("sleep 1000")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    d = os.path.join(ctx.root, cid)
    record = json.load(open(os.path.join(d, "recovery.json")))
    assert record["pid"] == pid and record["cgroup_paths"], record
    bait = ctx.hostdir("bait")
    record["cgroup_paths"] = {k: bait for k in record["cgroup_paths"]}
    write(os.path.join(d, "recovery.json"), json.dumps(record).encode())
    os.unlink(os.path.join(d, "state.json"))
    try:
        r = ctx.rt("delete", "--force", cid)
        assert r.rc == 0, r
        assert "is not below a cgroup hierarchy" in r.err, r
        assert os.path.isdir(bait)
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 5)
        for c in leftover_cgroups([cid]):
            remove_cgroup_dir(c)
