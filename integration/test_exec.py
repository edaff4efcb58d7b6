"""`exec`: another process in a running container. What it sees (namespaces, cgroup, user,
environment, capabilities, seccomp, terminal) and what the host sees of it."""

import errno
import json
import os
import pty
import select
import subprocess
import time

import pytest

from conftest import IS_RUNC, RUNTIME, runc_deviates, wait_for
from test_terminal import ConsoleServer

NS = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"]


def running(ctx, script="sleep 60"):
    """A detached container running `script`; returns (id, init pid)."""
    ctx.sh(script)
    cid, _ = ctx.create()
    ctx.start(cid)
    return cid, ctx.state(cid)["pid"]


def ex(ctx, cid, *cmd, flags=(), **kw):
    return ctx.rt("exec", *flags, cid, *cmd, **kw)


def host_ns(pid, name):
    return os.readlink(f"/proc/{pid}/ns/{name}")


def test_exec_joins_every_namespace_of_init(ctx):
    ctx.config["linux"]["namespaces"].append({"type": "cgroup"})
    cid, pid = running(ctx)
    r = ex(ctx, cid, "sh", "-c", " ".join(f"readlink /proc/self/ns/{n};" for n in NS) + " echo pid=$$")
    assert r.ok, r
    lines = r.out.split()
    assert lines[:-1] == [host_ns(pid, n) for n in NS], r.out
    # In the container's pid namespace, where init is 1.
    assert lines[-1] != "pid=1" and int(lines[-1][4:]) > 1, r.out
    ctx.delete(cid, force=True)


def test_exec_in_a_cgroup_namespace_is_rooted_at_the_containers_cgroup(ctx):
    # The process enters its cgroup past the second fork, and only then the cgroup namespace:
    # it sees what init sees, its cgroup as the root, and stands where init does.
    ctx.config["linux"]["namespaces"].append({"type": "cgroup"})
    cid, init = running(ctx)
    pid_file = os.path.join(ctx.dir, "exec.pid")
    r = ex(ctx, cid, "sleep", "30", flags=["-d", "--pid-file", pid_file])
    assert r.ok, r
    pid = int(open(pid_file).read())
    ctx.track(pid)
    assert open(f"/proc/{pid}/cgroup").read() == open(f"/proc/{init}/cgroup").read()
    assert os.readlink(f"/proc/{pid}/ns/cgroup") == os.readlink(f"/proc/{init}/ns/cgroup")
    r = ex(ctx, cid, "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup")
    assert r.ok, r
    own, _, inits = r.out.partition("--\n")
    assert own == inits and own, r.out
    assert all(line.endswith(":/") for line in own.splitlines()), own
    ctx.delete(cid, force=True)


def test_exec_sees_the_container(ctx):
    cid, _ = running(ctx)
    r = ex(ctx, cid, "sh", "-c", "hostname; ps -o pid,args | grep -w 'sleep 60'; ls /; touch /x 2>&1; true")
    assert r.ok, r
    assert r.out.startswith("runc\n"), r.out
    assert "    1 sleep 60" in r.out, r.out
    assert "Read-only file system" in r.out, r.out
    ctx.delete(cid, force=True)


def test_exit_status_is_the_process_s(ctx):
    cid, _ = running(ctx)
    assert ex(ctx, cid, "sh", "-c", "exit 7").rc == 7
    assert ex(ctx, cid, "sh", "-c", "kill -KILL $$").rc == 128 + 9
    assert ex(ctx, cid, "true").rc == 0
    ctx.delete(cid, force=True)


def test_missing_binary_is_an_error_and_the_container_keeps_running(ctx):
    cid, pid = running(ctx)
    r = ex(ctx, cid, "kiln-no-such-binary")
    assert r.rc == 255 and "kiln-no-such-binary" in r.err and "executable file not found" in r.err, r
    assert ctx.state(cid)["status"] == "running"
    assert ex(ctx, cid, "true").ok
    ctx.delete(cid, force=True)


def test_env_cwd_user_and_groups(ctx):
    ctx.config["process"]["env"].append("FROM_CONFIG=1")
    cid, _ = running(ctx)
    r = ex(ctx, cid, "sh", "-c", "echo $FROM_CONFIG $EXTRA $TERM; pwd; id -u; id -g; id -G",
           flags=["--env", "EXTRA=x", "--env", "TERM=dumb", "--cwd", "/tmp", "-u", "1000:1001",
                  "--additional-gids", "2000", "--additional-gids", "2001"])
    assert r.ok, r
    assert r.out.split("\n") == ["1 x dumb", "/tmp", "1000", "1001", "1001 2000 2001", ""], r.out
    ctx.delete(cid, force=True)


