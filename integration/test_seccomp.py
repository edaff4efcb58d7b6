"""linux.seccomp: what a process inside the container sees of its filter, what the host sees
in /proc/PID/status, and the notify fd reaching a listener that answers for the kernel."""

import array
import ctypes
import errno
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import threading

import pytest

from conftest import (IS_KILN, REPO, compile_static, leftover_cgroups, leftover_processes,
                      runc_deviates, wait_for)

ALLOW = "SCMP_ACT_ALLOW"
CHMODS = ["chmod", "fchmodat", "fchmodat2"]
MKDIRS = ["mkdir", "mkdirat"]


def rule(names, action, **kw):
    r = {"names": names, "action": action}
    r.update(kw)
    return r


def set_profile(ctx, *rules, default=ALLOW, **kw):
    ctx.config["linux"]["seccomp"] = dict({"defaultAction": default, "syscalls": list(rules)}, **kw)


def mode_rules(action, op, value, value_two=None):
    """The same condition on the mode argument of chmod (arg 1) and fchmodat(2) (arg 2)."""
    def arg(i):
        a = {"index": i, "value": value, "op": op}
        if value_two is not None:
            a["valueTwo"] = value_two
        return a
    return [rule(["chmod"], action, args=[arg(1)]),
            rule(["fchmodat", "fchmodat2"], action, args=[arg(2)])]


CHMOD_REPORT = ("touch /dev/shm/f; for m in {modes}; do "
                "if chmod $m /dev/shm/f 2>/dev/null; then echo $m:ok; else echo $m:denied; fi; done")


def chmod_results(ctx, modes):
    out = ctx.run_sh(CHMOD_REPORT.format(modes=" ".join(modes)))
    return dict(line.split(":") for line in out.split())


def test_errno_ret_is_what_the_syscall_returns(ctx):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    out = ctx.run_sh("mkdir /dev/shm/a 2>&1; echo rc=$?; touch /dev/shm/b && echo touched")
    assert "Invalid cross-device link" in out and "rc=1" in out, out
    assert "touched" in out, out


def test_errno_without_errno_ret_is_eperm(ctx):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_ERRNO"))
    out = ctx.run_sh("mkdir /dev/shm/a 2>&1; true")
    assert "Operation not permitted" in out, out


@runc_deviates("runc calls fstatfs after loading the filter, which this allow-list denies")
def test_default_errno_ret(ctx):
    # Everything is denied with ENOSYS except what busybox's mkdir needs to start and fail.
    set_profile(ctx, default="SCMP_ACT_ERRNO", defaultErrnoRet=errno.ENOSYS)
    ctx.config["linux"]["seccomp"]["syscalls"] = [rule(
        ["execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
         "uname", "readlinkat", "getuid", "geteuid", "getgid", "getegid", "write", "exit_group",
         "mprotect", "mmap", "munmap", "getrandom", "rt_sigaction", "rt_sigprocmask", "getpid",
         "ioctl", "fcntl", "close", "openat", "newfstatat", "fstat", "read", "umask"], ALLOW)]
    ctx.config["process"]["args"] = ["mkdir", "/dev/shm/a"]
    _, r = ctx.run()
    assert r.rc == 1 and "Function not implemented" in r.err, r


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_killing_actions_end_the_process_with_sigsys(ctx, action):
    set_profile(ctx, rule(MKDIRS, action))
    out = ctx.run_sh("(mkdir /dev/shm/a); echo status=$?; ls /dev/shm")
    # 128 + SIGSYS (31): the subshell died of the signal, before the directory was made.
    assert "status=159" in out and "a" not in out.split("\n")[1:], out


def test_trace_without_a_tracer_is_enosys(ctx):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_TRACE"))
    out = ctx.run_sh("mkdir /dev/shm/a 2>&1; true")
    assert "Function not implemented" in out, out


def test_log_and_allow_let_the_call_through(ctx):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_LOG"), rule(["getpid"], ALLOW), default=ALLOW)
    out = ctx.run_sh("mkdir /dev/shm/a && ls -d /dev/shm/a")
    assert out == "/dev/shm/a\n", out


