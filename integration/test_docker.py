"""Docker (Debian's docker.io 20.10: dockerd, its containerd and the runc v2 shim) running its
containers on the runtime under test, registered with `dockerd --add-runtime`, each scenario also
on the apt runc as a control (see clients.py). Checks what a Docker user sees: output, exit
codes, files, `docker inspect`/`logs`/`stats`, and the cgroup files on the host."""

import os
import re
import urllib.request

import pytest

from clients import DOCKER_CGROUP_PARENT, DOCKER_IMAGE as IMAGE, DOCKER_SUBNET_PREFIX
from conftest import wait_for

CAP_CHOWN, CAP_NET_ADMIN, CAP_SYS_ADMIN = 0, 12, 21


def cap_eff(out):
    for line in out.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(out)


def host_cgroup(cid, ctrl):
    return f"/sys/fs/cgroup/{ctrl}/{DOCKER_CGROUP_PARENT}/{cid}"


def read(path):
    with open(path) as f:
        return f.read().strip()


def test_run_echo_on_the_runtime_asked_for(docker):
    assert docker.out(IMAGE, "echo", "hello from docker") == "hello from docker\n"
    cid = docker.start_bg(IMAGE, "sleep", "1000")
    assert docker.inspect(cid, "{{.HostConfig.Runtime}}") == docker.runtime
    # The shim ran this binary: dockerd 20.10 gives every runtime the root
    # exec-root/runtime-runc, where kiln, unlike runc, keeps a recovery record.
    state = os.path.join(docker.s.base, "exec", "runtime-runc", "moby", cid)
    files = os.listdir(state)
    assert "state.json" in files and ("recovery.json" in files) == (docker.name != "runc"), files


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_code(docker, code):
    r = docker.run("--rm", IMAGE, "sh", "-c", f"echo out; echo err >&2; exit {code}")
    assert r.rc == code and r.out == "out\n" and "err\n" in r.err, r


def test_missing_command_is_127(docker):
    r = docker.run("--rm", IMAGE, "/no/such/command")
    assert r.rc == 127 and "/no/such/command" in r.err, r


def test_env_workdir_user_stdin(docker):
    out = docker.out("-e", "FOO=bar baz", "-w", "/home/kilntest", "-u", "1000:2000", IMAGE,
                     "sh", "-c", 'echo "$FOO|$(pwd)|$(id -u):$(id -g)"')
    assert out == "bar baz|/home/kilntest|1000:2000\n", out
    r = docker.run("--rm", "-i", IMAGE, "tr", "a-z", "A-Z", input="hello stdin\n")
    assert r.rc == 0 and r.out == "HELLO STDIN\n", r


def test_run_tty(docker):
    rc, out = docker.pty("--rm", "-it", IMAGE, "sh", "-c", "tty; echo TERM=$TERM; exit 6")
    assert rc == 6, out
    assert "/dev/pts/0" in out and "TERM=xterm" in out, out


def test_bind_volume_read_only_root_and_tmpfs(docker, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "in").write_text("from the host\n")
    out = docker.out("--read-only", "--tmpfs", "/scratch", "-v", f"{vol}:/data", IMAGE, "sh",
                     "-c", "cat /data/in; echo back > /data/out; touch /x 2>&1; "
                     "touch /scratch/y && grep ' /scratch ' /proc/mounts")
    assert out.startswith("from the host\n") and "Read-only file system" in out, out
    assert re.search(r"^tmpfs /scratch tmpfs rw,", out, re.M), out
    assert (vol / "out").read_text() == "back\n"


def test_memory_pids_cpu_limits(docker):
    cid = docker.start_bg("-m", "32m", "--pids-limit", "20", "--cpus", "0.5", IMAGE,
                          "sleep", "1000")
    assert read(host_cgroup(cid, "memory") + "/memory.limit_in_bytes") == str(32 << 20)
    assert read(host_cgroup(cid, "pids") + "/pids.max") == "20"
    assert read(host_cgroup(cid, "cpu") + "/cpu.cfs_quota_us") == "50000"
    # what the container sees is the same
    r = docker("exec", cid, "cat", "/sys/fs/cgroup/pids/pids.max")
    assert r.rc == 0 and r.out == "20\n", r


