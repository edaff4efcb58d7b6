"""Podman, containerd (`ctr`) and containerd's CRI plugin with the systemd cgroup driver: each
container a transient scope that the runtime asks systemd for (`--systemd-cgroup`, which the
clients pass when told to use systemd: Podman's cgroup_manager = "systemd", the runc v2 shim's
SystemdCgroup option). The same fixtures as test_podman.py, test_containerd.py and test_cri.py
(clients.py), with the module's `cgroup_manager` systemd; each scenario on $RUNTIME and on the
apt runc (the control). Checked as a user sees it: what the client reports, the limits inside
the container, the scope's properties in `systemctl show`, its cgroup files, and no unit left.

systemd must be PID 1 and cgroup v2: hack/v2vm's systemd guest,
    V2VM_SYSTEMD=1 hack/v2vm /usr/bin/python3 -m pytest integration/test_systemd_clients.py
elsewhere every test is skipped, saying so."""

import os
import time

import pytest

from clients import IMAGE
from conftest import wait_for
from test_systemd import show, units_of

pytestmark = [
    pytest.mark.skipif(not os.path.isdir("/run/systemd/system"),
                       reason="systemd is not PID 1 here (no /run/systemd/system); "
                              "run in V2VM_SYSTEMD=1 hack/v2vm"),
    pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
                       reason="cgroup v2 only (the properties and files asserted are v2's)"),
]

MiB = 1 << 20


@pytest.fixture(scope="module")
def cgroup_manager():
    """Overrides clients.py's: every client of this module uses the systemd driver."""
    return "systemd"


def read(path):
    with open(path) as f:
        return f.read().strip()


def scope_dir(unit):
    """The scope's cgroup directory, where systemd says it is."""
    cg = show(unit, "ControlGroup")["ControlGroup"]
    assert cg, f"{unit} has no cgroup: {show(unit, 'ActiveState', 'LoadState')}"
    return "/sys/fs/cgroup" + cg


def assert_active_scope(unit, slice_):
    p = show(unit, "ActiveState", "Delegate", "Slice")
    assert p == {"ActiveState": "active", "Delegate": "yes", "Slice": slice_}, (unit, p)


def assert_unit_gone(unit, cgroup_dir, timeout=10):
    assert wait_for(lambda: not units_of(unit), timeout, 0.1), units_of(unit)
    assert not os.path.exists(cgroup_dir), cgroup_dir


def assert_limits(unit, memory, tasks, cpu_quota_per_sec, cpu_max):
    """The limits as the scope's properties and in its cgroup files."""
    p = show(unit, "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec")
    assert p == {"MemoryMax": str(memory), "TasksMax": str(tasks),
                 "CPUQuotaPerSecUSec": cpu_quota_per_sec}, (unit, p)
    d = scope_dir(unit)
    files = {f: read(f"{d}/{f}") for f in ("memory.max", "pids.max", "cpu.max")}
    assert files == {"memory.max": str(memory), "pids.max": str(tasks), "cpu.max": cpu_max}, \
        (d, files)


# ---------------------------------------------------------------- Podman


def podman_unit(cid):
    return f"libpod-{cid}.scope"


def test_podman_run_exit_code_in_a_scope(podman):
    cid = podman.start_bg("--cgroupns", "host", IMAGE, "sh", "-c",
                          "cat /proc/self/cgroup; exec sleep 1000")
    unit = podman_unit(cid)
    assert_active_scope(unit, "machine.slice")
    pid = podman.inspect(cid, "{{.State.Pid}}")
    assert pid in read(f"{scope_dir(unit)}/cgroup.procs").split()
    podman("kill", "-s", "KILL", cid)
    assert podman("wait", cid).out.strip() == "137"
    assert podman("logs", cid).out == f"0::/machine.slice/{unit}\n"
    d = "/sys/fs/cgroup/machine.slice/" + unit
    assert_unit_gone(unit, d)
    r = podman("run", "--rm", IMAGE, "sh", "-c", "echo out; exit 3")
    assert r.rc == 3 and r.out == "out\n", r


def test_podman_limits_inside_in_properties_and_files(podman):
    cid = podman.start_bg("--memory", "64m", "--pids-limit", "20", "--cpus", "0.5", IMAGE,
                          "sleep", "1000")
    unit = podman_unit(cid)
    assert_limits(unit, 64 * MiB, 20, "500ms", "50000 100000")
    # Inside: the container's cgroup namespace makes the scope its /sys/fs/cgroup.
    out = podman.out("exec", cid, "cat", "/proc/self/cgroup", "/sys/fs/cgroup/memory.max",
                     "/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/cpu.max")
    assert out.splitlines() == ["0::/", str(64 * MiB), "20", "50000 100000"], out


def test_podman_oom_exits_137(podman):
    cid = podman.start_bg("--memory", "32m", "--memory-swap", "32m", IMAGE, "tail",
                          "/dev/zero")
    unit = podman_unit(cid)
    r = podman("wait", cid, timeout=90)
    assert r.out.strip() == "137", r
    assert_unit_gone(unit, "/sys/fs/cgroup/machine.slice/" + unit)