@pytest.mark.parametrize("op,value,value_two,expect", [
    ("SCMP_CMP_EQ", 0o777, None, {"777": "denied", "755": "ok", "700": "ok"}),
    ("SCMP_CMP_NE", 0o755, None, {"777": "denied", "755": "ok", "700": "denied"}),
    ("SCMP_CMP_GT", 0o755, None, {"777": "denied", "755": "ok", "700": "ok"}),
    ("SCMP_CMP_GE", 0o755, None, {"777": "denied", "755": "denied", "700": "ok"}),
    ("SCMP_CMP_LT", 0o755, None, {"777": "ok", "755": "ok", "700": "denied"}),
    ("SCMP_CMP_LE", 0o755, None, {"777": "ok", "755": "denied", "700": "denied"}),
    # value is the mask, valueTwo what the masked bits must equal: world-writable modes.
    ("SCMP_CMP_MASKED_EQ", 0o002, 0o002, {"777": "denied", "755": "ok", "702": "denied"}),
])
def test_argument_operators(ctx, op, value, value_two, expect):
    set_profile(ctx, *mode_rules("SCMP_ACT_ERRNO", op, value, value_two))
    assert chmod_results(ctx, expect) == expect


def test_conditions_on_one_argument_are_alternatives(ctx):
    # Two conditions on the same argument cannot both hold: runc adds one rule for each.
    eq = lambda i, v: {"index": i, "value": v, "op": "SCMP_CMP_EQ"}
    set_profile(ctx,
                rule(["chmod"], "SCMP_ACT_ERRNO", args=[eq(1, 0o777), eq(1, 0o700)]),
                rule(["fchmodat", "fchmodat2"], "SCMP_ACT_ERRNO", args=[eq(2, 0o777), eq(2, 0o700)]))
    assert chmod_results(ctx, ["777", "700", "755"]) == {"777": "denied", "700": "denied", "755": "ok"}


