"""Idmapped mounts: mounts[i].uidMappings/gidMappings and the idmap/ridmap options. What the
container sees as the owners of a bind mount's files, and what the host keeps on disk."""

import os
import subprocess

import pytest

# runc 1.1 predates idmapped mounts (runc 1.2 added them).
pytestmark = pytest.mark.kiln_only

SHIFT = [{"containerID": 0, "hostID": 5000, "size": 2000}]
USERNS = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def owned_tree(ctx):
    """A host directory with a file of root's and one of uid/gid 1000's."""
    d = ctx.hostdir("src")
    for name, owner in (("root-file", 0), ("user-file", 1000)):
        p = os.path.join(d, name)
        open(p, "w").close()
        os.chown(p, owner, owner)
    return d


def bind(ctx, source, *options, **kw):
    # /mnt exists in the rootfs: container root in a user namespace could not create a
    # mount point in the host-owned rootfs.
    m = {"destination": "/mnt", "type": "bind", "source": source, "options": ["bind", *options]}
    m.update(kw)
    ctx.add_mount(m)


def use_userns(ctx):
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = USERNS
    ctx.config["linux"]["gidMappings"] = USERNS
    ctx.config["mounts"] = [m for m in ctx.config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]


OWNERS = "cd /mnt && stat -c '%n %u:%g' root-file user-file"


def test_explicit_mappings_shift_the_owners(ctx):
    src = owned_tree(ctx)
    bind(ctx, src, uidMappings=SHIFT, gidMappings=SHIFT)
    assert ctx.run_sh(OWNERS) == "root-file 5000:5000\nuser-file 6000:6000\n"
    # Only the mount shows them shifted: the files themselves are unchanged.
    st = os.stat(os.path.join(src, "user-file"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_a_plain_bind_shows_the_disk_owners(ctx):
    # The control for the test above: without the mapping nothing moves.
    bind(ctx, owned_tree(ctx))
    assert ctx.run_sh(OWNERS) == "root-file 0:0\nuser-file 1000:1000\n"


def test_writes_land_with_the_disk_owner(ctx):
    src = owned_tree(ctx)
    os.chmod(src, 0o755)
    bind(ctx, src, uidMappings=SHIFT, gidMappings=SHIFT)
    # uid 5000 owns the directory as the container sees it, and what it creates is root's on
    # disk.
    ctx.config["process"]["user"] = {"uid": 5000, "gid": 5000}
    assert ctx.run_sh("touch /mnt/new && stat -c %u:%g /mnt/new") == "5000:5000\n"
    st = os.stat(os.path.join(src, "new"))
    assert (st.st_uid, st.st_gid) == (0, 0)


@pytest.mark.parametrize("idmap", [True, False])
def test_idmap_option_takes_the_user_namespace_mappings(ctx, idmap):
    use_userns(ctx)
    bind(ctx, owned_tree(ctx), *(["idmap"] if idmap else []))
    out = ctx.run_sh(OWNERS)
    # Without the idmap, host root is not mapped in the container: it shows as the overflow id.
    assert out == ("root-file 0:0\nuser-file 1000:1000\n" if idmap else "root-file 65534:65534\nuser-file 65534:65534\n"), out


@pytest.mark.parametrize("option,expect", [("ridmap", "5000"), ("idmap", "0")])
def test_ridmap_reaches_the_mounts_below(ctx, option, expect):
    src = owned_tree(ctx)
    sub = os.path.join(src, "sub")
    os.mkdir(sub)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "kilntest", sub], check=True, timeout=10)
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", sub], timeout=10))
    open(os.path.join(sub, "f"), "w").close()
    m = {"destination": "/mnt/data", "type": "bind", "source": src, "options": ["rbind", option],
         "uidMappings": SHIFT, "gidMappings": SHIFT}
    ctx.add_mount(m)
    out = ctx.run_sh("stat -c %u /mnt/data/root-file /mnt/data/sub/f")
    assert out.split() == ["5000", expect], out


@pytest.mark.parametrize("change,field", [
    (lambda m: m.pop("gidMappings"), "gidMappings"),
    (lambda m: m.update(type="tmpfs", source="tmpfs", options=["idmap"]), "options"),
])
def test_bad_idmapped_mounts_name_the_field(ctx, change, field):
    m = {"destination": "/mnt/data", "type": "bind", "source": owned_tree(ctx), "options": ["bind"],
         "uidMappings": SHIFT, "gidMappings": SHIFT}
    change(m)
    ctx.add_mount(m)
    index = len(ctx.config["mounts"]) - 1
    _, r = ctx.create(check=False)
    assert r.rc != 0 and f"mounts[{index}].{field}" in r.err and len(r.err.strip().splitlines()) == 1, r


def test_idmap_without_any_mappings_is_refused(ctx):
    bind(ctx, owned_tree(ctx), "idmap")
    _, r = ctx.create(check=False)
    assert r.rc != 0 and "linux.uidMappings" in r.err, r
