"""linux.netDevices: host interfaces moved into the container's network namespace.

Each test makes its own veth pair (this kernel has no dummy links), one end with an address,
under names no other test uses, and deletes it whatever happens. The end moved into a container
is destroyed with the container's namespace, as the runtime spec says of virtual devices (kiln
does not move it out on delete: the spec forbids it); its peer on the host goes with it.
"""

import ipaddress
import json
import os
import subprocess
import uuid

import pytest

from conftest import IS_RUNC, runc_deviates, wait_for

MOVES = "runc 1.1.5 ignores linux.netDevices"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def on_host(name):
    return os.path.exists(f"/sys/class/net/{name}")


def read(path):
    with open(path) as f:
        return f.read().strip()


class Veth:
    """A veth pair `a` (moved) and `b` (stays), `a` up with 10.x.y.1/24 and a MAC read back."""

    def __init__(self, ctx):
        tag = uuid.uuid4().hex[:8]
        self.a, self.b = f"kn{tag}a", f"kn{tag}b"
        ctx.cleanups.append(self.remove)
        ip("link", "add", self.a, "type", "veth", "peer", "name", self.b)
        n = int(tag[:4], 16)
        self.addr = f"10.{100 + n % 100}.{n // 100 % 250}.1/24"
        ip("addr", "add", self.addr, "dev", self.a)
        # As `ip` prints it (no leading zeros).
        self.addr6 = str(ipaddress.ip_interface(f"fd00:{tag[:4]}:{tag[4:]}::1/64"))
        ip("-6", "addr", "add", self.addr6, "dev", self.a, "nodad")
        ip("link", "set", self.a, "up")
        self.mac = read(f"/sys/class/net/{self.a}/address")

    def remove(self):
        for name in (self.a, self.b):
            if on_host(name):
                ip("link", "del", name, check=False)

    def host_addrs(self):
        out = json.loads(ip("-j", "addr", "show", "dev", self.a).stdout)
        return [f"{a['local']}/{a['prefixlen']}" for a in out[0]["addr_info"]
                if a["family"] == "inet"]

    def is_up_on_host(self):
        return int(read(f"/sys/class/net/{self.a}/flags"), 16) & 1 == 1

    def gone(self):
        """Both ends destroyed with the container's namespace (asynchronous in the kernel)."""
        return wait_for(lambda: not on_host(self.a) and not on_host(self.b), 10)


@pytest.fixture
def veth(ctx):
    return Veth(ctx)


def inspect(name):
    """What the container sees of interface `name`: its MAC, IFF_UP and IPv4 addresses."""
    return (f"cat /sys/class/net/{name}/address; cat /sys/class/net/{name}/flags; "
            f"ip -o -4 addr show dev {name} | awk '{{print $4}}'")


def seen(out):
    mac, flags, *addrs = out.split()
    return mac, int(flags, 16) & 1 == 1, addrs


def exec_out(ctx, cid, script):
    r = ctx.rt("exec", cid, "sh", "-c", script)
    assert r.ok, r
    return r.out


@runc_deviates(MOVES)
def test_device_is_moved_in_renamed_with_its_address_and_up(ctx, veth):
    ctx.config["linux"]["netDevices"] = {veth.a: {"name": "kt-eth7"}}
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    # Moved at create: gone from the host before the container starts.
    assert not on_host(veth.a)
    assert on_host(veth.b)
    ctx.start(cid)
    assert seen(exec_out(ctx, cid, inspect("kt-eth7"))) == (veth.mac, True, [veth.addr])
    # Every family's permanent global addresses come along.
    v6 = exec_out(ctx, cid, "ip -o -6 addr show dev kt-eth7 | awk '{print $4}'").split()
    assert v6 == [veth.addr6], v6
    names = exec_out(ctx, cid, "ls /sys/class/net").split()
    assert sorted(names) == ["kt-eth7", "lo"], names
    ctx.delete(cid, force=True)
    assert veth.gone()


@runc_deviates(MOVES)
def test_device_keeps_its_name_and_leaves_with_a_stopped_container(ctx, veth):
    ctx.config["linux"]["netDevices"] = {veth.a: {}}
    out = ctx.run_sh(inspect(veth.a))
    assert seen(out) == (veth.mac, True, [veth.addr])
    # run deleted the container: its namespace, and the veth in it, are gone.
    assert veth.gone()


@runc_deviates(MOVES)
def test_a_template_name_gets_the_kernels_number(ctx, veth):
    ctx.config["linux"]["netDevices"] = {veth.a: {"name": "kt%d"}}
    out = ctx.run_sh("for d in /sys/class/net/kt*; do echo ${d##*/} $(cat $d/address); done")
    assert out.split() == ["kt0", veth.mac], out


@runc_deviates(MOVES)
def test_a_joined_namespace_keeps_the_device_after_delete(ctx, veth):
    ns = f"kn{uuid.uuid4().hex[:8]}"
    ip("netns", "add", ns)
    ctx.cleanups.append(lambda: ip("netns", "del", ns, check=False))
    ctx.config["linux"]["namespaces"] = [
        n if n["type"] != "network" else {"type": "network", "path": f"/run/netns/{ns}"}
        for n in ctx.config["linux"]["namespaces"]
    ]
    ctx.config["linux"]["netDevices"] = {veth.a: {"name": "kt-eth1"}}
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    assert not on_host(veth.a)
    ctx.delete(cid, force=True)
    # The namespace is not the container's to tear down, nor are the devices in it.
    inside = ip("netns", "exec", ns, "cat", "/sys/class/net/kt-eth1/address")
    assert inside.stdout.strip() == veth.mac
    assert on_host(veth.b)


