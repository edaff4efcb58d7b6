"""root, mounts, /dev, linux.devices, maskedPaths, readonlyPaths."""

import copy
import os
import subprocess

import pytest

from conftest import IS_RUNC, runc_deviates, wait_for


def mountinfo_inside(ctx, extra=""):
    """{mount point: (fstype, per-mount options, super options, optional fields)}"""
    out = ctx.run_sh(extra + "cat /proc/self/mountinfo")
    res = {}
    for line in out.splitlines():
        left, right = line.split(" - ", 1)
        lf = left.split()
        rf = right.split()
        res[lf[4]] = (rf[0], lf[5].split(","), rf[2].split(",") if len(rf) > 2 else [],
                      lf[6:])
    return res


def host_mount(ctx, *args):
    subprocess.run(["mount", *args], check=True, timeout=10)
    target = args[-1]
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", target], timeout=10))


# ------------------------------------------------------------------ root


def test_readonly_root(ctx):
    ctx.config["root"]["readonly"] = True
    out = ctx.run_sh("touch /newfile 2>/dev/null && echo wrote || echo refused; "
                     "awk '$5 == \"/\"' /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines[0] == "refused", out
    assert "ro" in lines[1].split()[5].split(","), out
    assert not os.path.exists(os.path.join(ctx.rootfs, "newfile"))


def test_writable_root(ctx):
    ctx.config["root"]["readonly"] = False
    assert ctx.run_sh("echo data > /newfile && cat /newfile") == "data\n"
    with open(os.path.join(ctx.rootfs, "newfile")) as f:
        assert f.read() == "data\n"


def test_root_is_the_bundle_rootfs(ctx):
    with open(os.path.join(ctx.rootfs, "etc", "kiln-marker"), "w") as f:
        f.write("this rootfs\n")
    assert ctx.run_sh("cat /etc/kiln-marker") == "this rootfs\n"


def test_absolute_root_path(ctx):
    other = os.path.join(ctx.dir, "otherroot")
    os.rename(ctx.rootfs, other)
    ctx.config["root"]["path"] = other
    _, r = ctx.run()  # sh with no stdin exits 0
    assert r.rc == 0, r
    ctx.sh("echo ok")
    cid, _ = ctx.create()
    assert ctx.state(cid)["rootfs"] == other
    ctx.delete(cid, force=True)


def test_host_root_not_visible(ctx):
    # After pivot_root the host's files are gone from view.
    marker = os.path.join(ctx.dir, "host-only")
    open(marker, "w").close()
    out = ctx.run_sh(f"test -e {marker} && echo visible || echo hidden; ls /")
    assert out.splitlines()[0] == "hidden", out


# ------------------------------------------------------------------ mounts


def test_default_mounts_types_and_options(ctx):
    mi = mountinfo_inside(ctx)
    assert mi["/proc"][0] == "proc"
    assert mi["/dev"][0] == "tmpfs"
    assert {"nosuid"} <= set(mi["/dev"][1])
    assert "mode=755" in mi["/dev"][2]
    assert mi["/dev/pts"][0] == "devpts"
    assert {"nosuid", "noexec"} <= set(mi["/dev/pts"][1])
    assert "gid=5" in mi["/dev/pts"][2] and "mode=620" in mi["/dev/pts"][2]
    assert "ptmxmode=666" in mi["/dev/pts"][2]
    assert mi["/dev/shm"][0] == "tmpfs"
    assert {"nosuid", "noexec", "nodev"} <= set(mi["/dev/shm"][1])
    assert "size=65536k" in mi["/dev/shm"][2]
    assert mi["/dev/mqueue"][0] == "mqueue"
    assert mi["/sys"][0] == "sysfs"
    assert {"ro", "nosuid", "noexec", "nodev"} <= set(mi["/sys"][1])


def test_tmpfs_size_and_mode(ctx):
    ctx.add_mount({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                   "options": ["size=1m", "mode=0710", "nosuid", "nodev", "noexec"]})
    ctx.config["root"]["readonly"] = True
    out = ctx.run_sh("stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo; "
                     "echo x > /scratch/f && cat /scratch/f; "
                     "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null "
                     "&& echo filled || echo full")
    lines = out.splitlines()
    assert lines[0] == "710", out
    assert "size=1024k" in lines[1] and " tmpfs " in lines[1], out
    opts = lines[1].split()[5].split(",")
    assert {"nosuid", "nodev", "noexec"} <= set(opts), out
    assert lines[2] == "x"
    assert lines[3] == "full", out  # the size limit is enforced


def test_tmpfs_created_under_readonly_root(ctx):
    """The mount point /newdir does not exist in the rootfs: it is created
    before the root is made read-only."""
    ctx.add_mount({"destination": "/newdir/sub", "type": "tmpfs", "source": "tmpfs"})
    out = ctx.run_sh("grep -c ' /newdir/sub ' /proc/self/mountinfo")
    assert out == "1\n"


def test_tmpfs_tmpcopyup(ctx):
    """tmpcopyup (Podman's --read-only /run, --tmpfs): the tmpfs starts with a copy of what
    the directory held (files, subdirectories, symlinks, owners, modes), with propagation
    options applied to the new mount."""
    d = os.path.join(ctx.rootfs, "seeded")
    os.makedirs(os.path.join(d, "sub"))
    with open(os.path.join(d, "sub", "f"), "w") as f:
        f.write("seed\n")
    os.chown(os.path.join(d, "sub", "f"), 1000, 2000)
    os.chmod(os.path.join(d, "sub", "f"), 0o604)
    os.symlink("sub/f", os.path.join(d, "link"))
    ctx.add_mount({"destination": "/seeded", "type": "tmpfs", "source": "tmpfs",
                   "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]})
    out = ctx.run_sh("grep -c '^tmpfs /seeded tmpfs ' /proc/mounts; cat /seeded/link; "
                     "stat -c '%u:%g %a' /seeded/sub/f; readlink /seeded/link; "
                     "echo new > /seeded/new && cat /seeded/new")
    assert out.splitlines() == ["1", "seed", "1000:2000 604", "sub/f", "new"], out
    assert not os.path.exists(os.path.join(d, "new"))  # written to the tmpfs only


def test_tmpfs_over_directory_keeps_its_mode(ctx):
    """As runc: a tmpfs without mode= over an existing directory gets that directory's mode
    (Podman's --read-only /run is 0755 in the image, not tmpfs's 1777)."""
    os.makedirs(os.path.join(ctx.rootfs, "kept"))
    os.chmod(os.path.join(ctx.rootfs, "kept"), 0o750)
    ctx.add_mount({"destination": "/kept", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev"]})
    ctx.add_mount({"destination": "/fresh", "type": "tmpfs", "source": "tmpfs"})
    out = ctx.run_sh("stat -c %a /kept /fresh; grep -c ' /kept tmpfs ' /proc/mounts")
    assert out.split() == ["750", "1777", "1"], out


@pytest.mark.kiln_only
def test_tmpfs_explicit_mode_wins_over_directory(ctx):
    """runc 1.1 applies the covered directory's mode even over mode=; kiln keeps mode=."""
    os.makedirs(os.path.join(ctx.rootfs, "kept"))
    os.chmod(os.path.join(ctx.rootfs, "kept"), 0o750)
    ctx.add_mount({"destination": "/kept", "type": "tmpfs", "source": "tmpfs",
                   "options": ["mode=1777"]})
    assert ctx.run_sh("stat -c %a /kept") == "1777\n"


def test_bind_mount_dir(ctx):
    src = ctx.hostdir("share")
    with open(os.path.join(src, "hello"), "w") as f:
        f.write("from host\n")
    ctx.add_mount({"destination": "/share", "type": "bind", "source": src,
                   "options": ["rbind", "rw"]})
    out = ctx.run_sh("cat /share/hello; echo back > /share/reply")
    assert out == "from host\n"
    with open(os.path.join(src, "reply")) as f:
        assert f.read() == "back\n"


def test_bind_mount_no_type_uses_bind_option(ctx):
    src = ctx.hostdir("share")
    with open(os.path.join(src, "hello"), "w") as f:
        f.write("typeless\n")
    ctx.add_mount({"destination": "/share", "source": src, "options": ["bind"]})
    assert ctx.run_sh("cat /share/hello") == "typeless\n"


def test_bind_mount_file(ctx):
    src = os.path.join(ctx.dir, "file.conf")
    with open(src, "w") as f:
        f.write("file content\n")
    ctx.add_mount({"destination": "/etc/kiln.conf", "type": "bind", "source": src,
                   "options": ["bind", "rw"]})
    out = ctx.run_sh("cat /etc/kiln.conf; test -f /etc/kiln.conf && echo isfile")
    assert out == "file content\nisfile\n"


def test_bind_mount_readonly(ctx):
    src = ctx.hostdir("share")
    srcfile = os.path.join(ctx.dir, "ro.conf")
    with open(srcfile, "w") as f:
        f.write("ro file\n")
    ctx.add_mount({"destination": "/share", "type": "bind", "source": src,
                   "options": ["rbind", "ro"]})
    ctx.add_mount({"destination": "/ro.conf", "type": "bind", "source": srcfile,
                   "options": ["bind", "ro"]})
    out = ctx.run_sh("touch /share/x 2>/dev/null && echo wrote || echo refused; "
                     "echo y 2>/dev/null >> /ro.conf && echo wrote || echo refused; "
                     "cat /ro.conf")
    assert out == "refused\nrefused\nro file\n", out
    assert os.listdir(src) == []
    with open(srcfile) as f:
        assert f.read() == "ro file\n"


def test_bind_vs_rbind_submounts(ctx):
    src = ctx.hostdir("tree")
    sub = os.path.join(src, "sub")
    os.mkdir(sub)
    host_mount(ctx, "-t", "tmpfs", "tmpfs", sub)
    with open(os.path.join(sub, "inner"), "w") as f:
        f.write("submount\n")
    ctx.add_mount({"destination": "/r", "type": "bind", "source": src,
                   "options": ["rbind", "ro"]})
    ctx.add_mount({"destination": "/b", "type": "bind", "source": src,
                   "options": ["bind", "ro"]})
    out = ctx.run_sh("cat /r/sub/inner; ls -A /b/sub | wc -l")
    assert out == "submount\n0\n", out


def test_bind_mount_nosuid_nodev_noexec(ctx):
    src = ctx.hostdir("share")
    ctx.add_mount({"destination": "/share", "type": "bind", "source": src,
                   "options": ["rbind", "nosuid", "nodev", "noexec"]})
    mi = mountinfo_inside(ctx)
    assert {"nosuid", "nodev", "noexec"} <= set(mi["/share"][1]), mi["/share"]


def test_mount_proc_sysfs_mqueue_elsewhere(ctx):
    ctx.add_mount({"destination": "/p2", "type": "proc", "source": "proc"})
    ctx.add_mount({"destination": "/s2", "type": "sysfs", "source": "sysfs",
                   "options": ["ro", "nosuid", "nodev", "noexec"]})
    ctx.add_mount({"destination": "/m2", "type": "mqueue", "source": "mqueue"})
    mi = mountinfo_inside(ctx)
    assert mi["/p2"][0] == "proc"
    assert mi["/s2"][0] == "sysfs"
    assert mi["/m2"][0] == "mqueue"
    # the second proc shows the container's pid namespace too
    a, b = ctx.run_sh("readlink /p2/self/ns/pid; readlink /proc/self/ns/pid").splitlines()
    assert a == b and a != os.readlink("/proc/self/ns/pid"), (a, b)


def test_propagation_rslave_receives_host_mounts(ctx):
    src = ctx.hostdir("shared")
    host_mount(ctx, "-t", "tmpfs", "tmpfs", src)
    subprocess.run(["mount", "--make-shared", src], check=True, timeout=10)
    os.mkdir(os.path.join(src, "later"))
    os.mkdir(os.path.join(src, "priv-later"))
    ctl = ctx.hostdir("ctl")
    os.mkfifo(os.path.join(ctl, "fifo"))
    ctx.add_mount({"destination": "/slave", "type": "bind", "source": src,
                   "options": ["rbind", "rslave"]})
    ctx.add_mount({"destination": "/private", "type": "bind", "source": src,
                   "options": ["rbind", "rprivate"]})
    ctx.add_mount({"destination": "/ctl", "type": "bind", "source": ctl,
                   "options": ["rbind"]})
    ctx.sh("read x < /ctl/fifo; ls /slave/later > /ctl/slave; ls /private/later > /ctl/private;"
           " grep -E ' /(slave|private) ' /proc/self/mountinfo > /ctl/mi; echo done > /ctl/done")
    cid, _ = ctx.create()
    ctx.start(cid)
    later = os.path.join(src, "later")
    host_mount(ctx, "-t", "tmpfs", "tmpfs", later)
    open(os.path.join(later, "arrived"), "w").close()
    fd = os.open(os.path.join(ctl, "fifo"), os.O_WRONLY)
    os.write(fd, b"go\n")
    os.close(fd)
    assert wait_for(lambda: os.path.exists(os.path.join(ctl, "done")), 5)
    with open(os.path.join(ctl, "slave")) as f:
        assert f.read() == "arrived\n"
    with open(os.path.join(ctl, "private")) as f:
        assert f.read() == ""
    with open(os.path.join(ctl, "mi")) as f:
        mi = f.read()
    slave = [l for l in mi.splitlines() if " /slave " in l][0]
    assert "master:" in slave, mi
    ctx.delete(cid, force=True)


def test_rootfs_propagation_private(ctx):
    ctx.config["linux"]["rootfsPropagation"] = "private"
    mi = mountinfo_inside(ctx)
    assert not any(f.startswith(("shared:", "master:")) for f in mi["/"][3]), mi["/"]


def test_symlink_destination_does_not_escape(ctx):
    hostdir = ctx.hostdir("hostdir")
    hostdir2 = ctx.hostdir("hostdir2")
    for d in (hostdir, hostdir2):
        with open(os.path.join(d, "canary"), "w") as f:
            f.write("untouched\n")
    # rootfs/evil -> <absolute host path>; rootfs/evil2 -> ../../../../<host path 2>
    os.symlink(hostdir, os.path.join(ctx.rootfs, "evil"))
    os.symlink("../" * 20 + hostdir2.lstrip("/"), os.path.join(ctx.rootfs, "evil2"))
    ctx.config["root"]["readonly"] = False
    ctx.add_mount({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"})
    ctx.add_mount({"destination": "/evil2/newdir", "type": "tmpfs", "source": "tmpfs"})
    out = ctx.run_sh("echo from-container > /evil/written; ls -A /evil; "
                     "ls -A /evil2/newdir | wc -l")
    assert out == "written\n0\n", out
    # The host dir is exactly as it was: no file from the container, no
    # directory made for a mount point, nothing mounted on it.
    for d in (hostdir, hostdir2):
        assert sorted(os.listdir(d)) == ["canary"], d
        with open(os.path.join(d, "canary")) as f:
            assert f.read() == "untouched\n"
        with open("/proc/self/mountinfo") as f:
            assert d not in f.read()


def test_bind_source_symlink_destination_file_does_not_escape(ctx):
    hostfile = os.path.join(ctx.dir, "victim")
    with open(hostfile, "w") as f:
        f.write("original\n")
    src = os.path.join(ctx.dir, "payload")
    with open(src, "w") as f:
        f.write("payload\n")
    os.symlink(hostfile, os.path.join(ctx.rootfs, "etc", "link"))
    ctx.config["root"]["readonly"] = False
    ctx.add_mount({"destination": "/etc/link", "type": "bind", "source": src,
                   "options": ["bind", "rw"]})
    ctx.sh("cat /etc/link")
    _, r = ctx.run()
    # Whether the runtime refuses or mounts inside the rootfs, the host
    # file is unchanged.
    with open(hostfile) as f:
        assert f.read() == "original\n"
    if r.rc == 0:
        assert r.out == "payload\n"


# ------------------------------------------------------------------ /dev


DEFAULT_DEVICES = {
    "/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
    "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0),
}


def test_default_devices(ctx):
    script = "; ".join(f"stat -c '%n %F %t %T %a' {p}" for p in DEFAULT_DEVICES)
    out = ctx.run_sh(script)
    seen = {}
    for line in out.splitlines():
        name, rest = line.split(" ", 1)
        ftype, major, minor, mode = rest.rsplit(" ", 3)
        seen[name] = (ftype, int(major, 16), int(minor, 16), mode)
    for p, (ma, mi) in DEFAULT_DEVICES.items():
        assert seen[p][:3] == ("character special file", ma, mi), (p, seen[p])
        assert seen[p][3] == "666", (p, seen[p])


def test_default_devices_work(ctx):
    out = ctx.run_sh("echo gone > /dev/null; head -c 4 /dev/zero | od -An -tx1; "
                     "head -c 16 /dev/urandom | wc -c; "
                     "echo x > /dev/full 2>/dev/null && echo wrote || echo nospace")
    assert out.split("\n")[0].split() == ["00", "00", "00", "00"], out
    assert out.splitlines()[1:] == ["16", "nospace"], out


def test_dev_symlinks_and_dirs(ctx):
    out = ctx.run_sh("for p in fd stdin stdout stderr; do echo $p $(readlink /dev/$p); done; "
                     "stat -c '%F' /dev/pts /dev/shm; "
                     "test -c /dev/ptmx -o -L /dev/ptmx && echo ptmx-ok; "
                     "test -c /dev/pts/ptmx && echo pts-ptmx-ok")
    lines = out.splitlines()
    assert lines[:4] == ["fd /proc/self/fd", "stdin /proc/self/fd/0",
                         "stdout /proc/self/fd/1", "stderr /proc/self/fd/2"], out
    assert lines[4:6] == ["directory", "directory"], out
    assert "ptmx-ok" in lines and "pts-ptmx-ok" in lines, out


def test_ptmx_allocates_a_pty(ctx):
    # opening /dev/ptmx must give a pty of the container's own devpts
    out = ctx.run_sh("exec 3<>/dev/ptmx && ls /dev/pts")
    assert "0" in out.split(), out


def test_dev_has_no_host_devices(ctx):
    out = ctx.run_sh("ls /dev")
    names = set(out.split())
    for host_only in ("vda", "sda", "kmsg", "mem", "kvm", "loop0"):
        assert host_only not in names, names


def test_linux_devices_mknod(ctx):
    ctx.config["linux"]["devices"] = [
        {"path": "/dev/kilnnull", "type": "c", "major": 1, "minor": 3,
         "fileMode": 0o640, "uid": 1000, "gid": 2000},
        {"path": "/dev/sub/kilnzero", "type": "c", "major": 1, "minor": 5},
    ]
    out = ctx.run_sh("stat -c '%F %t %T %a %u %g' /dev/kilnnull; "
                     "stat -c '%F %t %T' /dev/sub/kilnzero")
    a, b = out.splitlines()
    ftype, rest = a.rsplit(" ", 5)[0], a.rsplit(" ", 5)[1:]
    assert ftype == "character special file", a
    assert [int(rest[0], 16), int(rest[1], 16)] == [1, 3], a
    assert rest[2:] == ["640", "1000", "2000"], a
    assert b.endswith(" 1 5"), b


@runc_deviates("1.1.5 keeps whatever file is at a device's path (mknod's EEXIST is ignored), "
               "so the process finds the rootfs's file, not the device config.json asks for")
def test_a_device_replaces_what_the_rootfs_has_at_its_path(ctx):
    with open(os.path.join(ctx.rootfs, "kilnnode"), "w") as f:
        f.write("a regular file\n")
    ctx.config["linux"]["devices"] = [
        {"path": "/kilnnode", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600}]
    out = ctx.run_sh("stat -c '%F %t %T %a' /kilnnode; head -c 2 /kilnnode | od -An -tx1")
    assert out.splitlines() == ["character special file 1 5 600", " 00 00"], out


def test_linux_devices_fifo_and_block(ctx):
    ctx.config["linux"]["devices"] = [
        {"path": "/dev/kilnfifo", "type": "p"},
        {"path": "/dev/kilnblk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600},
    ]
    out = ctx.run_sh("stat -c '%F' /dev/kilnfifo; stat -c '%F %t %T %a' /dev/kilnblk")
    assert out.splitlines() == ["fifo", "block special file 7 c8 600"], out


# ------------------------------------------------------------------ masked / readonly


def test_masked_paths(ctx):
    with open(os.path.join(ctx.rootfs, "etc", "secret"), "w") as f:
        f.write("secret data\n")
    os.makedirs(os.path.join(ctx.rootfs, "secretdir"))
    with open(os.path.join(ctx.rootfs, "secretdir", "inside"), "w") as f:
        f.write("x")
    ctx.config["linux"]["maskedPaths"] += ["/etc/secret", "/secretdir", "/does/not/exist"]
    out = ctx.run_sh("cat /etc/secret | wc -c; ls -A /secretdir | wc -l; "
                     "cat /proc/kcore 2>/dev/null | wc -c; ls -A /sys/firmware | wc -l; "
                     "touch /secretdir/new 2>/dev/null && echo wrote || echo refused")
    assert out.splitlines() == ["0", "0", "0", "0", "refused"], out
    # the real files are untouched
    with open(os.path.join(ctx.rootfs, "etc", "secret")) as f:
        assert f.read() == "secret data\n"


def test_readonly_paths(ctx):
    ctx.config["root"]["readonly"] = False
    os.makedirs(os.path.join(ctx.rootfs, "rodir"))
    ctx.config["linux"]["readonlyPaths"] += ["/rodir", "/does/not/exist"]
    out = ctx.run_sh(
        "touch /rodir/x 2>/dev/null && echo wrote || echo refused; "
        "echo h 2>/dev/null > /proc/sys/kernel/hostname && echo wrote || echo refused; "
        "echo 1 2>/dev/null > /proc/sysrq-trigger && echo wrote || echo refused; "
        "touch /elsewhere && echo wrote; cat /proc/sys/kernel/ostype")
    assert out.splitlines() == ["refused", "refused", "refused", "wrote", "Linux"], out


@runc_deviates("1.1.5 sets rootfsPropagation on the host's / before the rootfs bind, then makes "
               "the rootfs's parent private, and never gives the propagation to the new /")
@pytest.mark.parametrize("mode,field", [("shared", "shared:"), ("rshared", "shared:"),
                                        ("unbindable", "unbindable")])
def test_rootfs_propagation_shared_and_unbindable(ctx, mode, field):
    """The propagation is given to the container's new / after pivot_root: set before the
    rootfs bind mount exists, it made pivot_root (shared) or the bind (unbindable) fail."""
    ctx.config["linux"]["rootfsPropagation"] = mode
    mi = mountinfo_inside(ctx)
    assert any(f.startswith(field) for f in mi["/"][3]), mi["/"]
    # The host's root mount is not changed by the container's.
    with open("/proc/self/mountinfo") as f:
        host_root = [l.split() for l in f if l.split()[4] == "/"][-1]
    assert "unbindable" not in host_root


# runc without a mount namespace makes the host's / rslave, recursively, and bind-mounts the rootfs
# onto itself in the host's namespace (left there): not to be run on a shared machine.
runc_changes_host_mounts = pytest.mark.skipif(
    IS_RUNC, reason="runc changes the host's mount propagation and leaves its rootfs bind mounted")


def host_mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(path)]


def no_mount_namespace(ctx):
    """A config without a mount namespace and without what would change the host's mounts but
    a /proc (the runtime's init needs one): that one is made in the host's namespace."""
    ctx.drop_ns("mount")
    ctx.config["mounts"] = [m for m in ctx.config["mounts"] if m["destination"] == "/proc"]
    proc = os.path.join(os.path.realpath(ctx.rootfs), "proc")

    def unmount():
        for _ in range(5):
            if proc in host_mounts_under(proc):
                subprocess.run(["umount", "-l", proc], timeout=10)
    ctx.cleanups.append(unmount)
    ctx.config["root"]["readonly"] = False
    del ctx.config["linux"]["maskedPaths"]
    del ctx.config["linux"]["readonlyPaths"]
    with open(os.path.join(ctx.rootfs, "marker"), "w") as f:
        f.write("inside\n")


@runc_changes_host_mounts
def test_no_mount_namespace_runs_chrooted_in_the_hosts_mounts(ctx):
    """The spec: a namespace not listed is the runtime's. The container shares the host's
    mount namespace, chrooted into its rootfs, with only the mounts it asked for."""
    no_mount_namespace(ctx)
    out = ctx.run_sh("cat /marker /proc/self/comm")
    assert out.splitlines() == ["inside", "cat"], out
    ctx.sh("exec sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{pid}/root") == os.path.realpath(ctx.rootfs)
    ctx.delete(cid, force=True)
    rootfs = os.path.realpath(ctx.rootfs)
    assert set(host_mounts_under(rootfs)) == {os.path.join(rootfs, "proc")}


@pytest.mark.parametrize("field", ["maskedPaths", "readonlyPaths"])
def test_no_mount_namespace_with_masked_or_readonly_paths_is_refused(ctx, field):
    no_mount_namespace(ctx)
    ctx.config["linux"][field] = ["/proc/kcore"]
    cid, r = ctx.run()
    assert r.rc != 0 and "without a private MNT namespace" in r.err, r
    assert cid not in ctx.list_ids()


@runc_changes_host_mounts
def test_no_mount_namespace_with_readonly_root_is_refused(ctx):
    """runc runs such a container with a writable root; a read-only root would need a remount
    of the host's mount."""
    no_mount_namespace(ctx)
    ctx.config["root"]["readonly"] = True
    ctx.sh("touch /written")
    cid, r = ctx.run()
    assert r.rc != 0 and "root.readonly" in r.err, r
    assert not os.path.exists(os.path.join(ctx.rootfs, "written"))


def test_readonly_dev(ctx):
    """`ro` on the /dev tmpfs: its mount points and nodes are made first, and it becomes
    read-only last."""
    dev = [m for m in ctx.config["mounts"] if m["destination"] == "/dev"][0]
    dev["options"].append("ro")
    mi = mountinfo_inside(ctx)
    assert "ro" in mi["/dev"][1], mi["/dev"]
    for sub in ("/dev/pts", "/dev/shm", "/dev/mqueue"):
        assert sub in mi, sub
    out = ctx.run_sh("echo x > /dev/null && head -c1 /dev/zero | wc -c; "
                     "touch /dev/new 2>/dev/null || echo refused; ls -l /dev/ptmx | cut -c1")
    assert out.split() == ["1", "refused", "l"], out


def test_readonly_tmpfs_keeps_the_mode_of_its_directory(ctx):
    os.makedirs(os.path.join(ctx.rootfs, "ro-run"), mode=0o710)
    os.chmod(os.path.join(ctx.rootfs, "ro-run"), 0o710)
    ctx.add_mount({"destination": "/ro-run", "type": "tmpfs", "source": "tmpfs",
                   "options": ["ro", "nosuid"]})
    out = ctx.run_sh("stat -c %a /ro-run; touch /ro-run/x 2>/dev/null || echo refused")
    assert out.split() == ["710", "refused"], out


def test_tmpcopyup_parallel_creates_see_their_own_copies(ctx):
    """8 creates at once, each with tmpcopyup over a directory of its own contents: each sees
    exactly its own copy, and no scratch directory or mount is left on the host. No host path
    is used at all: a $TMPDIR that cannot hold a directory changes nothing."""
    import concurrent.futures
    import shutil
    import tempfile

    def leftovers():
        tmp = tempfile.gettempdir()
        names = [n for n in os.listdir(tmp) if n.startswith(("kiln-tmpcopyup", "runctop"))]
        with open("/proc/self/mountinfo") as f:
            mounts = [l for l in f if "tmpcopyup" in l or "runctop" in l]
        return names, mounts

    before = leftovers()
    bundles = []
    for i in range(8):
        b = os.path.join(ctx.dir, f"bundle{i}")
        os.mkdir(b)
        subprocess.run(["cp", "-a", ctx.rootfs, os.path.join(b, "rootfs")], check=True, timeout=60)
        seeded = os.path.join(b, "rootfs", "seeded")
        os.makedirs(os.path.join(seeded, "sub"))
        with open(os.path.join(seeded, "sub", "id"), "w") as f:
            f.write(f"bundle{i}\n")
        bundles.append(b)
    ctx.add_mount({"destination": "/seeded", "type": "tmpfs", "source": "tmpfs",
                   "options": ["rw", "nosuid", "nodev", "tmpcopyup"]})
    ctx.sh("{ cat /seeded/sub/id; ls /seeded | wc -l; } > /out/seen.tmp && mv /out/seen.tmp /out/seen")
    for b in bundles:
        config = copy.deepcopy(ctx.config)
        config["mounts"].append({"destination": "/out", "type": "bind",
                                 "source": ctx.hostdir(os.path.basename(b) + "-out"),
                                 "options": ["rbind"]})
        ctx.save(config, bundle=b)
    ids = [ctx.new_id() for _ in bundles]
    not_a_dir = os.path.join(ctx.dir, "not-a-dir")
    open(not_a_dir, "w").close()
    env = dict(os.environ, TMPDIR=not_a_dir)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(
            lambda a: ctx.rt("create", "--bundle", a[0], a[1], timeout=60, env=env),
            zip(bundles, ids)))
    for r in results:
        assert r.ok, r
    for cid in ids:
        ctx.state(cid)
        ctx.start(cid)
    for i, b in enumerate(bundles):
        seen = os.path.join(ctx.dir, os.path.basename(b) + "-out", "seen")
        assert wait_for(lambda: os.path.exists(seen), 10), seen
        with open(seen) as f:
            assert f.read().split() == [f"bundle{i}", "1"]
    for cid in ids:
        ctx.delete(cid, force=True)
    assert leftovers() == before
    for b in bundles:
        assert os.listdir(os.path.join(b, "rootfs", "seeded")) == ["sub"]
        shutil.rmtree(b)