def test_process_file(ctx):
    cid, _ = running(ctx)
    proc = {"args": ["sh", "-c", "echo $A; pwd; id -u"], "env": ["A=from-file", "PATH=/bin"],
            "cwd": "/etc", "user": {"uid": 33, "gid": 33}, "terminal": False}
    path = os.path.join(ctx.dir, "process.json")
    with open(path, "w") as f:
        json.dump(proc, f)
    r = ex(ctx, cid, flags=["--process", path])
    assert r.ok and r.out == "from-file\n/etc\n33\n", r
    ctx.delete(cid, force=True)


CAP_SYS_ADMIN = 1 << 21


def status_of(text):
    return dict(l.split(":\t", 1) for l in text.splitlines() if ":\t" in l)


def test_cap_and_no_new_privs(ctx):
    ctx.config["process"]["noNewPrivileges"] = False
    cid, _ = running(ctx)
    plain = status_of(ex(ctx, cid, "cat", "/proc/self/status").out)
    assert not int(plain["CapEff"], 16) & CAP_SYS_ADMIN and plain["NoNewPrivs"] == "0", plain
    r = ex(ctx, cid, "cat", "/proc/self/status", flags=["--cap", "CAP_SYS_ADMIN", "--no-new-privs"])
    st = status_of(r.out)
    assert int(st["CapEff"], 16) & CAP_SYS_ADMIN and int(st["CapBnd"], 16) & CAP_SYS_ADMIN, st
    assert st["NoNewPrivs"] == "1", st
    ctx.delete(cid, force=True)


CAP_NET_RAW = 1 << 13
CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


@pytest.mark.parametrize("inheritable", [None, ["CAP_KILL"]])
@pytest.mark.parametrize("user", ["0:0", "1000:1000"])
def test_cap_grows_bounding_effective_and_permitted_only(ctx, user, inheritable):
    # runc (CVE-2022-29162): --cap never reaches the inheritable set, so the kernel raises no
    # ambient capability for it either, and a user other than root loses it at execve.
    if inheritable:
        ctx.config["process"]["capabilities"]["inheritable"] = inheritable
    cid, _ = running(ctx)
    r = ex(ctx, cid, "cat", "/proc/self/status", flags=["--cap", "CAP_NET_RAW", "-u", user])
    assert r.ok, r
    st = status_of(r.out)
    root = user == "0:0"
    has = {s: bool(int(st[s], 16) & CAP_NET_RAW) for s in CAP_SETS}
    assert has == {"CapInh": False, "CapPrm": root, "CapEff": root, "CapBnd": True, "CapAmb": False}, st
    ctx.delete(cid, force=True)


@runc_deviates("1.1.5 ignores linux.personality (runc applies it since 1.2)")
def test_personality_applies_to_exec_d_processes(ctx):
    ctx.config["linux"]["personality"] = {"domain": "LINUX32"}
    cid, _ = running(ctx, "uname -m > /dev/shm/init-arch; sleep 60")
    r = ex(ctx, cid, "sh", "-c", "cat /dev/shm/init-arch; uname -m")
    assert r.ok and r.out.split() == ["i686", "i686"], r
    ctx.delete(cid, force=True)


def test_process_file_without_user_runs_as_root(ctx):
    # The schema does not require process.user: runc reads it as 0:0.
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    cid, _ = running(ctx)
    path = os.path.join(ctx.dir, "process.json")
    with open(path, "w") as f:
        json.dump({"args": ["id"], "cwd": "/", "env": ["PATH=/bin"]}, f)
    r = ex(ctx, cid, flags=["--process", path])
    assert r.ok and r.out.startswith("uid=0(root) gid=0(root)"), r
    ctx.delete(cid, force=True)


@pytest.mark.kiln_only
def test_process_file_without_user_errors_point_into_the_file(ctx):
    # kiln completes the missing user itself: the error's field and position are still the file's.
    cid, _ = running(ctx)
    path = os.path.join(ctx.dir, "process.json")
    with open(path, "w") as f:
        f.write('{"args": ["id"],\n "cwd": 5}')
    r = ex(ctx, cid, flags=["--process", path])
    assert r.rc != 0 and "process.json: cwd: invalid type: integer `5`" in r.err, r
    assert "at line 2 column 9" in r.err and len(r.err.strip().splitlines()) == 1, r
    ctx.delete(cid, force=True)


