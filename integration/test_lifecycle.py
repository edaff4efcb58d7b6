"""created -> running -> stopped, and what each state allows."""

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import leftover_cgroups, pid_alive, runc_deviates, wait_for


def status(ctx, cid):
    r = ctx.rt("state", cid)
    assert r.ok, r
    return json.loads(r.out)["status"]


def test_full_lifecycle(ctx):
    out = ctx.hostdir("out")
    ctx.add_mount({"destination": "/out", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.sh("echo started > /out/started; read x < /out/fifo")
    os.mkfifo(os.path.join(out, "fifo"))
    cid, _ = ctx.create()
    st = ctx.state(cid)
    assert st["status"] == "created"
    pid = st["pid"]
    assert pid_alive(pid)
    # The user process has not run yet.
    assert not os.path.exists(os.path.join(out, "started"))

    ctx.start(cid)
    assert status(ctx, cid) == "running"
    assert wait_for(lambda: os.path.exists(os.path.join(out, "started")), 5)
    assert ctx.state(cid)["pid"] == pid  # same process, now running the user program

    # release the container: open the fifo for writing
    fd = os.open(os.path.join(out, "fifo"), os.O_WRONLY)
    os.write(fd, b"go\n")
    os.close(fd)
    assert ctx.wait_status(cid, "stopped"), ctx.rt("state", cid)
    assert wait_for(lambda: not pid_alive(pid), 5)
    ctx.delete(cid)
    assert ctx.rt("state", cid).rc != 0
    assert cid not in ctx.list_ids()
    assert not os.path.exists(os.path.join(ctx.root, cid))


def test_start_running_container_fails(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    r = ctx.rt("start", cid)
    assert r.rc != 0, r
    assert r.err.strip(), r
    assert status(ctx, cid) == "running"
    ctx.delete(cid, force=True)


def test_start_stopped_container_fails(ctx):
    ctx.sh("true")
    cid, _ = ctx.create()
    ctx.start(cid)
    assert ctx.wait_status(cid, "stopped")
    r = ctx.rt("start", cid)
    assert r.rc != 0, r
    assert status(ctx, cid) == "stopped"
    ctx.delete(cid)


def test_delete_running_without_force_fails(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid = ctx.state(cid)["pid"]
    r = ctx.rt("delete", cid)
    assert r.rc != 0, r
    assert r.err.strip(), r
    assert status(ctx, cid) == "running"
    assert pid_alive(pid)
    assert cid in ctx.list_ids()
    ctx.delete(cid, force=True)
    assert wait_for(lambda: not pid_alive(pid), 5)


def test_delete_created_container(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    r = ctx.rt("delete", cid)
    assert r.ok, r
    ctx.assert_gone(cid, pid)


def test_delete_and_run_leave_no_state_entry_and_no_cgroup(ctx):
    # delete removes the state files every container has by name, and walks the directory
    # only when it holds more: here a file someone else left there.
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    with open(os.path.join(ctx.root, cid, "left-by-someone"), "w") as f:
        f.write("x")
    assert ctx.delete(cid, force=True).ok
    ctx.assert_gone(cid, pid)
    assert not os.path.lexists(os.path.join(ctx.root, cid))
    assert wait_for(lambda: not leftover_cgroups([cid]), 2), leftover_cgroups([cid])
    # run of a container whose init (and pid namespace) is gone when run cleans up.
    ctx.sh("true")
    rid, r = ctx.run()
    assert r.rc == 0, r
    assert not os.path.lexists(os.path.join(ctx.root, rid))
    assert wait_for(lambda: not leftover_cgroups([rid]), 2), leftover_cgroups([rid])


def code_mapped_kib(pid):
    """KiB of the runtime's own code (its executable mappings of the binary init runs) that
    init's page tables map, from /proc/PID/smaps."""
    exe = os.stat(f"/proc/{pid}/exe")
    total, counting = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
                counting = "x" in fields[1] and int(fields[4]) == exe.st_ino
            elif counting and fields[0] == "Rss:":
                total += int(fields[1])
    return total


@runc_deviates("runc's init is a Go program, its runtime in use while it waits: megabytes")
def test_a_created_container_keeps_little_of_the_runtimes_code_mapped(ctx):
    # Init gives its code's page-table entries back just before it blocks on the exec fifo;
    # the pages it touches after that come back with their neighbours (the kernel maps a
    # 64 KiB window per fault): a release a few calls earlier had 450 KiB mapped again.
    ctx.sh("true")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    kib = code_mapped_kib(pid)
    assert 0 < kib <= 192, f"init maps {kib} KiB of the runtime's code while it waits"
    # What it gave back comes back from the page cache when it goes on.
    ctx.start(cid)
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


def test_kill_stopped_container_fails(ctx):
    ctx.sh("true")
    cid, _ = ctx.create()
    ctx.start(cid)
    assert ctx.wait_status(cid, "stopped")
    r = ctx.rt("kill", cid, "KILL")
    assert r.rc != 0, r
    assert r.err.strip(), r
    ctx.delete(cid)


def test_kill_stopped_container_says_not_running(ctx):
    """runc's words; and `kill --all` of a stopped container is no error (containerd's
    `ctr tasks rm -f` of an exited task kills with --all and must not fail)."""
    ctx.sh("true")
    cid, _ = ctx.create()
    ctx.start(cid)
    assert ctx.wait_status(cid, "stopped")
    for sig in ("KILL", "TERM", "0"):
        r = ctx.rt("kill", cid, sig)
        assert r.rc != 0 and "container not running" in r.err, r
    r = ctx.rt("kill", "--all", cid, "KILL")
    assert r.ok, r
    assert status(ctx, cid) == "stopped"
    ctx.delete(cid)


def test_signal_zero_checks_the_container_is_alive(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    assert ctx.rt("kill", cid, "0").ok
    ctx.start(cid)
    r = ctx.rt("kill", cid, "0")
    assert r.ok, r
    # Nothing was delivered: the process runs on.
    assert status(ctx, cid) == "running" and pid_alive(pid)
    assert ctx.rt("kill", cid, "KILL").ok
    assert ctx.wait_status(cid, "stopped")
    r = ctx.rt("kill", cid, "0")
    assert r.rc != 0 and "container not running" in r.err, r
    ctx.delete(cid)


@pytest.mark.needs_cgroups
@pytest.mark.parametrize("all_", [False, True], ids=["init", "all"])
def test_kill_paused_container_thaws_it(ctx, all_):
    """SIGKILL to a paused container: the cgroup is thawed after the signal, so the container
    dies at once instead of staying frozen with the signal pending."""
    ctx.drop_ns("pid")
    ctx.sh("sleep 100 & sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid = ctx.state(cid)["pid"]
    assert wait_for(lambda: len(json.loads(ctx.rt("ps", "-f", "json", cid).out or "null") or []) == 2, 5)
    pids = json.loads(ctx.rt("ps", "-f", "json", cid).out)
    for p in pids:
        ctx.track(p)
    assert ctx.rt("pause", cid).ok
    assert status(ctx, cid) == "paused"
    r = ctx.rt("kill", *(["--all"] if all_ else []), cid, "KILL")
    assert r.ok, r
    assert wait_for(lambda: not pid_alive(pid), 5), "init stayed frozen after SIGKILL"
    if all_:
        assert wait_for(lambda: not any(pid_alive(p) for p in pids), 5)
    assert status(ctx, cid) == "stopped"
    ctx.delete(cid, force=True)


def test_kill_created_container(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    assert ctx.rt("kill", cid, "KILL").ok
    assert ctx.wait_status(cid, "stopped")
    assert wait_for(lambda: not pid_alive(pid), 5)
    ctx.delete(cid)


def test_duplicate_id_fails_and_keeps_first(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    before = ctx.state(cid)
    _, r = ctx.create(cid, check=False)
    assert r.rc != 0, r
    assert r.err.strip(), r
    after = ctx.state(cid)
    assert after == before
    assert pid_alive(before["pid"])
    ctx.start(cid)
    assert status(ctx, cid) == "running"
    ctx.delete(cid, force=True)


def test_duplicate_id_run_fails(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    before = ctx.state(cid)
    _, r = ctx.run(cid=cid)
    assert r.rc != 0, r
    assert ctx.state(cid) == before
    ctx.delete(cid, force=True)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "..", "/abs"])
def test_invalid_ids_fail(ctx, bad):
    ctx.sh("true")
    ctx.save()
    r = ctx.rt("create", "--bundle", ctx.bundle, bad)
    assert r.rc != 0, r
    assert ctx.list_ids() == []
    # nothing created outside the root either
    assert not os.path.exists(os.path.join(ctx.dir, "x"))
    assert not os.path.exists(os.path.join(ctx.root, "a"))


@pytest.mark.parametrize("cmd", [["state"], ["start"], ["kill"], ["kill", "{id}", "KILL"],
                                 ["delete"], ["pause"], ["resume"], ["ps"]])
def test_unknown_id_fails(ctx, cmd):
    cid = "kilntest-nosuchcontainer"
    args = [a.format(id=cid) for a in cmd]
    if "{id}" not in cmd:
        args.append(cid)
    r = ctx.rt(*args)
    assert r.rc != 0, r
    assert r.err.strip(), r
    assert ctx.list_ids() == []


def test_delete_force_unknown_id_succeeds(ctx):
    # Clients (containerd's shim) call delete --force on cleanup paths and
    # runc treats a missing container as already deleted.
    r = ctx.rt("delete", "--force", "kilntest-nosuchcontainer")
    assert r.rc == 0, r


def test_container_exits_before_start_observed(ctx):
    """A short process: state goes straight to stopped; delete without -f works."""
    ctx.sh("exit 3")
    cid, _ = ctx.create()
    ctx.start(cid)
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


def test_state_of_container_whose_init_died_outside(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid = ctx.state(cid)["pid"]
    os.kill(pid, 9)
    assert ctx.wait_status(cid, "stopped"), ctx.rt("state", cid)
    assert ctx.state(cid)["pid"] == 0
    ctx.delete(cid)


# A caller that never reaps, as a shim between two waits: a subreaper (the container's init,
# or an `exec` process, is reparented to it when the runtime exits) that runs the runtime,
# prints its pid and reaps nothing until its stdin closes.
UNREAPING_CALLER = r"""
import ctypes, os, sys
assert ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.execv(sys.argv[1], sys.argv[1:])
print(pid, flush=True)
sys.stdin.read()
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


class UnreapingCaller:
    def __init__(self, ctx, *args):
        self.p = subprocess.Popen([sys.executable, "-c", UNREAPING_CALLER, ctx.runtime,
                                   "--root", ctx.root, *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ctx.cleanups.append(self.reap)
        self.runtime_pid = int(self.p.stdout.readline())

    def reap(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=10)


def stat_fields(pid):
    """/proc/PID/stat from field 3 (the state) on; [] once the process is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return []


def read_pid(path):
    assert wait_for(lambda: os.path.exists(path), 10), path
    with open(path) as f:
        return int(f.read())


def test_zombie_init_is_stopped_and_deleted(ctx):
    # Init, killed, waits as a zombie for the caller of `create`, which has not reaped it yet.
    ctx.config["process"]["args"] = ["sleep", "100"]
    ctx.save()
    cid = ctx.new_id()
    pid_file = os.path.join(ctx.dir, "init.pid")
    caller = UnreapingCaller(ctx, "create", "--bundle", ctx.bundle, "--pid-file", pid_file, cid)
    init = read_pid(pid_file)
    ctx.track(init)
    assert wait_for(lambda: stat_fields(init)[1:2] == [str(caller.p.pid)], 10), stat_fields(init)
    os.kill(init, signal.SIGKILL)
    assert wait_for(lambda: stat_fields(init)[:1] == ["Z"], 10), stat_fields(init)
    assert status(ctx, cid) == "stopped"
    r = ctx.rt("kill", cid, "KILL")
    assert r.rc != 0 and "not running" in r.err, r
    ctx.delete(cid, force=True)
    assert ctx.rt("state", cid).rc != 0 and cid not in ctx.list_ids()
    assert not os.path.exists(os.path.join(ctx.root, cid))
    assert leftover_cgroups([cid]) == []


@runc_deviates("a pid namespace's init that waits in its exit for the namespace's unreaped "
               "zombies stays running for runc: delete --force fails after 10s")
@pytest.mark.parametrize("how", ["kill", "delete --force"])
def test_init_waiting_for_an_unreaped_exec_process_is_stopped(ctx, how):
    # `exec` SIGKILLed: its process is reparented to the caller, which does not reap it. Killed
    # in its turn, it stays a zombie in the container's pid namespace, and init, killed, stays
    # in its exit until that zombie is reaped, which may be never: the container has stopped.
    ctx.config["process"]["args"] = ["sleep", "100"]
    cid, _ = ctx.create()
    ctx.start(cid)
    init = ctx.state(cid)["pid"]
    pid_file = os.path.join(ctx.dir, "exec.pid")
    caller = UnreapingCaller(ctx, "exec", "--pid-file", pid_file, cid, "sleep", "100")
    process = read_pid(pid_file)
    ctx.track(process)
    os.kill(caller.runtime_pid, signal.SIGKILL)
    assert wait_for(lambda: stat_fields(process)[1:2] == [str(caller.p.pid)], 10)
    if how == "kill":
        r = ctx.rt("kill", cid, "KILL")
        assert r.ok, r
        assert ctx.wait_status(cid, "stopped"), ctx.rt("state", cid)
        # Stopped as soon as init is exiting; the SIGKILL its exit sends the exec'd process
        # may not have run yet on a loaded machine.
        assert wait_for(
            lambda: stat_fields(init)[:1] == ["S"] and stat_fields(process)[:1] == ["Z"], 10
        ), (stat_fields(init), stat_fields(process))
    r = ctx.rt("delete", "--force", cid)
    assert r.ok, r
    assert stat_fields(process)[:1] == ["Z"]
    assert ctx.rt("state", cid).rc != 0 and cid not in ctx.list_ids()
    assert not os.path.exists(os.path.join(ctx.root, cid))
    assert leftover_cgroups([cid]) == []
    # Reaped at last, the zombie lets init end.
    caller.reap()
    assert wait_for(lambda: not stat_fields(init) or stat_fields(init)[:1] == ["Z"], 10)


def test_many_containers_one_root(ctx):
    ctx.sh("sleep 100")
    ids = [ctx.create()[0] for _ in range(5)]
    assert sorted(ctx.list_ids()) == sorted(ids)
    for cid in ids[:2]:
        ctx.start(cid)
    sts = {cid: status(ctx, cid) for cid in ids}
    assert [sts[c] for c in ids] == ["running"] * 2 + ["created"] * 3
    for cid in ids:
        ctx.delete(cid, force=True)
    assert ctx.list_ids() == []


@pytest.mark.needs_cgroups
def test_pause_resume(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid = ctx.state(cid)["pid"]
    r = ctx.rt("pause", cid)
    assert r.ok, r
    assert status(ctx, cid) == "paused"
    with open(f"/proc/{pid}/stat") as f:
        # frozen tasks sleep in the freezer (state D or S); not running
        assert f.read().rsplit(")", 1)[1].split()[0] in ("D", "S", "T")
    r = ctx.rt("resume", cid)
    assert r.ok, r
    assert status(ctx, cid) == "running"
    ctx.delete(cid, force=True)