def test_oom_is_137(docker):
    r = docker.run("--name", f"oom-{docker.name}", "-m", "16m", "--memory-swap", "16m", IMAGE,
                   "sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a)", timeout=120)
    assert r.rc == 137, r
    assert docker.inspect(f"oom-{docker.name}", "{{.State.OOMKilled}}") == "true"


def test_pids_limit_stops_forks(docker):
    r = docker.run("--rm", "--pids-limit", "10", IMAGE, "sh", "-c",
                   "for i in $(seq 20); do sleep 2 & done; echo all-forked")
    assert r.rc == 2 and "can't fork" in r.err and "all-forked" not in r.out, r


def test_privileged(docker):
    with open("/proc/self/status") as f:
        bounding = int(re.search(r"^CapBnd:\s+(\w+)", f.read(), re.M).group(1), 16)
    last = int(read("/proc/sys/kernel/cap_last_cap"))
    missing = [c for c in range(last + 1) if not bounding & (1 << c)]
    r = docker.run("--rm", "--privileged", IMAGE, "sh", "-c",
                   "grep CapEff /proc/self/status; mount -t tmpfs none /mnt && echo mounted; "
                   "test -c /dev/kmsg && echo host-devices; grep -E '^Seccomp:' /proc/self/status")
    if missing:
        # dockerd asks for every capability the kernel has; one that is not in the host's
        # bounding set cannot be granted, and the runtime's refusal reaches the user.
        assert r.rc == 125 and "OCI runtime create failed" in r.err, r
        return
    assert r.rc == 0, r
    caps = cap_eff(r.out)
    assert caps & (1 << CAP_SYS_ADMIN) and caps & (1 << CAP_NET_ADMIN), r
    assert "mounted" in r.out and "host-devices" in r.out and "Seccomp:\t0" in r.out, r


def test_cap_add_and_drop(docker):
    plain = cap_eff(docker.out(IMAGE, "grep", "CapEff", "/proc/self/status"))
    dropped = cap_eff(docker.out("--cap-drop", "CHOWN", IMAGE, "grep", "CapEff",
                                 "/proc/self/status"))
    only = cap_eff(docker.out("--cap-drop", "ALL", "--cap-add", "NET_ADMIN", IMAGE, "grep",
                              "CapEff", "/proc/self/status"))
    assert plain & (1 << CAP_CHOWN) and not plain & (1 << CAP_NET_ADMIN), hex(plain)
    assert dropped == plain & ~(1 << CAP_CHOWN), (hex(plain), hex(dropped))
    assert only == 1 << CAP_NET_ADMIN, hex(only)
    r = docker.run("--rm", "--cap-drop", "CHOWN", IMAGE, "chown", "1000", "/tmp")
    assert r.rc != 0 and "Operation not permitted" in r.err, r


