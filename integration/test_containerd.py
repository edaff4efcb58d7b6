"""containerd 1.6 (`ctr` and the runc v2 shim) running its containers on the runtime under
test (`ctr run --runc-binary`), each scenario also on the apt runc as a control (see
clients.py). Checks what a `ctr` user sees: output, exit codes, files, `tasks ps/metrics`."""

import json
import os
import subprocess
import time

from clients import IMAGE, call_pty
from conftest import wait_for


def cap_eff(out):
    for line in out.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(out)


def test_run_echo_and_exit_codes(ctr):
    _, r = ctr.run("sh", "-c", "echo hello from ctr")
    assert r.rc == 0 and r.out == "hello from ctr\n", r
    _, r = ctr.run("sh", "-c", "echo err >&2; exit 3")
    assert r.rc == 3 and "err" in r.out + r.err, r


def test_runtime_is_the_one_asked_for(ctr):
    """The shim runs the binary given by --runc-binary, with --runc-root as its --root."""
    cid = ctr.start_bg("sleep", "1000")
    state = os.path.join(ctr.root, ctr.d.NAMESPACE, cid)
    assert os.path.isdir(state), state
    r = subprocess.run([ctr.binary, "--root", os.path.join(ctr.root, ctr.d.NAMESPACE),
                        "state", cid], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and json.loads(r.stdout)["pid"] == ctr.pid(cid), r


def test_missing_command(ctr):
    # The shim reads the runtime's error from log.json: without one it would only say
    # "unable to retrieve OCI runtime error".
    _, r = ctr.run("/no/such/command")
    assert r.rc != 0, r
    assert "/no/such/command" in r.err and "unable to retrieve OCI runtime error" not in r.err, r


def test_env_and_cwd(ctr):
    _, r = ctr.run("sh", "-c", 'echo "$FOO|$(pwd)|$PATH"',
                   opts=["--env", "FOO=bar baz", "--cwd", "/home/kilntest"])
    assert r.rc == 0, r
    foo, cwd, path = r.out.strip().split("|")
    assert (foo, cwd) == ("bar baz", "/home/kilntest") and "/bin" in path.split(":"), r


def test_read_only(ctr):
    _, r = ctr.run("sh", "-c", "touch /etc/x || echo refused", opts=["--read-only"])
    assert r.rc == 0 and "refused" in r.out and "Read-only file system" in r.out + r.err, r


def test_bind_mounts(ctr, tmp_path):
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "f").write_text("read me\n")
    _, r = ctr.run("sh", "-c", "cat /ro/f; touch /ro/x || echo ro-refused; "
                   "echo written > /rw/out",
                   opts=["--mount", f"type=bind,src={rw},dst=/rw,options=rbind:rw",
                         "--mount", f"type=bind,src={ro},dst=/ro,options=rbind:ro"])
    assert r.rc == 0 and "read me" in r.out and "ro-refused" in r.out, r
    assert (rw / "out").read_text() == "written\n"
    assert not (ro / "x").exists()


def test_detached_exec_ps(ctr):
    cid = ctr.start_bg("sh", "-c", "exec sleep 1000")
    r = ctr("tasks", "exec", "--exec-id", "e1", "--user", "1000", "--cwd", "/tmp", cid,
            "sh", "-c", 'echo "$(id -u) $(pwd)"')
    assert r.rc == 0 and r.out == "1000 /tmp\n", r
    r = ctr("tasks", "exec", "--exec-id", "e2", cid, "sh", "-c", "exit 6")
    assert r.rc == 6, r
    r = ctr("tasks", "exec", "--exec-id", "e3", cid, "ps", "-o", "pid,args")
    assert any(l.split()[:2] == ["1", "sleep"] for l in r.out.splitlines()[1:]), r
    pid = ctr.pid(cid)
    r = ctr("tasks", "ps", cid)
    assert r.rc == 0 and str(pid) in r.out.split(), r


def test_exec_tty(ctr):
    cid = ctr.start_bg("sleep", "1000")
    rc, out = call_pty(["ctr", "--address", ctr.d.sock, "--namespace", ctr.d.NAMESPACE,
                        "tasks", "exec", "-t", "--exec-id", "t1", cid, "sh", "-c",
                        "tty; exit 4"])
    assert rc == 4 and "/dev/pts/" in out, out


def test_run_tty(ctr):
    cid = ctr.new_id()
    rc, out = call_pty(["ctr", "--address", ctr.d.sock, "--namespace", ctr.d.NAMESPACE,
                        *ctr.run_args("--rm", "-t"), IMAGE, cid, "sh", "-c",
                        "tty; echo TERM=$TERM"])
    assert rc == 0 and "/dev/pts/0" in out, out


def test_run_tty_interactive(ctr):
    cid = ctr.new_id()
    rc, out = call_pty(["ctr", "--address", ctr.d.sock, "--namespace", ctr.d.NAMESPACE,
                        *ctr.run_args("--rm", "-t"), IMAGE, cid, "sh"],
                       input=b"echo typed-$((6*7)); exit 5\n")
    assert rc == 5 and "typed-42" in out, out