def test_podman_pause_unpause_freezes_the_scope(podman, tmp_path):
    cid = podman.start_bg("-v", f"{tmp_path}:/data", IMAGE, "sh", "-c",
                          "i=0; while :; do i=$((i+1)); echo $i > /data/n; sleep 0.05; done")
    unit = podman_unit(cid)
    d = scope_dir(unit)
    assert wait_for(lambda: (tmp_path / "n").exists(), 10)
    assert podman("pause", cid).rc == 0
    assert podman.inspect(cid, "{{.State.Status}}") == "paused"
    assert read(f"{d}/cgroup.freeze") == "1"
    assert wait_for(lambda: "frozen 1" in read(f"{d}/cgroup.events").splitlines(), 5)
    frozen = (tmp_path / "n").read_text()
    time.sleep(0.5)  # a frozen counter does not move, however long one looks
    assert (tmp_path / "n").read_text() == frozen, "the counter ran while paused"
    assert show(unit, "ActiveState")["ActiveState"] == "active"
    assert podman("unpause", cid).rc == 0
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    assert read(f"{d}/cgroup.freeze") == "0"
    assert wait_for(lambda: (tmp_path / "n").read_text() != frozen, 5), "no progress"


def test_podman_exec_joins_the_scope(podman):
    cid = podman.start_bg("--cgroupns", "host", "--pids-limit", "30", IMAGE, "sleep", "1000")
    unit = podman_unit(cid)
    r = podman("exec", cid, "sh", "-c", "cat /proc/self/cgroup; exit 4")
    assert r.rc == 4 and r.out == f"0::/machine.slice/{unit}\n", r
    r = podman("exec", "-u", "1000", cid, "id", "-u")
    assert r.rc == 0 and r.out == "1000\n", r
    assert show(unit, "TasksMax")["TasksMax"] == "30"


def test_podman_stop_and_kill_remove_the_unit(podman):
    # sleep as PID 1 ignores SIGTERM: stop escalates to SIGKILL.
    cid = podman.start_bg(IMAGE, "sleep", "1000")
    unit = podman_unit(cid)
    d = scope_dir(unit)
    assert podman("stop", "-t", "1", cid).rc == 0
    assert podman.inspect(cid, "{{.State.ExitCode}}") == "137"
    assert_unit_gone(unit, d)
    cid = podman.start_bg(IMAGE, "sh", "-c", "trap 'exit 7' USR1; while :; do sleep 0.1; done")
    unit = podman_unit(cid)
    d = scope_dir(unit)
    time.sleep(0.3)  # let sh install its trap
    assert podman("kill", "-s", "USR1", cid).rc == 0
    assert podman("wait", cid).out.strip() == "7"
    assert_unit_gone(unit, d)


def test_podman_update_reaches_the_unit(podman):
    cid = podman.start_bg("--memory", "64m", "--pids-limit", "20", "--cpus", "0.5", IMAGE,
                          "sleep", "1000")
    unit = podman_unit(cid)
    # (Podman 4.3's update has no --pids-limit: the limit it leaves alone stays.)
    r = podman("update", "--memory", "128m", "--cpus", "1.5", cid)
    assert r.rc == 0, r
    assert_limits(unit, 128 * MiB, 20, "1.500000s", "150000 100000")
    out = podman.out("exec", cid, "cat", "/sys/fs/cgroup/memory.max")
    assert out.strip() == str(128 * MiB), out


def test_podman_rm_leaves_no_unit(podman):
    cid = podman.start_bg(IMAGE, "sleep", "1000")
    unit = podman_unit(cid)
    d = scope_dir(unit)
    assert os.path.isdir(d)
    r = podman("rm", "-f", "-t", "0", cid)
    assert r.rc == 0, r
    assert cid not in podman.s.ids()
    assert_unit_gone(unit, d)


# ---------------------------------------------------------------- containerd (ctr)


def test_ctr_run_in_a_scope_with_exit_code(ctr):
    cid = ctr.new_id()
    _, r = ctr.run("sh", "-c", "cat /proc/self/cgroup; exit 3", cid=cid)
    unit = ctr.unit(cid)
    # ctr's spec has no cgroup namespace: the scope's path is seen as it is.
    assert r.rc == 3 and r.out == f"0::/system.slice/{unit}\n", r
    assert_unit_gone(unit, f"/sys/fs/cgroup/system.slice/{unit}")


def test_ctr_limits_in_properties_and_files(ctr):
    cid = ctr.start_bg("sleep", "1000", opts=["--memory-limit", str(48 * MiB), "--cpus",
                                               "0.25"])
    unit = ctr.unit(cid)
    assert_active_scope(unit, "system.slice")
    p = show(unit, "MemoryMax", "CPUQuotaPerSecUSec")
    assert p == {"MemoryMax": str(48 * MiB), "CPUQuotaPerSecUSec": "250ms"}, p
    d = scope_dir(unit)
    assert (read(f"{d}/memory.max"), read(f"{d}/cpu.max")) == (str(48 * MiB), "25000 100000")
    assert str(ctr.pid(cid)) in read(f"{d}/cgroup.procs").split()
    r = ctr("tasks", "exec", "--exec-id", "e1", cid, "cat", "/proc/self/cgroup")
    assert r.rc == 0 and r.out == f"0::/system.slice/{unit}\n", r


