"""process.*: what the container process sees of its own configuration."""

import os
import re

import pytest

from conftest import runc_deviates

# Linux capability numbers (include/uapi/linux/capability.h).
CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


def mask(names):
    m = 0
    for n in names:
        m |= 1 << CAPS.index(n)
    return m


def status_fields(text):
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def read_status(ctx, extra=""):
    return status_fields(ctx.run_sh(extra + "cat /proc/self/status"))


def test_args_exact(ctx):
    ctx.config["process"]["args"] = ["sh", "-c", 'for a in "$@"; do echo "[$a]"; done',
                                     "zero", "one two", "", "*", "$HOME"]
    _, r = ctx.run()
    assert r.rc == 0, r
    assert r.out == "[one two]\n[]\n[*]\n[$HOME]\n", r


def test_args_path_lookup_and_absolute(ctx):
    ctx.config["process"]["args"] = ["/bin/echo", "abs"]
    _, r = ctx.run()
    assert r.ok and r.out == "abs\n", r
    # relative name looked up in the container's PATH
    ctx.config["process"]["args"] = ["echo", "rel"]
    _, r = ctx.run()
    assert r.ok and r.out == "rel\n", r


def test_env(ctx):
    ctx.config["process"]["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "EQ=a=b"]
    out = ctx.run_sh("env")
    env = dict(l.split("=", 1) for l in out.splitlines())
    assert env["FOO"] == "bar baz"
    assert env["EMPTY"] == ""
    assert env["EQ"] == "a=b"
    assert env["PATH"] == "/bin"
    # nothing from the host's environment leaks in
    assert "PYTEST_CURRENT_TEST" not in env
    assert "TERM" not in env


def test_home_set_from_passwd_when_absent(ctx):
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    out = ctx.run_sh("echo HOME=$HOME")
    assert out == "HOME=/home/kilntest\n"


def test_cwd(ctx):
    ctx.config["process"]["cwd"] = "/etc"
    assert ctx.run_sh("pwd") == "/etc\n"


def test_cwd_created_if_missing(ctx):
    ctx.config["process"]["cwd"] = "/does/not/exist/yet"
    ctx.config["root"]["readonly"] = False
    assert ctx.run_sh("pwd") == "/does/not/exist/yet\n"
    assert os.path.isdir(os.path.join(ctx.rootfs, "does/not/exist/yet"))


def test_user_uid_gid_additional_gids(ctx):
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]}
    st = read_status(ctx)
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1000"] * 4
    assert sorted(int(g) for g in st["Groups"].split()) == [2000, 3000]


def test_user_root_has_no_supplementary_groups(ctx):
    st = read_status(ctx)
    assert st["Uid"].split() == ["0"] * 4
    assert st["Groups"].split() == []


def test_user_id_command(ctx):
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    out = ctx.run_sh("id")
    assert out.strip() == "uid=1000(kilntest) gid=1000(kilntest) groups=2000(extra)", out


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o000])
def test_umask(ctx, umask):
    ctx.config["process"]["user"]["umask"] = umask
    assert ctx.run_sh("umask").strip() == "%04o" % umask


def test_umask_default_is_0022(ctx):
    assert ctx.run_sh("umask").strip() == "0022"


def test_hostname(ctx):
    ctx.config["hostname"] = "kiln-host.example"
    assert ctx.run_sh("hostname; cat /proc/sys/kernel/hostname") == \
        "kiln-host.example\nkiln-host.example\n"
    with open("/proc/sys/kernel/hostname") as f:
        assert f.read().strip() != "kiln-host.example"


@runc_deviates("1.1.5 ignores the domainname field")
def test_domainname(ctx):
    ctx.config["domainname"] = "kiln.test"
    assert ctx.run_sh("cat /proc/sys/kernel/domainname") == "kiln.test\n"
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read().strip() != "kiln.test"


def test_rlimits(ctx):
    ctx.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 1000, "soft": 512},
        {"type": "RLIMIT_NPROC", "hard": 777, "soft": 666},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]
    out = ctx.run_sh("ulimit -n; ulimit -Hn; cat /proc/self/limits")
    lines = out.splitlines()
    assert lines[0] == "512" and lines[1] == "1000", out
    limits = "\n".join(lines[2:])
    assert re.search(r"^Max open files\s+512\s+1000\s+files", limits, re.M), limits
    assert re.search(r"^Max processes\s+666\s+777\s+processes", limits, re.M), limits
    assert re.search(r"^Max core file size\s+0\s+0\s+bytes", limits, re.M), limits


