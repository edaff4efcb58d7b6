"""The classic container escapes stay fixed: one regression test (or more) per CVE.

Each test attacks from where the real exploit did (a process in the container, a
malicious rootfs or config) and checks what the host sees afterwards."""

import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import IS_KILN, RUNTIME, RUNTIME_NAME, Result, run_to_files, runc_deviates, wait_for


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


# Starts argv[1:] with exactly the environment given as raw entries: no mapping (Python's
# os.execve) can hold an entry without "=", or bytes that are no text.
EXEC_RAW_ENV = r"""
import ctypes, os, sys
env = [bytes.fromhex(h) for h in sys.argv[1].split(",")]
args = [os.fsencode(a) for a in sys.argv[2:]]
argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
envp = (ctypes.c_char_p * (len(env) + 1))(*env, None)
libc = ctypes.CDLL(None, use_errno=True)
libc.execve(args[0], argv, envp)
sys.exit("execve: %d" % ctypes.get_errno())
"""


def test_the_protected_binary_runs_with_the_callers_argv_and_environment_byte_for_byte(ctx):
    # kiln runs create from an unwritable image of itself (re-executed): what the caller
    # passed must reach it whole. A createRuntime hook runs as the runtime's child, in the
    # runtime's namespaces: its parent's cmdline and environ are the runtime's own.
    report = ctx.hostdir("report")
    hook = f"cat /proc/$PPID/environ > {report}/environ; cat /proc/$PPID/cmdline > {report}/cmdline"
    ctx.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}]}
    ctx.save()
    cid = ctx.new_id()
    env = [b"PATH=/usr/sbin:/usr/bin:/sbin:/bin", b"NO_EQUALS_SIGN", b"BYTES=\xff\xfe ok",
           b"EMPTY=", b"=LEADING"]
    args = [ctx.runtime, "--root", ctx.root, "create", "--bundle", ctx.bundle, cid]
    r = Result(run_to_files([sys.executable, "-c", EXEC_RAW_ENV,
                             ",".join(e.hex() for e in env), *args], 60, cwd=ctx.dir,
                            tmp=ctx.dir))
    assert r.ok, r
    ctx.state(cid)
    with open(os.path.join(report, "environ"), "rb") as f:
        assert f.read().split(b"\0")[:-1] == env
    with open(os.path.join(report, "cmdline"), "rb") as f:
        assert f.read().split(b"\0")[:-1] == [a.encode() for a in args]
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


# ------------------------------------------- the caller's fds stay out of the container


def fds_of_init(ctx, cid):
    """fd number -> link target of the container's pid 1, as a process exec'd into it sees."""
    r = ctx.rt("exec", cid, "sh", "-c",
               'for f in /proc/1/fd/*; do echo "${f##*/} $(readlink $f)"; done')
    assert r.ok, r
    return {int(n): t for n, _, t in (line.partition(" ") for line in r.out.splitlines())}


def identity(f):
    """What /proc/PID/fd shows for our file object: a path, or pipe:[ino], socket:[ino]."""
    return os.readlink(f"/proc/self/fd/{f.fileno()}")


def read_file(path):
    with open(path) as f:
        return f.read()