def test_failed_create_gives_the_device_back(ctx, veth):
    ctx.config["linux"]["netDevices"] = {veth.a: {"name": "kt-eth7"}}
    # createRuntime hooks run after the move: the failure comes half-way through create.
    ctx.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
        "sh", "-c", f"test ! -e /sys/class/net/{veth.a} && exit 3"]}]}
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    assert cid not in ctx.list_ids()
    if not IS_RUNC:
        # The hook saw the device gone from the host: it had been moved when create failed.
        assert "exited with status 3" in r.err, r
    assert on_host(veth.a) and on_host(veth.b)
    assert veth.host_addrs() == [veth.addr]
    assert veth.is_up_on_host()
    assert read(f"/sys/class/net/{veth.a}/address") == veth.mac


@runc_deviates(MOVES)
def test_a_move_failing_half_way_gives_the_others_back(ctx, veth):
    other = Veth(ctx)
    # Sorted by host name, veth.a goes first; `lo` is taken in the new namespace.
    first, second = sorted([veth, other], key=lambda v: v.a)
    ctx.config["linux"]["netDevices"] = {first.a: {"name": "kt-eth1"}, second.a: {"name": "lo"}}
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc == 1 and f"linux.netDevices.{second.a}" in r.err and "exists" in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert cid not in ctx.list_ids()
    for v in (first, second):
        assert on_host(v.a), v.a
        assert v.host_addrs() == [v.addr]
        assert v.is_up_on_host()


def refused(ctx, field, *extra):
    ctx.sh("true")
    cid, r = ctx.create(None, *extra, check=False)
    assert r.rc == 1 and field in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert cid not in ctx.list_ids()
    return r


@runc_deviates(MOVES)
def test_a_device_missing_on_the_host_is_named(ctx):
    name = f"kn{uuid.uuid4().hex[:8]}x"
    ctx.config["linux"]["netDevices"] = {name: {}}
    r = refused(ctx, f"linux.netDevices.{name}")
    assert "no network device" in r.err, r


@runc_deviates(MOVES)
def test_two_devices_under_one_name_are_refused(ctx, veth):
    other = Veth(ctx)
    first, second = sorted([veth.a, other.a])
    ctx.config["linux"]["netDevices"] = {first: {"name": "kt-eth5"}, second: {"name": "kt-eth5"}}
    refused(ctx, f"linux.netDevices.{second}.name")
    assert on_host(first) and on_host(second)


@pytest.mark.parametrize("name", ["a" * 16, "a/b", "a b", "..", "."])
@runc_deviates(MOVES)
def test_an_invalid_interface_name_is_refused(ctx, veth, name):
    ctx.config["linux"]["netDevices"] = {veth.a: {"name": name}}
    r = refused(ctx, f"linux.netDevices.{veth.a}.name")
    assert "not a valid interface name" in r.err, r
    assert on_host(veth.a)


@runc_deviates(MOVES)
def test_an_empty_host_name_is_refused(ctx):
    ctx.config["linux"]["netDevices"] = {"": {}}
    refused(ctx, "linux.netDevices.: ")


@runc_deviates(MOVES)
def test_devices_need_a_network_namespace(ctx, veth):
    ctx.drop_ns("network")
    ctx.config["linux"]["netDevices"] = {veth.a: {}}
    r = refused(ctx, "linux.netDevices")
    assert "NET namespace" in r.err, r
    assert on_host(veth.a)


@runc_deviates(MOVES)
def test_rootless_is_refused(ctx, veth):
    ctx.config["linux"]["netDevices"] = {veth.a: {}}
    ctx.sh("true")
    cid = ctx.new_id()
    ctx.save()
    r = ctx.rt("create", "--bundle", ctx.bundle, cid, glob=["--root", ctx.root, "--rootless", "true"])
    assert r.rc == 1 and "linux.netDevices" in r.err and "rootless" in r.err, r
    assert cid not in ctx.list_ids()
    assert on_host(veth.a)


@runc_deviates(MOVES)
def test_restore_refuses_devices(ctx, veth, bare_dir):
    ctx.config["linux"]["netDevices"] = {veth.a: {}}
    ctx.sh("true")
    ctx.save()
    cid = ctx.new_id()
    r = ctx.rt("restore", "--image-path", bare_dir, "--bundle", ctx.bundle, cid)
    assert r.rc == 1 and "linux.netDevices" in r.err, r
    assert cid not in ctx.list_ids()
    assert on_host(veth.a)


@runc_deviates(MOVES)
def test_a_device_reaches_a_namespace_of_a_new_user_namespace(ctx, veth):
    # The container's network namespace belongs to its user namespace: kiln, root on the host,
    # moves the device there and sets it up all the same.
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = maps
    ctx.config["linux"]["gidMappings"] = maps
    ctx.config["linux"]["netDevices"] = {veth.a: {"name": "kt-eth3"}}
    out = ctx.run_sh(inspect("kt-eth3"))
    assert seen(out) == (veth.mac, True, [veth.addr])