def expected_caps(c, uid, nnp):
    """/proc/self/status capability masks after the runtime sets `c` and
    execs a program without file capabilities, by the kernel's rules
    (capabilities(7), "Transformation of capabilities during execve")."""
    bnd, eff, prm = mask(c.get("bounding", [])), mask(c.get("effective", [])), \
        mask(c.get("permitted", []))
    inh, amb = mask(c.get("inheritable", [])), mask(c.get("ambient", []))
    amb &= prm & inh  # the kernel refuses to raise anything else as ambient
    if uid == 0:
        p = inh | bnd | amb
        if nnp:
            p &= prm
        e = p
    else:
        p = amb
        e = amb
    return {"CapInh": inh, "CapPrm": p, "CapEff": e, "CapBnd": bnd, "CapAmb": amb}


def read_caps(ctx):
    st = read_status(ctx)
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def fmt(d):
    return {k: hex(v) for k, v in d.items()}


def test_capabilities_default_spec(ctx):
    c = ctx.config["process"]["capabilities"]
    assert fmt(read_caps(ctx)) == fmt(expected_caps(c, 0, True))


def test_capabilities_root_custom_sets(ctx):
    c = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_SYS_CHROOT"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_KILL", "CAP_SYS_CHROOT"],
        "ambient": ["CAP_KILL"],
    }
    ctx.config["process"]["capabilities"] = c
    got = read_caps(ctx)
    assert fmt(got) == fmt(expected_caps(c, 0, True))
    # and the bounding set really lacks what was not listed
    assert not got["CapBnd"] & (1 << CAPS.index("CAP_SYS_ADMIN"))


def test_capabilities_non_root_ambient(ctx):
    c = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    ctx.config["process"]["capabilities"] = c
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    got = read_caps(ctx)
    exp = expected_caps(c, 1000, True)
    assert fmt(got) == fmt(exp)
    assert got["CapAmb"] == 1 << CAPS.index("CAP_NET_BIND_SERVICE")


def test_capabilities_empty(ctx):
    ctx.config["process"]["capabilities"] = {}
    got = read_caps(ctx)
    assert fmt(got) == fmt({k: 0 for k in got})


def test_capabilities_absent(ctx):
    del ctx.config["process"]["capabilities"]
    got = read_caps(ctx)
    assert got["CapEff"] == 0 and got["CapPrm"] == 0 and got["CapBnd"] == 0, fmt(got)


def test_capability_effective_in_use(ctx):
    """Without CAP_CHOWN root cannot chown a file it does not own... and with
    it, it can: the masks are not only numbers."""
    ctx.config["root"]["readonly"] = False
    script = "touch /tmp/f && chown 1000 /tmp/f && echo chowned || echo denied"
    ctx.config["process"]["capabilities"] = {k: ["CAP_CHOWN"] for k in
                                             ("bounding", "permitted", "effective")}
    assert ctx.run_sh(script).strip() == "chowned"
    ctx.config["process"]["capabilities"] = {k: ["CAP_KILL"] for k in
                                             ("bounding", "permitted", "effective")}
    out = ctx.run_sh(script + " 2>/dev/null")
    assert out.strip() == "denied"


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(ctx, nnp):
    ctx.config["process"]["noNewPrivileges"] = nnp
    st = read_status(ctx)
    assert st["NoNewPrivs"] == ("1" if nnp else "0")


def test_no_new_privileges_absent_means_off(ctx):
    del ctx.config["process"]["noNewPrivileges"]
    assert read_status(ctx)["NoNewPrivs"] == "0"


def host_caps():
    with open("/proc/self/status") as f:
        return int(status_fields(f.read())["CapEff"], 16)


@pytest.mark.parametrize("adj", [-500, 0, 123, 1000])
def test_oom_score_adj(ctx, adj):
    with open("/proc/self/oom_score_adj") as f:
        mine = int(f.read())
    if adj < mine and not host_caps() & (1 << CAPS.index("CAP_SYS_RESOURCE")):
        pytest.skip("lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host lacks")
    ctx.config["process"]["oomScoreAdj"] = adj
    assert ctx.run_sh("cat /proc/self/oom_score_adj") == f"{adj}\n"


def test_oom_score_adj_absent_inherits(ctx):
    with open("/proc/self/oom_score_adj") as f:
        mine = f.read()
    assert ctx.run_sh("cat /proc/self/oom_score_adj") == mine


def test_stdio_and_stderr_separate(ctx):
    ctx.sh("echo to-out; echo to-err >&2; exit 0")
    _, r = ctx.run()
    assert r.rc == 0
    assert r.out == "to-out\n"
    assert "to-err\n" in r.err


def test_init_is_pid1_and_parent_zero(ctx):
    out = ctx.run_sh("echo $$; cat /proc/self/stat")
    first, stat = out.splitlines()
    assert first == "1"
    fields = stat.rsplit(")", 1)[1].split()
    assert fields[1] == "0"  # ppid 0: nothing of the runtime is visible


def test_no_runtime_fds_leak_into_container(ctx):
    out = ctx.run_sh("ls /proc/self/fd")
    # 0,1,2 and the fd ls itself uses to read the directory
    assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3], out
