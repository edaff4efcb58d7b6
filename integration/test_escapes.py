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


# ------------------------------------------- CVE-2024-21626: leaked fds, cwd


MARKER = "kiln-escape-test-rootfs-marker"


def test_cve_2024_21626_cwd_through_leaked_fd_stays_inside(ctx):
    # The exploit: process.cwd = /proc/self/fd/N, N a host directory the runtime
    # left open in init, gives a cwd outside the container's root, and `..`
    # from there walks the host's tree.
    open(os.path.join(ctx.rootfs, MARKER), "w").close()
    for n in range(3, 11):
        ctx.config["process"]["cwd"] = f"/proc/self/fd/{n}"
        ctx.sh("pwd; ls -a ../../../../../../../../../..")
        cid, r = ctx.run()
        if r.rc != 0:
            # Refused: one line, saying which field.
            assert r.out == "", r
            assert len(r.err.strip().splitlines()) == 1, r
            assert "process.cwd" in r.err or not IS_KILN, r
            continue
        pwd, *listing = r.out.splitlines()
        assert pwd.startswith("/") and "unreachable" not in pwd, (n, r)
        assert MARKER in listing, f"cwd /proc/self/fd/{n} escaped the rootfs: {r.out}"


def test_container_process_inherits_only_stdio(ctx):
    # `ls -l /proc/self/fd` lists ls's own fds: 0-2, plus the one it opened to
    # read that very directory.
    # busybox closes that one before it prints, so it shows no link target.
    out = ctx.run_sh("ls -l /proc/self/fd | grep -v '^total'")
    links = {}
    for line in out.splitlines():
        f = line.split()
        if "->" in f:
            links[int(f[f.index("->") - 1])] = f[f.index("->") + 1]
        else:
            links[int(f[-1])] = ""
    assert sorted(links) == [0, 1, 2, 3], out
    assert links[3] in ("", "/proc/self/fd") or links[3].endswith("/fd"), out


def test_init_holds_no_host_directory_before_exec(ctx):
    # A startContainer hook runs in the container while init still holds what
    # the runtime left open: no fd of init may be a directory, or
    # /proc/1/fd/N/.. walks the host (runc < 1.1.12 leaked /sys/fs/cgroup).
    report = ctx.hostdir("report")
    ctx.add_mount({"destination": "/report", "type": "bind", "source": report,
                   "options": ["rbind", "rw"]})
    ctx.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "cat /proc/1/comm > /report/init; ls /proc/1/fd > /report/fds; "
        "for f in /proc/1/fd/*; do [ -d $f/ ] && echo $f; done > /report/dirs; exit 0"]}]}
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc == 0, r
    with open(os.path.join(report, "fds")) as f:
        fds = f.read().split()
    with open(os.path.join(report, "dirs")) as f:
        dirs = f.read()
    assert len(fds) >= 3, fds  # the hook did see init's fds
    assert dirs == "", f"init holds directories: {dirs}"
