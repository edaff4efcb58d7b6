"""linux.namespaces, linux.sysctl."""

import os
import subprocess

import pytest

from conftest import wait_for

NS_FILES = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
            "cgroup": "cgroup", "user": "user"}


def ns_inside(ctx):
    out = ctx.run_sh("for n in pid net ipc uts mnt cgroup user; do "
                     "echo $n $(readlink /proc/self/ns/$n); done")
    return dict(l.split(" ", 1) for l in out.splitlines())


def host_ns(name):
    return os.readlink(f"/proc/self/ns/{name}")


def test_new_namespaces_differ_from_host(ctx):
    ctx.config["linux"]["namespaces"].append({"type": "cgroup"})
    inside = ns_inside(ctx)
    for t in ("pid", "network", "ipc", "uts", "mount", "cgroup"):
        f = NS_FILES[t]
        assert inside[f] != host_ns(f), (t, inside[f])
        assert inside[f].startswith(f + ":["), inside[f]
    # not asked for: shared with the host
    assert inside["user"] == host_ns("user")


@pytest.mark.parametrize("shared", ["network", "ipc", "uts", "pid"])
def test_namespace_not_listed_is_shared(ctx, shared):
    ctx.drop_ns(shared)
    if shared == "uts":
        ctx.config.pop("hostname")  # setting one needs a uts namespace
    inside = ns_inside(ctx)
    f = NS_FILES[shared]
    assert inside[f] == host_ns(f)
    assert inside["mnt"] != host_ns("mnt")


def test_pid_namespace_init_is_pid_1(ctx):
    out = ctx.run_sh("echo $$; ps -o pid,comm | tail -n +2")
    lines = out.splitlines()
    assert lines[0] == "1"
    pids = sorted(int(l.split()[0]) for l in lines[1:])
    # only the container's own processes are visible (sh, ps)
    assert pids[0] == 1 and len(pids) <= 3, out


def test_network_namespace_has_only_loopback(ctx):
    out = ctx.run_sh("ls /sys/class/net; ip -o link show lo")
    assert out.splitlines()[0] == "lo", out
    assert "lo" in out.splitlines()[1]


def test_new_network_namespace_has_loopback_up(ctx):
    """As runc: lo is up in a new network namespace, so 127.0.0.1 works (Podman's
    --network none, a pod's infra container)."""
    out = ctx.run_sh("ip -o link show lo; "
                     "(nc -l -p 7777 -e echo over-lo &) ; sleep 0.3; nc 127.0.0.1 7777")
    assert ",UP" in out.splitlines()[0], out
    assert "over-lo" in out, out


@pytest.fixture
def holder(ctx):
    """A process holding fresh net, ipc and uts namespaces."""
    p = subprocess.Popen(["unshare", "--net", "--ipc", "--uts", "sleep", "60"],
                         stdin=subprocess.DEVNULL)

    def stop():
        p.kill()
        p.wait(timeout=10)
    ctx.cleanups.append(stop)
    ns = lambda n: os.readlink(f"/proc/{p.pid}/ns/{n}")
    assert wait_for(lambda: ns("net") != host_ns("net"), 5)
    return p


@pytest.mark.parametrize("t", ["network", "ipc", "uts"])
def test_join_namespace_by_path(ctx, holder, t):
    f = NS_FILES[t]
    for n in ctx.config["linux"]["namespaces"]:
        if n["type"] == t:
            n["path"] = f"/proc/{holder.pid}/ns/{f}"
    if t == "uts":
        # a hostname cannot be set on a joined uts namespace that is not ours
        ctx.config.pop("hostname", None)
    inside = ns_inside(ctx)
    assert inside[f] == os.readlink(f"/proc/{holder.pid}/ns/{f}")
    assert inside[f] != host_ns(f)


def test_join_network_namespace_sees_its_devices(ctx, holder):
    # give lo of the held namespace an address nobody else has
    subprocess.run(["nsenter", "-t", str(holder.pid), "--net", "ip", "addr", "add",
                    "10.99.0.1/32", "dev", "lo"], check=True, timeout=10)
    for n in ctx.config["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = f"/proc/{holder.pid}/ns/net"
    out = ctx.run_sh("ip -o addr show lo")
    assert "10.99.0.1/32" in out, out
    ctx.config["linux"]["namespaces"] = [n for n in ctx.config["linux"]["namespaces"]
                                         if n["type"] != "network"] + [{"type": "network"}]
    out = ctx.run_sh("ip -o addr show lo")
    assert "10.99.0.1" not in out, out


def test_join_namespace_bad_path_fails(ctx):
    for n in ctx.config["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = os.path.join(ctx.dir, "no-such-ns")
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc != 0, r
    assert ctx.list_ids() == []


def test_sysctl_net_in_new_netns(ctx):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_before = f.read()
    # choose the value the host does not have
    want = "0" if host_before.strip() == "1" else "1"
    ctx.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": want}
    assert ctx.run_sh("cat /proc/sys/net/ipv4/ip_forward") == want + "\n"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_before


def test_sysctl_ipc_in_new_ipcns(ctx):
    with open("/proc/sys/kernel/shmmax") as f:
        host_before = f.read()
    ctx.config["linux"]["sysctl"] = {"kernel.shmmax": "12345678",
                                     "kernel.msgmax": "4321"}
    out = ctx.run_sh("cat /proc/sys/kernel/shmmax /proc/sys/kernel/msgmax")
    assert out == "12345678\n4321\n"
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read() == host_before


def test_sysctl_net_without_netns_rejected(ctx):
    ctx.drop_ns("network")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_before = f.read()
    ctx.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "0" if host_before.strip() == "1"
                                     else "1"}
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc != 0, r
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_before
    assert ctx.list_ids() == []


def test_user_namespace_mappings(ctx):
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    # the sysfs and cgroup mounts need a net/cgroup namespace owned by the
    # user namespace; keep the test to what a user namespace needs
    ctx.config["mounts"] = [m for m in ctx.config["mounts"]
                            if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    with open(f"/proc/{pid}/status") as f:
        uid_line = [l for l in f.read().splitlines() if l.startswith("Uid:")][0]
    assert uid_line.split()[1:] == ["100000"] * 4, uid_line
    ctx.delete(cid, force=True)
    out = ctx.run_sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                     "readlink /proc/self/ns/user")
    lines = out.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"], out
    assert lines[1].split() == ["0", "100000", "65536"], out
    assert lines[2] == "0"
    assert lines[3] != host_ns("user")


@pytest.mark.parametrize("join_net", [False, True], ids=["one-clone", "setns-then-unshare"])
def test_user_namespace_owns_its_mqueue(ctx, holder, join_net):
    """The ipc namespace is made once init is root in the new user namespace, as runc does:
    its mqueue filesystem (owned by its creator) then belongs to the container's root, not to
    an unmapped host uid (nobody). Joining a namespace forces the setns/unshare path."""
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["mounts"] = [m for m in ctx.config["mounts"]
                            if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    if join_net:
        ctx.drop_ns("network")
        ctx.config["linux"]["namespaces"].append(
            {"type": "network", "path": f"/proc/{holder.pid}/ns/net"})
    # The owner only: runc 1.1.5 makes the namespace after setresuid(0) but before
    # setresgid(0), so its group stays unmapped (65534); kiln's is 0.
    out = ctx.run_sh("stat -c '%u' /dev/mqueue; readlink /proc/self/ns/ipc")
    lines = out.splitlines()
    assert lines[0] == "0", out
    assert lines[1] != host_ns("ipc"), out
