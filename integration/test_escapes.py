"""The classic container escapes stay fixed: one regression test (or more) per CVE.

Each test attacks from where the real exploit did (a process in the container, a
malicious rootfs or config) and checks what the host sees afterwards."""

import hashlib
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import IS_KILN, RUNTIME, RUNTIME_NAME, runc_deviates, wait_for


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


# ------------------------------------------------- CVE-2019-5736: /proc/self/exe


# The attacker: a startContainer hook runs in the container while init is still
# the runtime (a fork of it for kiln, `runc init` for runc). It keeps init's
# binary open, waits for init to exec the user's program, then for a few
# seconds (long enough for `start` to exit, after which no running process
# keeps the file busy) tries to append to the binary through the fd.
ATTACK = r"""
exec 3</proc/1/exe || { echo "cannot open /proc/1/exe" > /report/result; exit 0; }
(
    exec 2>>/report/log </dev/null >/dev/null
    i=0
    while [ "$(cat /proc/1/comm)" != sleep ] && [ $i -lt 100 ]; do
        sleep 0.05; i=$((i+1))
    done
    comm=$(cat /proc/1/comm)
    tries=0; wrote=0
    while [ $tries -lt 20 ]; do
        printf X >> /proc/self/fd/3 && wrote=$((wrote+1))
        tries=$((tries+1)); sleep 0.1
    done
    echo "init=$comm tries=$tries wrote=$wrote" > /report/result
) &
"""


def test_cve_2019_5736_runtime_binary_not_writable_from_container(ctx):
    # A copy of the runtime, so that a regression corrupts only the copy.
    rtdir = ctx.hostdir("runtime-copy")
    copy = os.path.join(rtdir, RUNTIME_NAME)
    shutil.copy2(RUNTIME, copy)
    ctx.runtime = copy
    before = sha256(copy)
    report = ctx.hostdir("report")
    ctx.add_mount({"destination": "/report", "type": "bind", "source": report,
                   "options": ["rbind", "rw"]})
    ctx.config["process"]["args"] = ["sleep", "10"]
    ctx.config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", ATTACK]}]}
    cid, _ = ctx.create()
    ctx.start(cid)
    result = os.path.join(report, "result")
    logfile = os.path.join(report, "log")
    assert wait_for(lambda: os.path.exists(result), 15), \
        "the attacker never reported: " + (open(logfile).read() if os.path.exists(logfile) else "")
    with open(result) as f:
        outcome = f.read().strip()
    with open(os.path.join(report, "log")) as f:
        errors = f.read()
    # The attack really ran after the exec, and every write was refused.
    assert outcome == "init=sleep tries=20 wrote=0", (outcome, errors)
    assert sha256(copy) == before, f"the runtime binary was modified: {errors}"
    ctx.delete(cid, force=True)