def test_signals(ctr, tmp_path):
    cid = ctr.start_bg("sh", "-c", "trap 'echo got-usr1 > /out/sig; exit 9' USR1; "
                       "while :; do sleep 0.1; done",
                       opts=["--mount", f"type=bind,src={tmp_path},dst=/out,options=rbind:rw"])
    time.sleep(0.3)  # let sh install its trap
    r = ctr("tasks", "kill", "-s", "SIGUSR1", cid)
    assert r.rc == 0, r
    assert wait_for(lambda: ctr.status(cid) == "STOPPED", 10, 0.1), ctr("tasks", "ls")
    assert (tmp_path / "sig").read_text() == "got-usr1\n"
    r = ctr("tasks", "delete", cid)
    assert r.rc == 0 and "exit code 9" in r.err, r
    # The default signal is SIGTERM, which PID 1 without a handler ignores; SIGKILL is not.
    cid = ctr.start_bg("sleep", "1000")
    assert ctr("tasks", "kill", cid).rc == 0
    time.sleep(0.5)
    assert ctr.status(cid) == "RUNNING"
    assert ctr("tasks", "kill", "-s", "SIGKILL", cid).rc == 0
    assert wait_for(lambda: ctr.status(cid) == "STOPPED", 10, 0.1)
    r = ctr("tasks", "delete", cid)
    assert "exit code 137" in r.err, r


def test_pause_resume(ctr, tmp_path):
    cid = ctr.start_bg("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /out/n; "
                       "sleep 0.05; done",
                       opts=["--mount", f"type=bind,src={tmp_path},dst=/out,options=rbind:rw"])
    assert wait_for(lambda: (tmp_path / "n").exists(), 10)
    assert ctr("tasks", "pause", cid).rc == 0
    assert ctr.status(cid) == "PAUSED"
    time.sleep(0.3)
    frozen = (tmp_path / "n").read_text()
    time.sleep(0.5)
    assert (tmp_path / "n").read_text() == frozen, "the counter ran while paused"
    assert ctr("tasks", "resume", cid).rc == 0
    assert ctr.status(cid) == "RUNNING"
    assert wait_for(lambda: (tmp_path / "n").read_text() != frozen, 5)


def test_memory_limit_metrics_oom(ctr):
    limit = 32 * 1024 * 1024
    cid = ctr.start_bg("sleep", "1000", opts=["--memory-limit", str(limit)])
    r = ctr("tasks", "metrics", "--format", "json", cid)
    assert r.rc == 0, r
    m = json.loads(r.out)
    assert m["memory"]["usage"]["limit"] == limit, m["memory"]
    assert m["memory"]["usage"]["usage"] > 0 and m["pids"]["current"] >= 1, m
    _, r = ctr.run("sh", "-c", "tail /dev/zero", opts=["--memory-limit", str(limit)])
    assert r.rc == 137, r


def test_cpus(ctr):
    # ctr's spec mounts no cgroupfs in the container: read the limit from the host's side.
    cid = ctr.start_bg("sleep", "1000", opts=["--cpus", "0.5"])
    cg = f"/sys/fs/cgroup/cpu/{ctr.d.NAMESPACE}/{cid}"
    with open(cg + "/cpu.cfs_quota_us") as q, open(cg + "/cpu.cfs_period_us") as p:
        assert (q.read().strip(), p.read().strip()) == ("50000", "100000")
    with open(cg + "/cgroup.procs") as f:
        assert str(ctr.pid(cid)) in f.read().split()


def test_seccomp(ctr, tmp_path):
    _, r = ctr.run("grep", "Seccomp:", "/proc/self/status")
    assert "Seccomp:\t0" in r.out, r
    _, r = ctr.run("grep", "Seccomp:", "/proc/self/status", opts=["--seccomp"])
    assert "Seccomp:\t2" in r.out, r
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]}))
    _, r = ctr.run("sh", "-c", "mkdir /tmp/d || echo refused; touch /tmp/f && echo touched",
                   opts=["--seccomp", "--seccomp-profile", str(profile)])
    assert r.rc == 0 and "refused" in r.out and "touched" in r.out, r
    assert "Operation not permitted" in r.out + r.err, r


def test_capabilities(ctr):
    script = "grep CapEff /proc/self/status; ip link set lo mtu 1400 && echo done || echo refused"
    _, r = ctr.run("sh", "-c", script)
    assert not cap_eff(r.out) & (1 << 12) and "refused" in r.out, r
    _, r = ctr.run("sh", "-c", script, opts=["--cap-add", "CAP_NET_ADMIN"])
    assert cap_eff(r.out) & (1 << 12) and "done" in r.out, r
    _, r = ctr.run("sh", "-c", "chown 1000 /tmp && echo done || echo refused",
                   opts=["--cap-drop", "CAP_CHOWN"])
    assert "refused" in r.out, r


