"""Kubernetes' way in: containerd 1.6's CRI plugin driven as kubelet drives it (gRPC, CRI v1),
with a runtime handler per runtime (runc v2 shim, BinaryName), each scenario on kiln and on
the apt runc as a control (see clients.py). What a kubelet sees: the RPCs' answers, ExecSync's
output and exit code, the container's status and exit code, and the cgroup files on the host."""

import os

from conftest import wait_for


def host_cgroup(pod_config, cid, ctrl):
    return os.path.join("/sys/fs/cgroup", ctrl, pod_config.linux.cgroup_parent.lstrip("/"), cid)


def read(path):
    with open(path) as f:
        return f.read().strip()


def test_pod_lifecycle_with_resources_and_security_context(cri):
    pb = cri.pb
    pod, sandbox = cri.run_pod()
    security = pb.LinuxContainerSecurityContext(
        run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=2000),
        readonly_rootfs=True, capabilities=pb.Capability(drop_capabilities=["ALL"],
                                                         add_capabilities=["NET_ADMIN"]),
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    resources = pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_period=100000,
                                           cpu_quota=50000, cpu_shares=512)
    cid = cri.create(pod, sandbox, "main", ["sh", "-c", "echo started; exec sleep 1000"],
                     resources=resources, security_context=security)
    assert cri.status(cid).state == pb.CONTAINER_CREATED
    cri.start(cid)
    assert cri.status(cid).state == pb.CONTAINER_RUNNING
    r = cri.exec(cid, "sh", "-c", "id -u; id -g; grep -E '^(CapBnd|Seccomp):' /proc/self/status; "
                 "touch /x; exit 3")
    assert r.exit_code == 3, r
    assert r.stdout.decode().split("\n")[:4] == ["1000", "2000", "CapBnd:\t0000000000001000",
                                                 "Seccomp:\t2"], r
    assert b"Read-only file system" in r.stderr, r
    assert read(host_cgroup(sandbox, cid, "memory") + "/memory.limit_in_bytes") == str(64 << 20)
    assert read(host_cgroup(sandbox, cid, "cpu") + "/cpu.cfs_quota_us") == "50000"
    assert read(host_cgroup(sandbox, cid, "cpu") + "/cpu.shares") == "512"
    cri.stop(cid, timeout=2)
    st = cri.status(cid)
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 143, st
    cri.remove(cid)
    assert not os.path.exists(host_cgroup(sandbox, cid, "memory"))
    cri.remove_pod(pod)


def test_exit_code_in_status(cri):
    pod, sandbox = cri.run_pod()
    cid = cri.create(pod, sandbox, "quick", ["sh", "-c", "exit 7"])
    cri.start(cid)
    assert wait_for(lambda: cri.status(cid).state == cri.pb.CONTAINER_EXITED, 10, 0.1)
    st = cri.status(cid)
    assert st.exit_code == 7 and st.reason == "Error", st
    cri.remove(cid)
    cri.remove_pod(pod)


def test_second_container_joins_the_pods_namespaces(cri):
    pod, sandbox = cri.run_pod(pid="POD", ipc="POD")
    a = cri.create(pod, sandbox, "a", ["sleep", "1000"])
    b = cri.create(pod, sandbox, "b", ["sh", "-c", "exec sleep 1001"])
    cri.start(a)
    cri.start(b)
    ns = {}
    for cid in (a, b):
        r = cri.exec(cid, "sh", "-c", "for n in pid ipc mnt; do readlink /proc/self/ns/$n; "
                     "done; ps -o args")
        assert r.exit_code == 0, r
        lines = r.stdout.decode().splitlines()
        ns[cid] = lines[:3]
        # one pid namespace for the pod: the sandbox's sleep and both containers' are seen
        procs = lines[4:]
        assert "sleep 1000" in procs and "sleep 1001" in procs, lines
        assert any(p.startswith("sleep 2147483647") for p in procs), lines
    assert ns[a][:2] == ns[b][:2], ns  # the pod's pid and ipc namespaces
    assert ns[a][2] != ns[b][2], ns  # each its own mount namespace
    host = os.readlink("/proc/self/ns/pid")
    assert ns[a][0] != host, ns
    for cid in (a, b):
        # each container's cgroup on the host, below the pod's
        assert os.path.isdir(host_cgroup(sandbox, cid, "pids")), cid
        cri.stop(cid, timeout=1)
        cri.remove(cid)
    cri.remove_pod(pod)