def test_conditions_on_distinct_arguments_must_all_hold(ctx):
    # kill(pid > 1, SIGUSR1) is denied; SIGUSR1 to pid 1 (the shell, which ignores it) and
    # SIGUSR2 to a child are not.
    set_profile(ctx, rule(["kill"], "SCMP_ACT_ERRNO", args=[
        {"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
        {"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]))
    out = ctx.run_sh("trap '' USR1; sleep 5 & c=$!; kill -USR1 $c 2>/dev/null; echo child_usr1=$?; "
                     "kill -USR1 1; echo self_usr1=$?; kill -USR2 $c; echo child_usr2=$?")
    assert out.split() == ["child_usr1=1", "self_usr1=0", "child_usr2=0"], out


def test_unknown_syscall_names_are_skipped(ctx):
    set_profile(ctx, rule(["kiln_no_such_syscall"] + MKDIRS, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    out = ctx.run_sh("mkdir /dev/shm/a 2>&1; true")
    assert "Invalid cross-device link" in out, out


@pytest.mark.parametrize("nnp", [True, False])
def test_host_sees_the_filter_and_no_new_privs(ctx, nnp):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_ERRNO"))
    ctx.config["process"]["noNewPrivileges"] = nnp
    ctx.sh("sleep 30")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid = ctx.state(cid)["pid"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
    assert status["Seccomp"].strip() == "2", status
    assert status["NoNewPrivs"].strip() == ("1" if nnp else "0"), status
    assert int(status["Seccomp_filters"]) >= 1, status
    ctx.delete(cid, force=True)


def test_runtime_setup_is_not_filtered(ctx):
    # kiln mounts, pivots, sets the hostname and changes identity before the filter is in
    # place: denying those calls to the container must not stop it from being built.
    set_profile(ctx, rule(["mount", "umount2", "pivot_root", "sethostname", "setresuid",
                           "setresgid", "setgroups", "capset", "prctl", "chdir", "keyctl"],
                          "SCMP_ACT_ERRNO"))
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    out = ctx.run_sh("hostname; id -u; hostname other 2>&1; true")
    assert out.splitlines()[:2] == ["runc", "1000"], out
    assert "Operation not permitted" in out, out


def test_without_no_new_privs_a_user_process_is_filtered(ctx):
    # Loading a filter needs CAP_SYS_ADMIN or no_new_privs: without either after the user
    # switch, the filter goes on before it, and still holds.
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    ctx.config["process"]["noNewPrivileges"] = False
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    out = ctx.run_sh("id -u; mkdir /dev/shm/a 2>&1; true")
    assert out.startswith("1000\n") and "Invalid cross-device link" in out, out


@pytest.mark.kiln_only
def test_filter_flags_are_accepted(ctx):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_LOG"), flags=[
        "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"])
    assert ctx.run_sh("mkdir /dev/shm/a && echo ok") == "ok\n"


def podman_profile(caps):
    """containers-common's default profile as Podman resolves it into config.json."""
    r = subprocess.run([os.path.join(REPO, "hack", "seccomp-profile"), *caps],
                       capture_output=True, text=True, timeout=20, check=True)
    return json.loads(r.stdout)


@pytest.mark.skipif(not os.path.exists("/usr/share/containers/seccomp.json"),
                    reason="containers-common's seccomp.json is not installed (hack/setup installs it)")
def test_podman_default_profile(ctx):
    caps = ctx.config["process"]["capabilities"]["bounding"]
    ctx.config["linux"]["seccomp"] = podman_profile(caps)
    # The process may set the hostname as far as capabilities go; the profile, made for a
    # container without CAP_SYS_ADMIN, still forbids sethostname.
    for s in ctx.config["process"]["capabilities"].values():
        s.append("CAP_SYS_ADMIN")
    out = ctx.run_sh("mkdir /dev/shm/d && echo made; ls / >/dev/null && echo listed; "
                     "ps >/dev/null && echo ps; grep Seccomp: /proc/self/status; "
                     "hostname other 2>&1; hostname")
    assert "made\nlisted\nps\n" in out, out
    assert "Seccomp:\t2" in out, out
    assert "Operation not permitted\nrunc\n" in out, out


def test_podman_profile_test_can_fail(ctx):
    # The same container without the profile: CAP_SYS_ADMIN alone lets sethostname through.
    for s in ctx.config["process"]["capabilities"].values():
        s.append("CAP_SYS_ADMIN")
    assert ctx.run_sh("hostname other 2>&1; hostname") == "other\n"


# ------------------------------------------------------------- an allow-list profile

# What busybox's `true` calls (strace), and its `sleep` besides.
TRUE_CALLS = ["execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
              "prlimit64", "readlink", "getrandom", "mprotect", "prctl", "getuid", "exit_group"]
SLEEP_CALLS = ["clock_nanosleep", "nanosleep", "rt_sigaction"]
# What the filter's position forces on the runtime once it is loaded: without no_new_privs the
# identity switch; telling the parent it is ready; in init the exec fifo; execve.
FORCED_CALLS = ["prctl", "capget", "capset", "setgroups", "setresgid", "setresuid",
                "sendmsg", "openat", "write", "close", "execve"]
RUNC_AFTER_FILTER = ("runc 1.1.5's init works on after the filter: without no_new_privs its fstatfs of "
                     "/proc/self/fd is denied (create fails), with it its Go runtime's futex (init crashes)")


def allow_list(ctx, *extra):
    """An allow-list profile (the OCI validation suite's kind): everything else is EPERM."""
    names = sorted(set(TRUE_CALLS + SLEEP_CALLS + FORCED_CALLS + list(extra)))
    set_profile(ctx, rule(names, ALLOW), default="SCMP_ACT_ERRNO")


@runc_deviates(RUNC_AFTER_FILTER)
@pytest.mark.parametrize("uid", [0, 1000])
@pytest.mark.parametrize("nnp", [True, False])
def test_allow_list_profile_create_start_and_run(ctx, nnp, uid):
    # Nothing of the runtime's own follows the filter: no close_range, getcwd, access, /proc.
    allow_list(ctx)
    ctx.config["process"].update(noNewPrivileges=nnp, user={"uid": uid, "gid": uid}, cwd="/tmp", args=["true"])
    cid, r = ctx.create()
    assert not r.err.strip(), r
    r = ctx.start(cid)
    assert not r.err.strip(), r
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)
    _, r = ctx.run()
    assert r.rc == 0 and not r.err.strip(), r


@runc_deviates(RUNC_AFTER_FILTER)
@pytest.mark.parametrize("nnp", [True, False])
def test_allow_list_profile_exec(ctx, nnp):
    allow_list(ctx)
    ctx.config["process"].update(noNewPrivileges=nnp, args=["sleep", "60"])
    cid, _ = ctx.create()
    ctx.start(cid)
    for flags in ([], ["-u", "1000:1000", "--cwd", "/tmp"]):
        r = ctx.rt("exec", *flags, cid, "true")
        assert r.rc == 0 and not r.err.strip(), r
    ctx.delete(cid, force=True)


USERNS = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.mark.parametrize("profile", [
    None, pytest.param("allow-list", marks=runc_deviates(RUNC_AFTER_FILTER))])
def test_cwd_only_the_user_can_enter(ctx, profile):
    # Root in a user namespace may not enter a directory of an unmapped owner that only a group
    # of the user's opens: the cwd is entered after the user switch (runc, crun), and checked
    # there, the one case where chdir and getcwd follow a filter loaded before the identity.
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = ctx.config["linux"]["gidMappings"] = USERNS
    ctx.config["mounts"] = [m for m in ctx.config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    late = os.path.join(ctx.rootfs, "late")
    os.mkdir(late)
    os.chown(late, 0, 101000)
    os.chmod(late, 0o070)
    ctx.config["process"].update(user={"uid": 1000, "gid": 1000}, cwd="/late")
    if profile:
        allow_list(ctx, "chdir", "getcwd")
        ctx.config["process"].update(noNewPrivileges=False, args=["true"])
        _, r = ctx.run()
        assert r.rc == 0 and not r.err.strip(), r
    else:
        assert ctx.run_sh("pwd") == "/late\n"


@pytest.mark.parametrize("nnp", [True, False])
def test_start_container_hooks_run_under_the_filter(ctx, nnp):
    # As runc: createContainer hooks run before the filter is loaded, startContainer ones after.
    out = ctx.hostdir("hooks")
    ctx.add_mount({"destination": "/hooks", "type": "bind", "source": out, "options": ["rbind", "rw"]})
    # createContainer hooks run before pivot_root, where the host's paths are still visible.
    hook = lambda name, d: {"path": "/bin/sh", "args": ["sh", "-c", f"mkdir {d}/{name}-dir 2>{d}/{name}; echo rc=$? >> {d}/{name}"]}
    ctx.config["hooks"] = {"createContainer": [hook("createContainer", out)], "startContainer": [hook("startContainer", "/hooks")]}
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    ctx.config["process"]["noNewPrivileges"] = nnp
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc == 0, r
    read = lambda name: open(os.path.join(out, name)).read()
    assert read("createContainer") == "rc=0\n" and os.path.isdir(os.path.join(out, "createContainer-dir"))
    assert "Invalid cross-device link" in read("startContainer") and "rc=1" in read("startContainer")
    assert not os.path.exists(os.path.join(out, "startContainer-dir"))


# ------------------------------------------------------------- SCMP_ACT_NOTIFY

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
NOTIF = struct.Struct("=QII iI Q 6Q")  # id, pid, flags, {nr, arch, ip, args[6]}
RESP = struct.Struct("=QqiI")


class Agent:
    """A seccomp agent: receives the notify fd and the container's state on a unix socket,
    then answers every notification with success, without doing the call."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        # One message and one notify fd per process that loaded the filter (init, each exec).
        self.messages, self.fds, self.calls, self.error = [], [], [], None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def message(self):
        return self.messages[0] if self.messages else None

    def serve(self):
        try:
            poller = select.poll()
            while not self.stop.is_set():
                try:
                    conn, _ = self.sock.accept()
                    with conn:
                        msg, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
                    self.messages.append(json.loads(msg))
                    self.fds.append(fds[0])
                    poller.register(fds[0], select.POLLIN)
                except socket.timeout:
                    pass
                for fd, ev in poller.poll(0):
                    if not ev & select.POLLIN:
                        poller.unregister(fd)  # the filter's processes are gone
                        continue
                    buf = bytearray(NOTIF.size)
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
                    fields = NOTIF.unpack(buf)
                    self.calls.append(fields[3])
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(RESP.pack(fields[0], 0, 0, 0)), True)
        except Exception as e:  # reported by the test
            self.error = e

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        for fd in self.fds:
            os.close(fd)


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_reaches_the_listener_which_answers(ctx, nnp):
    path = os.path.join(ctx.hostdir("agent"), "agent.sock")
    agent = Agent(path)
    ctx.cleanups.append(agent.close)
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_NOTIFY"), listenerPath=path, listenerMetadata="kiln-meta")
    ctx.config["process"]["noNewPrivileges"] = nnp
    # The agent says mkdir succeeded without making anything.
    out = ctx.run_sh("mkdir /dev/shm/a && echo made; ls -d /dev/shm/a 2>/dev/null || echo absent")
    assert out == "made\nabsent\n", out
    assert agent.error is None, agent.error
    m = agent.message
    assert m["fds"] == ["seccompFd"] and m["metadata"] == "kiln-meta", m
    assert m["state"]["id"] == ctx.ids[-1] and m["state"]["status"] == "creating", m
    assert m["pid"] == m["state"]["pid"] > 0, m
    assert wait_for(lambda: agent.calls, 2) and set(agent.calls) <= {83, 258}, agent.calls  # mkdir, mkdirat


def test_notify_for_an_exec_d_process(ctx):
    path = os.path.join(ctx.hostdir("agent"), "agent.sock")
    agent = Agent(path)
    ctx.cleanups.append(agent.close)
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_NOTIFY"), listenerPath=path)
    ctx.sh("sleep 60")
    cid, _ = ctx.create()
    ctx.start(cid)
    init = ctx.state(cid)["pid"]
    r = ctx.rt("exec", cid, "sh", "-c", "mkdir /dev/shm/e && echo made; ls -d /dev/shm/e 2>/dev/null || echo absent")
    assert r.ok and r.out == "made\nabsent\n", r
    assert agent.error is None, agent.error
    assert len(agent.messages) == 2, agent.messages
    m = agent.messages[1]
    # The exec'd process's own fd; the state is the running container's, init's pid in it.
    assert m["state"]["status"] == "running" and m["state"]["pid"] == init and m["pid"] != init, m
    ctx.delete(cid, force=True)


def test_notify_without_a_listener_fails_create(ctx):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_NOTIFY"), listenerPath=os.path.join(ctx.dir, "nobody.sock"))
    ctx.sh("true")
    _, r = ctx.create(check=False)
    assert r.rc != 0 and "nobody.sock" in r.err and len(r.err.strip().splitlines()) == 1, r


# ------------------------------------------------------------- bad profiles

@pytest.mark.parametrize("profile,field", [
    ({"defaultAction": ALLOW, "syscalls": [rule(["read"], "SCMP_ACT_ERRNO", args=[{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": ALLOW, "architectures": ["SCMP_ARCH_BOGUS"]}, "linux.seccomp.architectures"),
    ({"defaultAction": ALLOW, "syscalls": [rule(MKDIRS, "SCMP_ACT_NOTIFY")]}, "linux.seccomp.listenerPath"),
])
@pytest.mark.kiln_only
def test_bad_profiles_name_the_field(ctx, profile, field):
    ctx.config["linux"]["seccomp"] = profile
    _, r = ctx.create(check=False)
    assert r.rc != 0 and field in r.err and len(r.err.strip().splitlines()) == 1, r


def test_a_profile_refused_once_init_is_forked_leaves_nothing(ctx):
    # kiln compiles the profile after the clone, while init mounts, with init's cgroup made:
    # create still fails naming the field, and init, the cgroup and the state are all gone.
    set_profile(ctx, rule(MKDIRS, ALLOW),
                rule(["read"], "SCMP_ACT_ERRNO", args=[{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]))
    ctx.config["linux"]["resources"] = {"pids": {"limit": 64}}
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    if IS_KILN:
        assert "linux.seccomp.syscalls[1].args[0].index" in r.err, r
        assert len(r.err.strip().splitlines()) == 1, r
    assert cid not in ctx.list_ids()
    assert not os.path.exists(os.path.join(ctx.root, cid))
    assert leftover_cgroups([cid]) == []
    assert leftover_processes([ctx.dir], [cid], []) == []


@pytest.mark.kiln_only
def test_features_report_seccomp(ctx):
    r = ctx.rt("features")
    assert r.ok, r
    sc = json.loads(r.out)["linux"]["seccomp"]
    assert sc["enabled"] and "SCMP_ACT_NOTIFY" in sc["actions"] and "SCMP_CMP_MASKED_EQ" in sc["operators"]
    assert "SCMP_ARCH_X86_64" in sc["archs"]
    # This kernel (6.x) has every flag kiln knows.
    assert set(sc["supportedFlags"]) == set(sc["knownFlags"]) >= {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}


# ------------------------------------------------------------ syscalls the profile does not know

SYSCALL_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* Makes each numbered system call with zero arguments and prints NR:ERRNO (0: it succeeded). */
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long nr = strtol(argv[i], NULL, 0);
        errno = 0;
        long r = syscall(nr, 0, 0, 0, 0, 0, 0);
        printf("%ld:%d\n", nr, r == -1 ? errno : 0);
    }
    return 0;
}
"""

NR_GETPRIORITY, NR_CHROOT, NR_CLONE3, NR_OPENAT2, NR_UNASSIGNED = 140, 161, 435, 437, 1000

# What the static helper, and the runtimes after loading the filter (NNP: right before
# execve, plus runc's Go runtime), need: all older than rseq (334), the largest one named.
OLD_SYSCALLS = [
    "read", "write", "close", "fstat", "newfstatat", "lseek", "mmap", "mprotect", "munmap",
    "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "pread64", "readv",
    "writev", "access", "sched_yield", "madvise", "dup", "dup2", "dup3", "nanosleep", "getpid",
    "gettid", "tgkill", "clone", "execve", "exit", "exit_group", "wait4", "kill", "uname",
    "fcntl", "getdents64", "getcwd", "chdir", "fchdir", "readlink", "readlinkat", "openat",
    "getuid", "geteuid", "getgid", "getegid", "getppid", "arch_prctl", "prctl", "futex",
    "set_tid_address", "set_robust_list", "sigaltstack", "fstatfs", "statfs", "epoll_pwait",
    "epoll_ctl", "epoll_create1", "pipe2", "prlimit64", "getrandom", "rseq", "capget", "capset",
    "setresuid", "setresgid", "setgroups", "sched_getaffinity", "clock_gettime", "gettimeofday",
    "mincore", "umask",
]


@pytest.fixture(scope="session")
def syscall_helper(session_dir):
    """A static program that makes raw system calls, which busybox cannot."""
    exe, r = compile_static(session_dir, "syscall", SYSCALL_C)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static helper: {r.stderr.strip()}")
    return exe


def errnos_seen(ctx, helper, *nrs):
    shutil.copy(helper, os.path.join(ctx.rootfs, "bin", "syscall"))
    ctx.config["process"]["args"] = ["/bin/syscall"] + [str(n) for n in nrs]
    _, r = ctx.run()
    assert r.rc == 0, r
    return {int(k): int(v) for k, v in (l.split(":") for l in r.out.split())}


def test_syscalls_newer_than_the_profile_are_enosys(ctx, syscall_helper):
    # An old allow-list (Docker's layout: the three x86 ABIs, default EPERM) knows nothing
    # of clone3: glibc falls back to clone only on ENOSYS, so EPERM would break every
    # pthread_create. A call the profile denies keeps its errno; one it does not list but that
    # is older than what it lists is the default's.
    set_profile(ctx, rule(OLD_SYSCALLS, ALLOW), rule(["chroot"], "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV),
                default="SCMP_ACT_ERRNO", architectures=X86_ABIS)
    seen = errnos_seen(ctx, syscall_helper, NR_CLONE3, NR_UNASSIGNED, NR_CHROOT, NR_GETPRIORITY)
    assert seen == {NR_CLONE3: errno.ENOSYS, NR_UNASSIGNED: errno.ENOSYS, NR_CHROOT: errno.EXDEV,
                    NR_GETPRIORITY: errno.EPERM}, seen


X86_ABIS = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_a_newer_syscall_named_moves_the_enosys_line(ctx, syscall_helper):
    # With openat2 (437) denied by name, clone3 (435) is older than the profile: EPERM.
    set_profile(ctx, rule(OLD_SYSCALLS, ALLOW), rule(["chroot", "openat2"], "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV),
                default="SCMP_ACT_ERRNO", architectures=X86_ABIS)
    seen = errnos_seen(ctx, syscall_helper, NR_OPENAT2, NR_CLONE3, NR_UNASSIGNED)
    assert seen == {NR_OPENAT2: errno.EXDEV, NR_CLONE3: errno.EPERM, NR_UNASSIGNED: errno.ENOSYS}, seen


def test_a_killing_default_answers_enosys_for_unknown_syscalls(ctx, syscall_helper):
    set_profile(ctx, rule(OLD_SYSCALLS, ALLOW), default="SCMP_ACT_KILL_PROCESS", architectures=X86_ABIS)
    seen = errnos_seen(ctx, syscall_helper, NR_UNASSIGNED, NR_CLONE3)
    assert seen == {NR_UNASSIGNED: errno.ENOSYS, NR_CLONE3: errno.ENOSYS}, seen


@runc_deviates("1.1.5 puts the stub only on the profile's architectures; newer runc always "
               "adds the native one (commit ccc500c42), as Docker's profile on ppc64le lists none")
def test_a_profile_without_architectures_still_gets_enosys(ctx, syscall_helper):
    set_profile(ctx, rule(OLD_SYSCALLS, ALLOW), default="SCMP_ACT_ERRNO")
    seen = errnos_seen(ctx, syscall_helper, NR_UNASSIGNED, NR_CLONE3, NR_GETPRIORITY)
    assert seen == {NR_UNASSIGNED: errno.ENOSYS, NR_CLONE3: errno.ENOSYS, NR_GETPRIORITY: errno.EPERM}, seen


# ------------------------------------------------------------- the compiled program's cache

def cache_entries(ctx):
    d = os.path.join(ctx.root, ".cache", "seccomp")
    return {n: os.path.join(d, n) for n in os.listdir(d)} if os.path.isdir(d) else {}


def exdev_mkdir(ctx):
    return ctx.run_sh("mkdir /dev/shm/a 2>&1; echo rc=$?; touch /dev/shm/b && echo touched")


@pytest.mark.kiln_only
def test_a_cached_program_is_reused_and_a_damaged_one_never_loaded(ctx):
    # Another profile's program, whole and sound, but for an allow-all profile.
    set_profile(ctx, rule(["getpid"], "SCMP_ACT_ERRNO"))
    assert "rc=0" in exdev_mkdir(ctx)
    other = dict(cache_entries(ctx))
    assert len(other) == 1, other
    with open(next(iter(other.values())), "rb") as f:
        allow_all = f.read()

    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    out = exdev_mkdir(ctx)
    assert "Invalid cross-device link" in out and "touched" in out, out
    (name, path), = [(n, p) for n, p in cache_entries(ctx).items() if n not in other]
    with open(path, "rb") as f:
        good = f.read()
    assert list(cache_entries(ctx)) and not ctx.list_ids()
    # A second run reuses the entry: the file is the same one, not rewritten.
    ino = os.stat(path).st_ino
    assert "Invalid cross-device link" in exdev_mkdir(ctx)
    assert os.stat(path).st_ino == ino

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    damaged = {"truncated": good[:len(good) // 2], "empty": b"", "a flipped bit": bytes(flipped),
               "another profile's entry": allow_all, "garbage": b"\0" * 4096}
    for why, data in damaged.items():
        with open(path, "wb") as f:
            f.write(data)
        out = exdev_mkdir(ctx)
        assert "Invalid cross-device link" in out and "rc=1" in out and "touched" in out, (why, out)
        with open(path, "rb") as f:
            assert f.read() == good, f"{why}: the entry was not compiled again"
    # A symlink in its place is not followed (to the other profile's sound entry here).
    os.remove(path)
    os.symlink(next(iter(other.values())), path)
    assert "Invalid cross-device link" in exdev_mkdir(ctx)
    assert not os.path.islink(path)


@pytest.mark.kiln_only
def test_the_cache_is_not_a_container(ctx):
    set_profile(ctx, rule(MKDIRS, "SCMP_ACT_ERRNO"))
    ctx.run_sh("true")
    assert cache_entries(ctx)
    r = ctx.rt("list")
    assert r.ok and ".cache" not in r.out, r
    r = ctx.rt("state", ".cache")
    assert r.rc != 0 and ".cache" in r.err, r