def test_ctr_oom_exits_137(ctr):
    cid = ctr.new_id()
    _, r = ctr.run("tail", "/dev/zero", cid=cid, opts=["--memory-limit", str(32 * MiB)],
                   timeout=90)
    assert r.rc == 137, r
    unit = ctr.unit(cid)
    assert_unit_gone(unit, f"/sys/fs/cgroup/system.slice/{unit}")


def test_ctr_kill_and_delete_leave_no_unit(ctr):
    cid = ctr.start_bg("sleep", "1000")
    unit = ctr.unit(cid)
    d = scope_dir(unit)
    assert ctr("tasks", "kill", "-s", "SIGKILL", cid).rc == 0
    assert wait_for(lambda: ctr.status(cid) == "STOPPED", 10, 0.1), ctr("tasks", "ls")
    r = ctr("tasks", "delete", cid)
    assert r.rc == 0 and "exit code 137" in r.err, r
    assert_unit_gone(unit, d)
    assert ctr("containers", "delete", cid).rc == 0


# ---------------------------------------------------------------- CRI


def pod_slice(sandbox):
    """The pod's slice unit, the last part of the cgroup parent kubelet gave."""
    return os.path.basename(sandbox.linux.cgroup_parent)


def pod_path(sandbox):
    """The pod slice's cgroup, relative to /sys/fs/cgroup."""
    return sandbox.linux.cgroup_parent.lstrip("/")


def test_cri_pod_in_a_slice_container_limits_in_its_scope(cri):
    pb = cri.pb
    pod, sandbox = cri.run_pod()
    slice_ = pod_slice(sandbox)
    # The sandbox's own container: cri-containerd-<pod id>.scope in the pod's slice.
    assert_active_scope(f"cri-containerd-{pod}.scope", slice_)
    resources = pb.LinuxContainerResources(memory_limit_in_bytes=64 * MiB, cpu_period=100000,
                                           cpu_quota=50000)
    cid = cri.create(pod, sandbox, "main", ["sh", "-c", "exec sleep 1000"],
                     resources=resources)
    cri.start(cid)
    unit = f"cri-containerd-{cid}.scope"
    assert_active_scope(unit, slice_)
    d = scope_dir(unit)
    assert d == f"/sys/fs/cgroup/{pod_path(sandbox)}/{unit}", d
    p = show(unit, "MemoryMax", "CPUQuotaPerSecUSec")
    assert p == {"MemoryMax": str(64 * MiB), "CPUQuotaPerSecUSec": "500ms"}, p
    assert (read(f"{d}/memory.max"), read(f"{d}/cpu.max")) == (str(64 * MiB), "50000 100000")
    r = cri.exec(cid, "sh", "-c", "cat /sys/fs/cgroup/memory.max; exit 3")
    assert r.exit_code == 3 and r.stdout.decode() == f"{64 * MiB}\n", r
    cri.stop(cid, timeout=2)
    st = cri.status(cid)
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 143, st
    cri.remove(cid)
    assert_unit_gone(unit, d)
    cri.remove_pod(pod)
    assert_unit_gone(f"cri-containerd-{pod}.scope",
                     f"/sys/fs/cgroup/{pod_path(sandbox)}/cri-containerd-{pod}.scope")


def test_cri_exit_code_two_containers_scopes_gone(cri):
    pb = cri.pb
    pod, sandbox = cri.run_pod()
    a = cri.create(pod, sandbox, "a", ["sh", "-c", "exit 7"])
    b = cri.create(pod, sandbox, "b", ["sleep", "1000"])
    cri.start(a)
    cri.start(b)
    assert wait_for(lambda: cri.status(a).state == pb.CONTAINER_EXITED, 10, 0.1)
    st = cri.status(a)
    assert st.exit_code == 7 and st.reason == "Error", st
    parent = f"/sys/fs/cgroup/{pod_path(sandbox)}"
    # The exited container's scope is gone with its last process; b's is there.
    assert wait_for(lambda: not units_of(a), 10, 0.1), units_of(a)
    assert os.path.isdir(f"{parent}/cri-containerd-{b}.scope")
    r = cri.exec(b, "sh", "-c", "echo hi")
    assert r.exit_code == 0 and r.stdout == b"hi\n", r
    for cid in (a, b):
        cri.stop(cid, timeout=1)
        cri.remove(cid)
    assert_unit_gone(f"cri-containerd-{b}.scope", f"{parent}/cri-containerd-{b}.scope")
    cri.remove_pod(pod)
    kids = [e for e in os.listdir(parent) if os.path.isdir(os.path.join(parent, e))]
    assert not kids, kids