def test_rlimits_of_the_process(ctx):
    cid, _ = running(ctx)
    assert ex(ctx, cid, "sh", "-c", "ulimit -n").out == "1024\n"
    ctx.delete(cid, force=True)


def test_the_container_s_seccomp_filter_applies(ctx):
    ctx.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}]}
    cid, _ = running(ctx)
    r = ex(ctx, cid, "sh", "-c", "grep ^Seccomp: /proc/self/status; mkdir /dev/shm/a 2>&1; true")
    assert "Seccomp:\t2" in r.out and "Invalid cross-device link" in r.out, r
    ctx.delete(cid, force=True)


def test_detach_and_pid_file(ctx):
    cid, init = running(ctx)
    pid_file = os.path.join(ctx.dir, "exec.pid")
    r = ex(ctx, cid, "sleep", "30", flags=["-d", "--pid-file", pid_file])
    assert r.ok and r.out == "", r
    pid = int(open(pid_file).read())
    ctx.track(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read() == b"sleep\x0030\x00"
    for n in NS:
        assert host_ns(pid, n) == host_ns(init, n)
    # The cgroup of init, in every hierarchy.
    assert open(f"/proc/{pid}/cgroup").read() == open(f"/proc/{init}/cgroup").read()
    # delete --force takes the exec'd process with the container.
    ctx.delete(cid, force=True)
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                    open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 5)


