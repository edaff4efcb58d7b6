"""Robustness: many short containers in a row."""

import contextlib
import os
import subprocess
import time

from conftest import RUNTIME

RUNS = 200
PER_RUN_TIMEOUT = 5  # seconds; a healthy run of /bin/true takes well under 1 s
TOTAL_BUDGET = 90


def test_many_foreground_runs_of_true(ctx):
    """A foreground `run` of a process that exits at once must always
    return. A runtime that blocks signals only after starting the container
    loses the SIGCHLD of a fast exit and hangs now and then."""
    ctx.config["process"]["args"] = ["/bin/true"]
    ctx.save()
    hangs, failures, slowest = [], [], 0.0
    t_all = time.monotonic()
    for i in range(RUNS):
        cid = ctx.new_id()
        t0 = time.monotonic()
        try:
            cp = subprocess.run([RUNTIME, "--root", ctx.root, "run", "--bundle", ctx.bundle,
                                 cid], stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=PER_RUN_TIMEOUT, cwd=ctx.dir)
            if cp.returncode != 0:
                failures.append((i, cp.returncode, cp.stderr[-300:]))
        except subprocess.TimeoutExpired:
            hangs.append(i)
            ctx.rt("delete", "--force", cid, timeout=15)
        slowest = max(slowest, time.monotonic() - t0)
        if len(hangs) >= 3 or len(failures) >= 3:
            break
        assert time.monotonic() - t_all < TOTAL_BUDGET, f"too slow: {i + 1} runs"
    assert not hangs, f"runs that did not return within {PER_RUN_TIMEOUT}s: {hangs}"
    assert not failures, failures
    assert ctx.list_ids() == []


def test_create_delete_cycles(ctx):
    """create + delete of a never-started container, many times: nothing
    accumulates (state entries, processes, mounts are checked at teardown)."""
    ctx.sh("sleep 100")
    ctx.save()
    for _ in range(30):
        cid, _ = ctx.create(save=False)
        ctx.delete(cid)
    assert ctx.list_ids() == []


# The exec stress below: how many execs each variant makes. The race it guards against hit
# 1-2 of every 200-300 execs, so 300 fails with near certainty where the old race remains,
# in ~15 s a variant on an idle 2-core machine (CI). KILN_STRESS_EXECS=1000 is the issue's
# acceptance run, made by hand.
EXECS = int(os.environ.get("KILN_STRESS_EXECS", "300"))
EXEC_BUDGET = max(30, EXECS * 0.6)  # seconds per variant: kiln ~0.2 s an exec, runc ~0.35 s, on a loaded machine


@contextlib.contextmanager
def busy_loops():
    """One busy loop per CPU: the runtime's processes are preempted at arbitrary points,
    which is what opens the windows of a protocol that relies on an order."""
    loops = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for p in loops:
            p.kill()
            p.wait(timeout=10)


def exec_loop(ctx, cid, *flags_and_cmd, check=None):
    """`exec` EXECS times; returns the failures as (index, rc, stderr tail)."""
    failures = []
    t_all = time.monotonic()
    for i in range(EXECS):
        cp = subprocess.run([RUNTIME, "--root", ctx.root, "exec", *flags_and_cmd[:-1], cid, flags_and_cmd[-1]],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            timeout=PER_RUN_TIMEOUT, cwd=ctx.dir)
        if cp.returncode != 0 or (check and not check()):
            failures.append((i, cp.returncode, cp.stderr[-300:]))
        if len(failures) >= 3:
            break
        assert time.monotonic() - t_all < EXEC_BUDGET, f"too slow: {i + 1} execs in {EXEC_BUDGET}s"
    return failures


def test_many_execs_of_true(ctx):
    """Every exec of a program that exits at once succeeds, under CPU load: the parent and
    the processes behind it (intermediate, the exec'd process) never race on the channel."""
    ctx.sh("sleep 600")
    cid, _ = ctx.create()
    ctx.start(cid)
    with busy_loops():
        failures = exec_loop(ctx, cid, "true")
    assert not failures, failures
    ctx.delete(cid, force=True)


def test_many_detached_execs_into_a_user_namespace(ctx):
    """The same into a user-namespaced container, detached with a pid file: the case that
    failed CI with "protocol error: unexpected InitPid" after the program had run."""
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["mounts"] = [m for m in ctx.config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    ctx.sh("sleep 600")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid_file = os.path.join(ctx.dir, "exec.pid")

    def pid_written():
        with open(pid_file) as f:
            pid = int(f.read())
        os.unlink(pid_file)
        return pid > 0

    with busy_loops():
        failures = exec_loop(ctx, cid, "-d", "--pid-file", pid_file, "true", check=pid_written)
    assert not failures, failures
    ctx.delete(cid, force=True)