def test_seccomp_default_and_unconfined(docker):
    out = docker.out(IMAGE, "sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                     "unshare -U true 2>&1; echo unshare=$?")
    assert "Seccomp:\t2" in out and "unshare=0" not in out, out
    out = docker.out("--security-opt", "seccomp=unconfined", IMAGE, "grep", "^Seccomp:",
                     "/proc/self/status")
    assert out == "Seccomp:\t0\n", out


def test_init(docker):
    out = docker.out("--init", IMAGE, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                     "echo pid=$$")
    assert out.startswith("/sbin/docker-init -- sh"), out
    assert "pid=1\n" not in out, out


def test_network_none_and_host(docker):
    out = docker.out("--network", "none", IMAGE, "ip", "-o", "link")
    assert [l.split(":")[1].strip() for l in out.splitlines()] == ["lo"], out
    host = sorted(os.listdir("/sys/class/net"))
    out = docker.out("--network", "host", IMAGE, "ls", "/sys/class/net")
    assert sorted(out.split()) == host, (out, host)


def test_network_bridge_and_published_port(docker):
    port = 18301 if docker.name == "runc" else 18300
    cid = docker.start_bg("-p", f"127.0.0.1:{port}:8080", IMAGE, "sh", "-c",
                          "echo hello-http > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    r = docker("exec", cid, "ip", "-o", "-4", "addr", "show", "eth0")
    assert r.rc == 0 and DOCKER_SUBNET_PREFIX in r.out, r

    def fetch():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as u:
                return u.read().decode()
        except OSError:
            return None
    assert wait_for(fetch, timeout=10, interval=0.2) == "hello-http\n"


def test_exec(docker):
    cid = docker.start_bg(IMAGE, "sleep", "1000")
    r = docker("exec", "-u", "1000", "-w", "/tmp", "-e", "X=y", cid, "sh", "-c",
               "echo $(id -u) $(pwd) $X; exit 4")
    assert r.rc == 4 and r.out == "1000 /tmp y\n", r
    r = docker("exec", "-i", cid, "cat", input="through exec\n")
    assert r.rc == 0 and r.out == "through exec\n", r
    r = docker("exec", cid, "ps", "-o", "comm")
    assert r.out.split()[1:] == ["sleep", "ps"], r


def test_logs_stop_restart_kill(docker):
    cid = docker.start_bg(IMAGE, "sh", "-c", "echo started; trap 'echo term; exit 5' TERM; "
                          "while true; do sleep 0.1; done")
    r = docker("stop", "-t", "10", cid)
    assert r.rc == 0, r
    assert docker.inspect(cid, "{{.State.ExitCode}}") == "5"
    assert docker("logs", cid).out == "started\nterm\n"
    assert docker("restart", "-t", "1", cid).rc == 0
    assert docker.wait_status(cid, "running")
    assert wait_for(lambda: docker("logs", cid).out.count("started") == 2, 10, 0.1)
    assert docker("kill", "-s", "KILL", cid).rc == 0
    r = docker("wait", cid)
    assert r.out.strip() == "137", r


def test_stop_escalates_to_kill(docker):
    cid = docker.start_bg(IMAGE, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
    assert docker("stop", "-t", "1", cid).rc == 0
    assert docker.inspect(cid, "{{.State.ExitCode}}") == "137"


def test_pause_unpause(docker):
    cid = docker.start_bg(IMAGE, "sleep", "1000")
    assert docker("pause", cid).rc == 0
    assert docker.inspect(cid, "{{.State.Status}}") == "paused"
    assert read(host_cgroup(cid, "freezer") + "/freezer.state") == "FROZEN"
    assert docker("unpause", cid).rc == 0
    assert docker.inspect(cid, "{{.State.Status}}") == "running"
    assert read(host_cgroup(cid, "freezer") + "/freezer.state") == "THAWED"


def test_update_and_stats(docker):
    cid = docker.start_bg("-m", "32m", IMAGE, "sleep", "1000")
    r = docker("update", "--memory", "64m", "--memory-swap", "64m", "--pids-limit", "30",
               "--cpu-shares", "512", cid)
    assert r.rc == 0, r
    assert read(host_cgroup(cid, "memory") + "/memory.limit_in_bytes") == str(64 << 20)
    assert read(host_cgroup(cid, "pids") + "/pids.max") == "30"
    assert read(host_cgroup(cid, "cpu") + "/cpu.shares") == "512"
    r = docker("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}", cid)
    assert r.rc == 0, r
    usage, pids = r.out.strip().split("|")
    assert usage.endswith("/ 64MiB") and pids == "1", r


def test_healthcheck(docker):
    cid = docker.start_bg("--health-cmd", "test -e /tmp/ok", "--health-interval", "1s",
                          "--health-retries", "1", IMAGE, "sh", "-c",
                          "touch /tmp/ok; sleep 1000")
    assert wait_for(lambda: docker.inspect(cid, "{{.State.Health.Status}}") == "healthy",
                    20, 0.2), docker.inspect(cid, "{{json .State.Health}}")
    assert docker("exec", cid, "rm", "/tmp/ok").rc == 0
    assert wait_for(lambda: docker.inspect(cid, "{{.State.Health.Status}}") == "unhealthy",
                    20, 0.2), docker.inspect(cid, "{{json .State.Health}}")


def test_userns_remap(docker_remap, tmp_path):
    uid, gid = docker_remap.s.remap_start(), docker_remap.s.remap_start("/etc/subgid")
    vol = tmp_path / "vol"
    vol.mkdir()
    os.chmod(vol, 0o777)
    out = docker_remap.out("-v", f"{vol}:/data", IMAGE, "sh", "-c",
                           "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                           "touch /data/made-by-root")
    maps = [l.split() for l in out.splitlines()[:2]]
    assert maps == [["0", str(uid), "65536"], ["0", str(gid), "65536"]], out
    assert out.splitlines()[2] == "0", out
    st = os.stat(vol / "made-by-root")
    assert (st.st_uid, st.st_gid) == (uid, gid), st