def test_created_init_holds_none_of_the_callers_fds(ctx):
    # Until `start`, init holds what the runtime left open, and every process exec'd into the
    # container may open /proc/1/fd/N: a host file the caller had open for writing must not
    # be there to write through.
    secret = os.path.join(ctx.dir, "caller-file")
    host_file = open(secret, "w")
    pipe_r, pipe_w = (os.fdopen(fd, mode) for fd, mode in zip(os.pipe(), "rw"))
    sock, peer = socket.socketpair()
    caller = {50: host_file, 51: pipe_w, 52: sock}
    try:
        ctx.config["process"]["args"] = ["sleep", "100"]
        ctx.save()
        cid = ctx.new_id()
        r = ctx.rt_with_fds(caller, "create", "--bundle", ctx.bundle, cid)
        assert r.ok, r
        ctx.state(cid)
        theirs = {identity(f) for f in caller.values()}
        fds = fds_of_init(ctx, cid)
        assert {0, 1, 2} <= set(fds), fds
        assert not set(fds) & set(caller), fds
        assert not set(fds.values()) & theirs, fds
        # What init does hold, besides stdio: the exec fifo it waits on (a path, O_PATH) and,
        # kiln's, its end of the channel to `create` (whose side is gone); runc's Go runtime
        # holds an epoll fd and a pipe.
        extra = sorted(t for n, t in fds.items() if n > 2)
        assert any(t.endswith("/exec.fifo") for t in extra), fds
        if IS_KILN:
            assert [t.split(":")[0] for t in extra] == [os.path.join(ctx.root, cid, "exec.fifo"),
                                                         "socket"], fds
        r = ctx.rt("exec", cid, "sh", "-c", "echo written-from-the-container > /proc/1/fd/50")
        assert r.rc != 0, r
        ctx.start(cid)
        # The program holds stdio only.
        assert sorted(fds_of_init(ctx, cid)) == [0, 1, 2]
        ctx.delete(cid, force=True)
    finally:
        for f in (host_file, pipe_r, pipe_w, sock, peer):
            f.close()
    assert read_file(secret) == ""


@pytest.mark.parametrize("command", ["create", "run -d"])
@pytest.mark.parametrize("passed", ["--preserve-fds", "LISTEN_FDS"])
def test_passed_fds_reach_the_program_and_no_other(ctx, command, passed):
    # fd 3 is handed over (--preserve-fds 1, or socket activation); fd 50 is not.
    given, kept = os.path.join(ctx.dir, "given"), os.path.join(ctx.dir, "kept")
    with open(given, "w") as g, open(kept, "w") as k:
        ctx.sh("echo from-the-program >&3; exec sleep 100")
        ctx.save()
        cid = ctx.new_id()
        flags = ["--preserve-fds", "1"] if passed == "--preserve-fds" else []
        env = "export LISTEN_FDS=1 LISTEN_PID=$$;" if passed == "LISTEN_FDS" else ""
        r = ctx.rt_with_fds({3: g, 50: k}, *command.split(), "--bundle", ctx.bundle, *flags, cid,
                     env=env)
    assert r.ok, r
    ctx.state(cid)
    if command == "create":
        fds = fds_of_init(ctx, cid)
        assert fds.get(3) == given and 50 not in fds, fds
        r = ctx.rt("exec", cid, "sh", "-c", "echo written-from-the-container > /proc/1/fd/50")
        assert r.rc != 0, r
        ctx.start(cid)
    assert wait_for(lambda: read_file(given) == "from-the-program\n"), read_file(given)
    fds = fds_of_init(ctx, cid)
    assert sorted(fds) == [0, 1, 2, 3] and fds[3] == given, fds
    ctx.delete(cid, force=True)
    assert read_file(kept) == ""


def test_exec_callers_fds_do_not_reach_the_process(ctx):
    ctx.config["process"]["args"] = ["sleep", "100"]
    cid, _ = ctx.create()
    ctx.start(cid)
    secret = os.path.join(ctx.dir, "caller-file")
    with open(secret, "w") as f:
        # ls lists its own fds: stdio and the one it reads the directory with.
        r = ctx.rt_with_fds({50: f}, "exec", cid, "sh", "-c",
                     "ls /proc/self/fd; echo written-from-the-container >&50")
    assert r.rc != 0 and "Bad file descriptor" in r.err, r
    assert r.out.split() == ["0", "1", "2", "3"], r
    assert read_file(secret) == ""
    ctx.delete(cid, force=True)


# ------------------------------- CVE-2021-30465: mount destination symlinks


def host_tmp_dir(ctx, prefix):
    """A directory in the host's /tmp, where the escaping symlinks point."""
    d = os.path.join("/tmp", f"{prefix}-{uuid.uuid4().hex[:10]}")
    os.mkdir(d)
    ctx.cleanups.append(lambda: shutil.rmtree(d, ignore_errors=True))
    with open(os.path.join(d, "canary"), "w") as f:
        f.write("untouched\n")
    return d


