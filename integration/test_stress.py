"""Robustness: many short containers in a row."""

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