def test_preserve_fds(ctx):
    cid, _ = running(ctx)
    rd, wr = os.pipe()
    try:
        # The runtime gets the pipe as its fd 3, and passes it on as the process's fd 3.
        r = subprocess.run(["bash", "-c", f'exec 3>&{wr} {wr}>&-; exec "$@"', "bash", RUNTIME, "--root", ctx.root,
                            "exec", "--preserve-fds", "1", cid, "sh", "-c", "echo through-fd3 >&3"],
                           pass_fds=(wr,), capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r
    finally:
        os.close(wr)
    got = os.read(rd, 100) if select.select([rd], [], [], 2)[0] else b""
    os.close(rd)
    assert got == b"through-fd3\n"
    # Without --preserve-fds the process gets no fd 3.
    r = subprocess.run(["sh", "-c", 'exec 3>/dev/null; exec "$@"', "sh", RUNTIME, "--root", ctx.root,
                        "exec", cid, "sh", "-c", "echo x >&3"], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "Bad file descriptor" in r.stderr, r
    ctx.delete(cid, force=True)


def test_user_namespace_is_joined(ctx):
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["mounts"] = [m for m in ctx.config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    cid, _ = running(ctx)
    pid_file = os.path.join(ctx.dir, "exec.pid")
    r = ex(ctx, cid, "sh", "-c", "cat /proc/self/uid_map; id -u; sleep 30", flags=["-d", "--pid-file", pid_file])
    assert r.ok, r
    pid = int(open(pid_file).read())
    ctx.track(pid)
    uid_line = [l for l in open(f"/proc/{pid}/status").read().splitlines() if l.startswith("Uid:")][0]
    assert uid_line.split()[1:] == ["100000"] * 4, uid_line
    r = ex(ctx, cid, "sh", "-c", "cat /proc/self/uid_map; id -u")
    assert r.out.split() == ["0", "100000", "65536", "0"], r
    ctx.delete(cid, force=True)


def test_tty_in_the_foreground(ctx):
    cid, _ = running(ctx)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([RUNTIME, "--root", ctx.root, "exec", "-t", cid, "sh", "-c", "tty; echo done"],
                             stdin=slave, stdout=slave, stderr=slave, cwd=ctx.dir)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and b"done" not in out:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
        assert p.wait(timeout=15) == 0
    finally:
        os.close(master)
    assert b"/dev/pts/" in out and b"done" in out, out
    ctx.delete(cid, force=True)


def test_tty_to_a_console_socket(ctx):
    cid, _ = running(ctx)
    cs = ConsoleServer()
    ctx.cleanups.append(cs.close)
    r = ex(ctx, cid, "sh", "-c", "tty; sleep 1", flags=["-t", "-d", "--console-socket", cs.path])
    assert r.ok, r
    cs.wait_master()
    out = cs.read_until_eof(stop=b"/dev/pts/")
    assert "/dev/pts/" in out, out
    ctx.delete(cid, force=True)


def test_exec_into_a_stopped_container_is_refused(ctx):
    ctx.sh("true")
    cid, _ = ctx.create()
    ctx.start(cid)
    assert ctx.wait_status(cid, "stopped")
    r = ex(ctx, cid, "true")
    assert r.rc != 0 and "stopped" in r.err and len(r.err.strip().splitlines()) == 1, r
    ctx.delete(cid)


@pytest.mark.needs_cgroups
@runc_deviates("runc's exec --ignore-paused waits for the frozen process: it hangs until resume")
def test_exec_into_a_paused_container(ctx):
    mark = ctx.hostdir("mark")
    ctx.add_mount({"destination": "/mark", "type": "bind", "source": mark, "options": ["bind"]})
    cid, _ = running(ctx)
    assert ctx.rt("pause", cid).ok
    r = ex(ctx, cid, "true")
    assert r.rc != 0 and "paused" in r.err and len(r.err.strip().splitlines()) == 1, r
    # --ignore-paused: the process is made, and runs once the container is resumed.
    pid_file = os.path.join(ctx.dir, "exec.pid")
    r = ex(ctx, cid, "sh", "-c", "touch /mark/ran", flags=["-d", "--ignore-paused", "--pid-file", pid_file])
    assert r.ok, r
    ctx.track(int(open(pid_file).read()))
    time.sleep(0.3)
    assert not os.path.exists(os.path.join(mark, "ran"))
    assert ctx.rt("resume", cid).ok
    assert wait_for(lambda: os.path.exists(os.path.join(mark, "ran")), 5)
    ctx.delete(cid, force=True)


@pytest.mark.parametrize("flags,cmd,words", [
    ([], [], ("command", "args")),
    (["-u", "root"], ["true"], ("--user", "root")),
    pytest.param(["--cap", "CAP_BOGUS"], ["true"], ("CAP_BOGUS",),
                 marks=runc_deviates("runc warns about an unknown capability and runs the process")),
])
def test_bad_arguments_are_one_line_errors(ctx, flags, cmd, words):
    cid, _ = running(ctx)
    r = ex(ctx, cid, *cmd, flags=flags)
    # runc's exit status for a failed exec, which clients tell from the process's own.
    assert r.rc == 255 and any(w in r.err for w in words) and len(r.err.strip().splitlines()) == 1, r
    assert ctx.state(cid)["status"] == "running"
    ctx.delete(cid, force=True)


def test_exec_into_an_unknown_container(ctx):
    r = ctx.rt("exec", "kilntest-nosuch", "true")
    assert r.rc == 255 and "does not exist" in r.err, r


@pytest.mark.needs_cgroups
@pytest.mark.parametrize("sub", ["..", "../escape", "sub/../../escape"])
def test_exec_cgroup_outside_the_container_is_refused(ctx, sub):
    """Refused naming the path, as runc refuses it, not clamped to a cgroup the user did not
    name."""
    cid, init = running(ctx)
    v1 = any(l.split(":")[1] == "pids" for l in open(f"/proc/{init}/cgroup").read().splitlines())
    r = ex(ctx, cid, "true", flags=["--cgroup", f"pids:{sub}" if v1 else sub])
    assert r.rc != 0 and f"{sub} is not a sub cgroup path" in r.err.replace("\\", "").replace('"', ""), r
    ctx.delete(cid, force=True)


@pytest.mark.needs_cgroups
def test_exec_into_a_sub_cgroup(ctx):
    cid, init = running(ctx)
    lines = open(f"/proc/{init}/cgroup").read().splitlines()
    v1 = [l.split(":", 2) for l in lines if l.split(":")[1] == "pids"]
    if v1:
        path = v1[0][2]
        sub_dir, spec, line = f"/sys/fs/cgroup/pids{path}/sub", "pids:sub", lambda c: [l for l in c if ":pids:" in l]
    else:
        path = lines[0].split(":", 2)[2]
        sub_dir, spec, line = f"/sys/fs/cgroup{path}/sub", "sub", lambda c: c
    os.mkdir(sub_dir)
    pid_file = os.path.join(ctx.dir, "exec.pid")
    r = ex(ctx, cid, "sleep", "30", flags=["-d", "--pid-file", pid_file, "--cgroup", spec])
    assert r.ok, r
    pid = int(open(pid_file).read())
    ctx.track(pid)
    assert line(open(f"/proc/{pid}/cgroup").read().splitlines())[0].endswith(path + "/sub")
    r = ex(ctx, cid, "true", flags=["--cgroup", "pids:nosuch" if v1 else "nosuch"])
    assert r.rc == 255 and "nosuch" in r.err and ("does not exist" in r.err or "no such file" in r.err), r
    # delete removes the container's cgroups with what the exec made in them.
    ctx.delete(cid, force=True)
    assert not os.path.exists(sub_dir)


@pytest.mark.needs_cgroups
# Not strict: runc passes some runs and fails others. Its `runc init` is moved into the cgroup as a Go process
# whose runtime may start threads after the move; then pthread_create fails with EAGAIN and the
# exec aborts ("runtime/cgo: pthread_create failed"): about 1 in 15 execs on this host, most
# runs in the cgroup v2 guest (slower, so the runtime starts its threads later).
@pytest.mark.xfail(IS_RUNC, reason="runc deviates now and then: its Go init needs threads inside the full cgroup",
                   strict=False)
def test_exec_into_a_container_at_its_pids_limit(ctx):
    """A container at its pids limit (a fork bomb; here init alone under a limit of 1) can
    still be debugged: pids.max refuses forks, never a move (runc does the same). kiln's exec'd
    process is born in the cgroup where it can be; where the limit refuses that birth (v2), it
    is forked outside and moved in."""
    ctx.config["linux"]["resources"]["pids"] = {"limit": 1}
    cid, init = running(ctx)
    r = ex(ctx, cid, "true")
    assert r.ok, r
    # The process runs in the container's cgroup, in every hierarchy ...
    r = ex(ctx, cid, "cat", "/proc/self/cgroup")
    assert r.ok, r
    assert r.out == open(f"/proc/{init}/cgroup").read(), r
    # ... where the limit holds it as well: its own fork is refused.
    r = ex(ctx, cid, "sh", "-c", "true & wait")
    assert r.rc != 0 and "can't fork" in r.err, r


# ------------------------------------------------------------------ uid and gid range

MAX_ID = 2147483647


def _exec_process_file(ctx, user):
    p = dict(ctx.config["process"], args=["id"], user=user, terminal=False)
    path = os.path.join(ctx.dir, "process.json")
    with open(path, "w") as f:
        json.dump(p, f)
    return ["--process", path]


EXEC_ID_PLACES = {
    "user-uid": lambda ctx, v: ["-u", str(v), "id"],
    "user-gid": lambda ctx, v: ["-u", f"0:{v}", "id"],
    "additional-gids": lambda ctx, v: ["-g", str(v), "id"],
    "process-uid": lambda ctx, v: _exec_process_file(ctx, {"uid": v, "gid": 0}),
    "process-gid": lambda ctx, v: _exec_process_file(ctx, {"uid": 0, "gid": v}),
    "process-additionalGids": lambda ctx, v: _exec_process_file(ctx, {"uid": 0, "gid": 0, "additionalGids": [v]}),
}


@pytest.mark.parametrize("value", [MAX_ID + 1, 4294967295])
@pytest.mark.parametrize("place", list(EXEC_ID_PLACES))
def test_exec_id_out_of_range_is_refused(ctx, place, value):
    cid, _ = running(ctx)
    args = EXEC_ID_PLACES[place](ctx, value)
    if place.startswith("process"):
        r = ctx.rt("exec", *args, cid)
    else:
        r = ex(ctx, cid, *args[-1:], flags=args[:-1])
    assert r.rc != 0, r
    text = r.err.strip()
    assert text and "\n" not in text and "uids and gids must be in range 0-2147483647" in text, r
    if ctx.runtime.endswith("kiln"):
        assert str(value) in text, text
    # Nothing ran: the container holds its init and the ps that looks.
    ps = ex(ctx, cid, "ps", "-o", "args=")
    assert ps.ok and sorted(ps.out.split("\n")[:-1]) == ["ps -o args=", "sleep 60"], ps
    ctx.delete(cid, force=True)


@pytest.mark.parametrize("flags,want", [
    (["-u", str(MAX_ID)], f"uid={MAX_ID}"),
    (["-u", f"0:{MAX_ID}"], f"gid={MAX_ID}"),
    (["-g", str(MAX_ID)], f"groups={MAX_ID}"),
])
def test_exec_id_at_the_limit(ctx, flags, want):
    cid, _ = running(ctx)
    r = ex(ctx, cid, "id", flags=flags)
    assert r.ok and want in r.out, r
    ctx.delete(cid, force=True)