def assert_host_dir_untouched(d):
    assert os.listdir(d) == ["canary"], os.listdir(d)
    with open(os.path.join(d, "canary")) as f:
        assert f.read() == "untouched\n"
    assert d not in host_mounts(), f"{d} is mounted on the host"


@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_cve_2021_30465_bind_through_symlink_lands_inside(ctx, form):
    host = host_tmp_dir(ctx, "kiln-escape")
    name = os.path.basename(host)
    target = ("/../../../../../../tmp/" if form == "absolute" else "../../../../../../tmp/") + name
    os.makedirs(os.path.join(ctx.rootfs, "mnt"), exist_ok=True)
    os.symlink(target, os.path.join(ctx.rootfs, "mnt", "escape"))
    payload = ctx.hostdir("payload")
    open(os.path.join(payload, "payload"), "w").close()
    ctx.add_mount({"destination": "/mnt/escape", "type": "bind", "source": payload,
                   "options": ["rbind"]})
    out = ctx.run_sh(f"ls /tmp/{name}; grep -c ' /tmp/{name} ' /proc/self/mountinfo")
    assert out == "payload\n1\n", out
    assert_host_dir_untouched(host)


def test_cve_2021_30465_symlink_swap_race(ctx):
    # The PoC's race: while the runtime resolves and mounts, something swaps the
    # destination between a directory and a symlink out of the rootfs.
    host = host_tmp_dir(ctx, "kiln-race")
    race = os.path.join(ctx.rootfs, "race")
    payload = ctx.hostdir("payload")
    open(os.path.join(payload, "payload"), "w").close()
    ctx.add_mount({"destination": "/race", "type": "bind", "source": payload,
                   "options": ["rbind"]})
    inside = "/tmp/" + os.path.basename(host)
    ctx.sh(f"ls /race/ {inside}/ 2>/dev/null")
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            for make in (lambda: os.mkdir(race), lambda: os.symlink(host, race)):
                try:
                    make()
                except OSError:
                    pass
                # Each form stays a few ms, so some runs resolve it whole.
                time.sleep(random.uniform(0, 0.01))
                try:
                    (os.rmdir if os.path.isdir(race) and not os.path.islink(race) else os.unlink)(race)
                except OSError:
                    pass

    t = threading.Thread(target=swap)
    t.start()
    ran = 0
    try:
        for _ in range(20):
            _, r = ctx.run()
            # A run may fail (the destination vanished mid-way, or the swap
            # removed it under the running container); one that shows the
            # payload saw it inside its root, and none may see the host's dir.
            assert "canary" not in r.out, r
            ran += "payload" in r.out
            assert_host_dir_untouched(host)
    finally:
        stop.set()
        t.join(10)
    assert ran > 0, "no run got through the race"


# --------------------------- CVE-2019-16884, CVE-2019-19921: a redirected /proc


def test_bind_over_proc_sys_is_refused(ctx):
    fake = ctx.hostdir("fake-sys")
    victim = os.path.join(fake, "net", "ipv4", "ip_forward")
    os.makedirs(os.path.dirname(victim))
    with open(victim, "w") as f:
        f.write("host\n")
    ctx.add_mount({"destination": "/proc/sys", "type": "bind", "source": fake,
                   "options": ["rbind"]})
    ctx.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    with open(victim) as f:
        assert f.read() == "host\n", "the sysctl was written into the host's file"
    assert os.listdir(fake) == ["net"], "the runtime wrote into the host's directory"
    if IS_KILN:
        assert len(r.err.strip().splitlines()) == 1, r
        assert f"mounts[{len(ctx.config['mounts']) - 1}].destination" in r.err, r


@pytest.mark.kiln_only
def test_lxcfs_files_may_be_mounted_inside_proc(ctx):
    fake = os.path.join(ctx.dir, "uptime")
    with open(fake, "w") as f:
        f.write("1.00 2.00\n")
    ctx.add_mount({"destination": "/proc/uptime", "type": "bind", "source": fake,
                   "options": ["bind"]})
    assert ctx.run_sh("cat /proc/uptime") == "1.00 2.00\n"