def test_uidmap(ctr):
    cid = ctr.start_bg("sleep", "1000", opts=["--uidmap", "0:200000:65536",
                                              "--gidmap", "0:200000:65536"])
    pid = ctr.pid(cid)
    with open(f"/proc/{pid}/status") as f:
        uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
    assert uids == ["200000"] * 4, uids
    r = ctr("tasks", "exec", "--exec-id", "m", cid, "cat", "/proc/self/uid_map")
    assert r.out.split() == ["0", "200000", "65536"], r


def test_with_ns_network(ctr, tmp_path):
    """Join a network namespace made beforehand (as a CNI-using client does)."""
    name = f"kilntest-{os.getpid()}-{ctr.name}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "kt0", "type", "veth",
                        "peer", "name", "kt1"], check=True,
                       timeout=20)
        _, r = ctr.run("cat", "/proc/net/dev", opts=["--with-ns", f"network:/run/netns/{name}"])
        assert r.rc == 0 and "kt0:" in r.out, r
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=20)


def test_net_host(ctr):
    _, r = ctr.run("ls", "/sys/class/net", opts=["--net-host"])
    assert r.rc == 0 and sorted(r.out.split()) == sorted(os.listdir("/sys/class/net")), r
    _, r = ctr.run("sh", "-c", "ls /sys/class/net; ip -o link show lo")
    assert r.out.split()[0] == "lo" and ",UP" in r.out.splitlines()[-1], r


def test_kill_all_and_privileged(ctr):
    cid = ctr.start_bg("sh", "-c", "sleep 1000 & exec sleep 1001", opts=["--privileged"])
    r = ctr("tasks", "exec", "--exec-id", "c", cid, "sh", "-c",
            "grep CapEff /proc/self/status; mount -t tmpfs none /mnt && echo mounted")
    assert cap_eff(r.out) & (1 << 21) and "mounted" in r.out, r
    assert ctr("tasks", "kill", "--all", "-s", "SIGKILL", cid).rc == 0
    assert wait_for(lambda: ctr.status(cid) == "STOPPED", 10, 0.1)
    pids = ctr("tasks", "ps", cid)
    assert "sleep" not in pids.out


def test_tmpfs_mount_and_env_file(ctr, tmp_path):
    env = tmp_path / "env"
    env.write_text("FROM_FILE=yes\n")
    _, r = ctr.run("sh", "-c", "grep ' /t ' /proc/mounts; echo $FROM_FILE",
                   opts=["--mount", "type=tmpfs,src=tmpfs,dst=/t,options=size=1m:nosuid",
                         "--env-file", str(env)])
    assert r.rc == 0 and "tmpfs /t tmpfs" in r.out and "size=1024k" in r.out, r
    assert r.out.splitlines()[-1] == "yes", r


def test_custom_cgroup_path(ctr):
    parent = f"kilntest-cg-{os.getpid()}-{ctr.name}"
    cid = ctr.new_id()
    try:
        r = ctr(*ctr.run_args("--rm", "--cgroup", f"/{parent}/{cid}"), IMAGE, cid,
                "grep", "pids", "/proc/self/cgroup")
        assert r.rc == 0 and r.out.strip().endswith(f":pids:/{parent}/{cid}"), r
    finally:
        for root in os.listdir("/sys/fs/cgroup"):
            d = os.path.join("/sys/fs/cgroup", root, parent)
            if os.path.isdir(d):
                os.rmdir(d)  # the container's own cgroup must be gone by now


def test_rootfs_directory(ctr, rootfs_template, tmp_path):
    """`ctr run --rootfs DIR`: a plain directory instead of an image snapshot."""
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", rootfs_template, str(root)], check=True, timeout=60)
    cid = ctr.new_id()
    # No image config, so no PATH: runc 1.1.5 then finds no "sh" (execvp would search its
    # default path, as kiln does); an absolute path works for both.
    r = ctr(*ctr.run_args("--rm", "--rootfs"), str(root), cid, "/bin/sh", "-c",
            "echo hi > /from-container")
    assert r.rc == 0, r
    assert (root / "from-container").read_text() == "hi\n"


def test_kill_exec_process(ctr):
    cid = ctr.start_bg("sleep", "1000")
    r = ctr("tasks", "exec", "-d", "--exec-id", "bg", cid, "sleep", "999")
    assert r.rc == 0, r
    assert wait_for(lambda: "sleep 999" in exec_args(ctr, cid), 10, 0.2)
    assert ctr("tasks", "kill", "-s", "SIGKILL", "--exec-id", "bg", cid).rc == 0
    assert wait_for(lambda: "sleep 999" not in exec_args(ctr, cid), 10, 0.2)
    assert ctr.status(cid) == "RUNNING"


def exec_args(ctr, cid):
    return ctr("tasks", "exec", "--exec-id", f"ps{time.monotonic_ns()}", cid, "ps", "-o",
               "args").out