@pytest.mark.parametrize("target", ["/tmp", "../tmp"])
def test_proc_on_a_symlink_is_refused(ctx, target):
    shutil.rmtree(os.path.join(ctx.rootfs, "proc"))
    os.makedirs(os.path.join(ctx.rootfs, "tmp"), exist_ok=True)
    os.symlink(target, os.path.join(ctx.rootfs, "proc"))
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    assert "must be mounted on" in r.err, r
    assert not os.path.exists(os.path.join(ctx.rootfs, "tmp", "self")), "procfs was mounted at /tmp"
    if IS_KILN:
        assert "mounts[0].destination" in r.err and len(r.err.strip().splitlines()) == 1, r


def test_sysctl_into_a_fake_proc_is_refused(ctx):
    # No proc mount: /proc/sys/... is the image's own file, not the kernel's.
    ctx.config["mounts"] = [m for m in ctx.config["mounts"] if m["destination"] != "/proc"]
    fake = os.path.join(ctx.rootfs, "proc", "sys", "net", "ipv4", "ip_forward")
    os.makedirs(os.path.dirname(fake))
    with open(fake, "w") as f:
        f.write("image\n")
    ctx.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    with open(fake) as f:
        assert f.read() == "image\n", "the sysctl was written into the image's file"
    if IS_KILN:
        assert "linux.sysctl.net.ipv4.ip_forward" in r.err and "not on procfs" in r.err, r


# ------------------------- maskedPaths, readonlyPaths: not undoable from inside


# /proc/timer_list stands for every masked file (this kernel has no /proc/kcore).
UNDO = ("umount /proc/timer_list 2>/dev/null && echo unmasked || echo masked; "
        "cat /proc/timer_list 2>/dev/null | head -c 16 | wc -c; "
        "umount /proc/sys 2>/dev/null; mount -o remount,rw /proc/sys 2>/dev/null; "
        "echo escaped 2>/dev/null > /proc/sys/kernel/hostname && echo hostname-written "
        "|| echo hostname-refused; hostname; "
        "echo 0 2>/dev/null > /proc/sysrq-trigger && echo sysrq-written || echo sysrq-refused")


def test_masks_hold_without_cap_sys_admin(ctx):
    out = ctx.run_sh(UNDO)
    assert out.split() == ["masked", "0", "hostname-refused", "runc", "sysrq-refused"], out


def test_masks_fall_with_cap_sys_admin(ctx):
    # The control: with CAP_SYS_ADMIN the same script does undo them (in the
    # container's own mount and UTS namespaces), so the test above can fail.
    for s in ("bounding", "effective", "permitted"):
        ctx.config["process"]["capabilities"][s].append("CAP_SYS_ADMIN")
    out = ctx.run_sh(UNDO)
    assert out.split()[:2] == ["unmasked", "16"], out
    assert out.split()[2:4] == ["hostname-written", "escaped"], out



# ------------------------------------- --no-pivot: the host's /proc stays reachable


def test_no_pivot_leaves_no_whole_procfs_to_mount_again(ctx):
    """runc's no_pivot.bats: with --no-pivot the host's mounts stay in the container's mount
    namespace, below the chroot. A whole procfs among them would let a process that is root in
    a nested user namespace mount a fresh, unmasked procfs and write /proc/sysrq-trigger."""
    caps = ctx.config["process"]["capabilities"]
    caps["bounding"].append("CAP_SETFCAP")
    caps["permitted"].append("CAP_SETFCAP")
    ctx.config["process"]["args"] = [
        "unshare", "-mrpf", "sh", "-euxc",
        "mount -t proc none /proc && echo h > /proc/sysrq-trigger"]
    _, r = ctx.run("--no-pivot")
    assert r.rc == 1, r
    assert "mount: permission denied" in r.err, r


def test_no_pivot_container_still_has_its_proc_and_sys(ctx):
    """What is hidden is the host's: the container's own /proc and /sys are there."""
    ctx.sh("cat /proc/self/comm; test -d /sys/kernel && echo sys; grep -c ' /proc ' /proc/self/mountinfo")
    _, r = ctx.run("--no-pivot")
    assert r.rc == 0 and r.out.split() == ["cat", "sys", "1"], r
