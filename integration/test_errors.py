"""Bad input: the runtime fails, says why, and leaves nothing behind."""

import json
import os
import re
import shutil

import pytest

from conftest import CALL_TIMEOUT, IS_KILN, Result, run_to_files, runc_deviates

CONFIG_TEXT_SYNTAX = """{
  "ociVersion": "1.0.2-dev",
  "process": {
    "args": ["sh" "-c"],
    "cwd": "/"
  },
  "root": {"path": "rootfs"}
}
"""


def json_error_position(text):
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return e.lineno, e.colno
    raise AssertionError("text is valid JSON")


class Failure:
    """Run a create (or other command) that must fail, with a JSON log."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.log = os.path.join(ctx.dir, "log.json")

    def call(self, *args, **kw):
        glob = ["--root", self.ctx.root, "--log", self.log, "--log-format", "json"]
        r = self.ctx.rt(*args, glob=glob, **kw)
        return r

    def log_errors(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            entries = [json.loads(l) for l in f.read().splitlines() if l.strip()]
        return [e for e in entries if e.get("level") == "error"]

    def check(self, r, cid=None):
        """Non-zero, an error reported, nothing of the container left."""
        assert r.rc != 0, r
        errs = self.log_errors()
        assert r.err.strip() or errs, r
        for e in errs:
            assert e["msg"] and "time" in e, e
        if cid is not None:
            assert self.ctx.rt("state", cid).rc != 0
            assert not os.path.exists(os.path.join(self.ctx.root, cid))
        assert self.ctx.list_ids() == []
        return r


def create_must_fail(ctx, config_text=None, cid=None, bundle=None):
    if config_text is not None:
        with open(os.path.join(bundle or ctx.bundle, "config.json"), "w") as f:
            f.write(config_text)
    cid = cid or ctx.new_id()
    f = Failure(ctx)
    r = f.call("create", "--bundle", bundle or ctx.bundle, cid)
    return f.check(r, cid)


def error_text(r):
    return r.err.strip()


def assert_one_line(r):
    text = r.err.rstrip("\n")
    assert text, r
    assert "\n" not in text, f"error is more than one line: {r.err!r}"
    return text


# ------------------------------------------------------------------ config


def test_invalid_json_config(ctx):
    create_must_fail(ctx, CONFIG_TEXT_SYNTAX)


def test_empty_config(ctx):
    create_must_fail(ctx, "")


def test_wrong_type_config(ctx):
    ctx.config["process"]["user"]["uid"] = "zero"
    create_must_fail(ctx, json.dumps(ctx.config, indent=1))


def test_missing_rootfs(ctx):
    shutil.rmtree(ctx.rootfs)
    ctx.sh("true")
    ctx.save()
    create_must_fail(ctx)


def test_missing_config(ctx):
    create_must_fail(ctx)  # nothing was saved: the bundle has no config.json


def test_bundle_not_a_directory(ctx):
    create_must_fail(ctx, bundle=os.path.join(ctx.dir, "no-such-bundle"))


@runc_deviates("1.1.5 only warns about an unknown capability name and runs anyway; "
               "kiln rejects it (a typo must not silently drop a capability)")
def test_unknown_capability(ctx):
    ctx.config["process"]["capabilities"]["bounding"].append("CAP_BOGUS")
    ctx.save()
    create_must_fail(ctx)


def test_nonexistent_binary_fails_create(ctx):
    ctx.config["process"]["args"] = ["/bin/kiln-no-such-binary"]
    ctx.save()
    create_must_fail(ctx)


def test_nonexistent_binary_in_path_fails_create(ctx):
    ctx.config["process"]["args"] = ["kiln-no-such-binary"]
    ctx.save()
    create_must_fail(ctx)


def test_non_executable_args0_fails_create(ctx):
    ctx.config["process"]["args"] = ["/etc/passwd"]
    ctx.save()
    create_must_fail(ctx)


def test_empty_args_fails(ctx):
    ctx.config["process"]["args"] = []
    ctx.save()
    create_must_fail(ctx)


def test_relative_cwd_fails(ctx):
    ctx.config["process"]["cwd"] = "relative/dir"
    ctx.sh("true")
    ctx.save()
    create_must_fail(ctx)


def test_unknown_namespace_type_fails(ctx):
    ctx.config["linux"]["namespaces"].append({"type": "bogus"})
    ctx.save()
    create_must_fail(ctx)


def test_unknown_rlimit_fails(ctx):
    ctx.config["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1})
    ctx.save()
    create_must_fail(ctx)


def test_bad_mount_fails_and_unwinds(ctx):
    ctx.add_mount({"destination": "/bad", "type": "bind",
                   "source": os.path.join(ctx.dir, "no-such-source"), "options": ["rbind"]})
    ctx.save()
    create_must_fail(ctx)


def test_failure_after_mounts_leaves_no_mounts(ctx):
    src = ctx.hostdir("share")
    ctx.add_mount({"destination": "/share", "type": "bind", "source": src,
                   "options": ["rbind"]})
    ctx.config["process"]["args"] = ["/bin/kiln-no-such-binary"]
    ctx.save()
    create_must_fail(ctx)


# ------------------------------------------------------------------ other commands


def test_kill_bad_signal(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    f = Failure(ctx)
    r = f.call("kill", cid, "SIGBOGUS")
    assert r.rc != 0, r
    assert r.err.strip() or f.log_errors(), r
    # the container is untouched
    st = ctx.state(cid)
    assert st["status"] == "created" and st["pid"] == pid
    ctx.delete(cid, force=True)


def test_kill_bad_signal_number(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    f = Failure(ctx)
    r = f.call("kill", cid, "999")
    assert r.rc != 0, r
    assert ctx.state(cid)["status"] == "created"
    ctx.delete(cid, force=True)


def test_start_unknown_id(ctx):
    f = Failure(ctx)
    f.check(f.call("start", "kilntest-nonexistent"))


def test_unknown_subcommand(ctx):
    r = ctx.rt("kiln-bogus-subcommand")
    assert r.rc != 0, r
    assert r.err.strip()


def test_create_without_id(ctx):
    ctx.save()
    r = ctx.rt("create", "--bundle", ctx.bundle)
    assert r.rc != 0, r
    assert ctx.list_ids() == []


def test_log_json_on_error(ctx):
    f = Failure(ctx)
    r = f.call("state", "kilntest-nonexistent")
    assert r.rc != 0
    errs = f.log_errors()
    assert errs, "no error line in the --log file"
    e = errs[-1]
    assert e["level"] == "error"
    assert isinstance(e["msg"], str) and e["msg"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["time"]), e


def test_log_json_on_create_error(ctx):
    ctx.config["process"]["args"] = ["/bin/kiln-no-such-binary"]
    ctx.save()
    r = create_must_fail(ctx)
    errs = Failure(ctx).log_errors()
    assert errs, r
    assert "kiln-no-such-binary" in errs[-1]["msg"], errs


# ------------------------------------------------------------------ kiln's messages


@pytest.mark.kiln_only
def test_kiln_json_syntax_error_has_position(ctx):
    r = create_must_fail(ctx, CONFIG_TEXT_SYNTAX)
    text = assert_one_line(r)
    line, col = json_error_position(CONFIG_TEXT_SYNTAX)
    m = re.search(r"line (\d+) column (\d+)", text)
    assert m, text
    assert int(m.group(1)) == line, (text, line, col)
    assert abs(int(m.group(2)) - col) <= 1, (text, line, col)


@pytest.mark.kiln_only
def test_kiln_wrong_type_names_field(ctx):
    ctx.config["process"]["user"]["uid"] = "zero"
    r = create_must_fail(ctx, json.dumps(ctx.config, indent=1))
    text = assert_one_line(r)
    assert "process.user.uid" in text, text


@pytest.mark.kiln_only
def test_kiln_unknown_capability_named(ctx):
    ctx.config["process"]["capabilities"]["bounding"].append("CAP_BOGUS")
    ctx.save()
    r = create_must_fail(ctx)
    text = assert_one_line(r)
    assert "CAP_BOGUS" in text, text


@pytest.mark.kiln_only
def test_kiln_bad_signal_named(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    r = ctx.rt("kill", cid, "SIGBOGUS")
    assert r.rc != 0
    text = assert_one_line(r)
    assert "SIGBOGUS" in text, text
    ctx.delete(cid, force=True)


@pytest.mark.kiln_only
def test_kiln_missing_rootfs_named(ctx):
    shutil.rmtree(ctx.rootfs)
    ctx.save()
    r = create_must_fail(ctx)
    text = assert_one_line(r)
    assert ctx.rootfs in text, text


@pytest.mark.kiln_only
def test_kiln_missing_binary_named(ctx):
    ctx.config["process"]["args"] = ["/bin/kiln-no-such-binary"]
    ctx.save()
    r = create_must_fail(ctx)
    text = assert_one_line(r)
    assert "/bin/kiln-no-such-binary" in text, text


@pytest.mark.kiln_only
def test_kiln_unknown_id_one_line(ctx):
    r = ctx.rt("state", "kilntest-nonexistent")
    assert r.rc != 0
    assert_one_line(r)


@pytest.mark.parametrize("cmd", ["state", "start", "kill", "delete"])
def test_unknown_id_says_does_not_exist(ctx, cmd):
    # containerd's and Podman's runc clients match this text to tell
    # "not found" from other failures.
    r = ctx.rt(cmd, "kilntest-nonexistent")
    assert r.rc != 0
    assert "does not exist" in r.err, r


@runc_deviates("runc writes the map and reports the kernel's EINVAL without naming the field")
def test_id_map_of_size_zero_names_the_field(ctx):
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 0}]
    ctx.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ctx.save()
    r = create_must_fail(ctx)
    text = assert_one_line(r)
    assert "linux.uidMappings[0].size" in text, text


# ------------------------------------------------------------------ uid and gid range

# Above 2147483647 (runc's limit) lies 4294967295: -1 to setresuid and chown, "leave
# unchanged", which would leave the process root.
MAX_ID = 2147483647
BAD_IDS = [MAX_ID + 1, 4294967295]
ID_RANGE = "uids and gids must be in range 0-2147483647"
TEST_DEVICE = {"path": "/dev/kilnnull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
USERNS_MAPS = [{"containerID": 0, "hostID": 100000, "size": 1000}]


def _with_userns(cfg):
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [dict(m) for m in USERNS_MAPS]
    cfg["linux"]["gidMappings"] = [dict(m) for m in USERNS_MAPS]


def _tmp_mount(cfg, opt):
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", opt]})
    return f"mounts[{len(cfg['mounts']) - 1}].options"


def _set_user(key):
    def place(cfg, v):
        cfg["process"]["user"][key] = [v] if key == "additionalGids" else v
        return f"process.user.{key}" + ("[0]" if key == "additionalGids" else "")
    return place


def _set_device(key):
    def place(cfg, v):
        cfg["linux"]["devices"] = [dict(TEST_DEVICE, **{key: v})]
        return f"linux.devices[0].{key}"
    return place


def _set_mapping(maps, key, second=False):
    def place(cfg, v):
        _with_userns(cfg)
        field = f"linux.{maps}"
        if second:
            # An extra range whose start is fine but whose end is not.
            cfg["linux"][maps].append({"containerID": MAX_ID, "hostID": 300000, "size": v - MAX_ID + 1})
            return f"{field}[1].size"
        cfg["linux"][maps][0][key] = v
        return f"{field}[0].{key}"
    return place


ID_PLACES = {
    "uid": _set_user("uid"),
    "gid": _set_user("gid"),
    "additionalGids": _set_user("additionalGids"),
    "device-uid": _set_device("uid"),
    "device-gid": _set_device("gid"),
    "mount-uid": lambda cfg, v: _tmp_mount(cfg, f"uid={v}"),
    "mount-gid": lambda cfg, v: _tmp_mount(cfg, f"gid={v}"),
    "uidMappings-containerID": _set_mapping("uidMappings", "containerID"),
    "uidMappings-hostID": _set_mapping("uidMappings", "hostID"),
    "gidMappings-containerID": _set_mapping("gidMappings", "containerID"),
    "gidMappings-hostID": _set_mapping("gidMappings", "hostID"),
    "uidMappings-size": _set_mapping("uidMappings", None, second=True),
    "gidMappings-size": _set_mapping("gidMappings", None, second=True),
}

# What runc 1.1.5 lets through (verified): a device's owner is never checked, and where the
# kernel takes 2147483648 as a valid id (a mount's owner, a host id, a range's end) so does runc.
RUNC_ACCEPTS = {("device-uid", v) for v in BAD_IDS} | {("device-gid", v) for v in BAD_IDS} | {
    (p, MAX_ID + 1) for p in ("mount-uid", "mount-gid", "uidMappings-hostID", "gidMappings-hostID",
                              "uidMappings-size", "gidMappings-size")}


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("place", list(ID_PLACES))
def test_id_out_of_range_is_refused(ctx, request, place, value):
    if (place, value) in RUNC_ACCEPTS:
        request.applymarker(runc_deviates("runc 1.1.5 does not range-check this id"))
    field = ID_PLACES[place](ctx.config, value)
    ctx.save()
    r = create_must_fail(ctx)
    text = assert_one_line(r)
    if not ctx.runtime.endswith("kiln"):
        return
    assert f"{field}: " in text and str(value) in text and ID_RANGE in text, text


def _id_accepted(ctx, place, script):
    ID_PLACES[place](ctx.config, MAX_ID)
    return ctx.run_sh(script).strip()


@pytest.mark.parametrize("key,script", [("uid", "id -u"), ("gid", "id -g"), ("additionalGids", "id -G")])
def test_id_at_the_limit_runs_as_that_user(ctx, key, script):
    assert str(MAX_ID) in _id_accepted(ctx, key, script).split()


@pytest.mark.parametrize("key", ["uid", "gid"])
def test_device_id_at_the_limit(ctx, key):
    out = _id_accepted(ctx, f"device-{key}", "stat -c %u:%g /dev/kilnnull")
    assert out == (f"{MAX_ID}:0" if key == "uid" else f"0:{MAX_ID}"), out


@pytest.mark.parametrize("key", ["uid", "gid"])
def test_mount_id_at_the_limit(ctx, key):
    out = _id_accepted(ctx, f"mount-{key}", "stat -c %u:%g /tmp")
    assert out == (f"{MAX_ID}:0" if key == "uid" else f"0:{MAX_ID}"), out


def test_mapping_ending_at_the_limit(ctx):
    _with_userns(ctx.config)
    for maps in ("uidMappings", "gidMappings"):
        ctx.config["linux"][maps].append({"containerID": MAX_ID, "hostID": MAX_ID, "size": 1})
    lines = ctx.run_sh("cat /proc/self/uid_map /proc/self/gid_map").split("\n")
    assert sum(l.split() == [str(MAX_ID), str(MAX_ID), "1"] for l in lines) == 2, lines


# Errors name the file that was read: the bundle's own config.json, and exec's --process file
# as it was given. A capability is bad by its name, or because the runtime itself lacks it.

BAD_CAPS = [
    pytest.param("CAP_BOGUS", marks=runc_deviates(
        "1.1.5 only warns about an unknown capability name and runs anyway")),
    "CAP_SYS_TIME",
]


def without_sys_time(ctx, *args):
    """The runtime with CAP_SYS_TIME gone from its bounding set: one it cannot grant."""
    cmd = ["setpriv", "--bounding-set=-sys_time", ctx.runtime, "--root", ctx.root, *args]
    return Result(run_to_files(cmd, CALL_TIMEOUT, cwd=ctx.dir, tmp=ctx.dir))


@pytest.mark.parametrize("cap", BAD_CAPS)
def test_bad_capability_names_the_bundles_config(ctx, cap):
    ctx.config["process"]["capabilities"]["effective"].append(cap)
    ctx.save()
    cid = ctx.new_id()
    r = without_sys_time(ctx, "create", "--bundle", ctx.bundle, cid)
    assert r.rc == 1, r
    text = assert_one_line(r)
    assert ctx.rt("state", cid).rc != 0 and ctx.list_ids() == []
    config = os.path.join(os.path.realpath(ctx.bundle), "config.json")
    if IS_KILN:
        assert f"{config}: process.capabilities.effective" in text and cap in text, text


@pytest.mark.parametrize("cap", BAD_CAPS)
def test_bad_capability_names_the_process_file(ctx, cap):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    process = dict(ctx.config["process"], args=["true"])
    caps = process["capabilities"]
    process["capabilities"] = dict(caps, effective=caps["effective"] + [cap])
    with open(os.path.join(ctx.dir, "p.json"), "w") as f:
        json.dump(process, f)
    r = without_sys_time(ctx, "exec", "--process", "p.json", cid)
    assert r.rc == 255, r
    text = assert_one_line(r)
    assert ctx.state(cid)["status"] == "created"
    if IS_KILN:
        assert "p.json: capabilities.effective" in text and cap in text, text
        assert "config.json" not in text, text
    ctx.delete(cid, force=True)


# ------------------------------------------------------------------ values in errors

def _without(cfg, ns):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != ns]


MEBIBYTE = 1 << 20

# A value that makes create fail, how it is put in, and the field a kiln error names.
BAD_VALUES = {
    "hostname-newline": (lambda c: c.__setitem__("hostname", "bad\nname" * 10), "hostname"),
    "hostname-1MiB": (lambda c: c.__setitem__("hostname", "h" * MEBIBYTE), "hostname"),
    "mount-destination-escapes": (
        lambda c: c["mounts"].append({"destination": "/x\x1b[31m\x00y\n", "type": "tmpfs",
                                      "source": "tmpfs"}), "mounts[7]"),
    "env-control-characters": (
        lambda c: c["process"]["env"].append("\x1b[2J\x07\tNO\x00EQUALS\n"), "process.env[2]"),
    "json-string-with-newline": (
        lambda c: c["process"]["user"].__setitem__("uid", "zero\n" + "0" * MEBIBYTE),
        "process.user.uid"),
    "json-map-key-1MiB": (
        lambda c: c["linux"].__setitem__("sysctl", {"net.\n" + "k" * MEBIBYTE: "1"}),
        "linux.sysctl.net."),
}


def _bad_value_create(ctx, case, log_json):
    BAD_VALUES[case][0](ctx.config)
    ctx.save()
    cid = ctx.new_id()
    log = os.path.join(ctx.dir, "log.json")
    glob = ["--root", ctx.root] + (["--log", log, "--log-format", "json"] if log_json else [])
    r = ctx.rt("create", "--bundle", ctx.bundle, cid, glob=glob)
    assert r.rc == 1, r
    assert ctx.rt("state", cid).rc != 0 and ctx.list_ids() == []
    text = r.err
    assert text.endswith("\n") and text.count("\n") == 1, f"not one line: {text[:2000]!r}"
    assert len(text.encode()) < 1024, f"{len(text.encode())} bytes: {text[:2000]!r}"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), f"a control character: {text!r}"
    if log_json:
        errs = [json.loads(l) for l in open(log).read().splitlines()]
        errs = [e for e in errs if e["level"] == "error"]
        assert len(errs) == 1 and len(errs[0]["msg"].encode()) < 1024, errs
        assert not re.search(r"[\x00-\x1f\x7f]", errs[0]["msg"]), errs
        return errs[0]["msg"]
    return text


# What runc 1.1.5 does instead (verified).
RUNC_LONG_LINES = {
    ("mount-destination-escapes", True): "with --log, stderr gets the raw message, split by "
                                         "the destination's newline",
    ("json-map-key-1MiB", False): "the error quotes the whole 1 MiB sysctl key",
    ("json-map-key-1MiB", True): "the error quotes the whole 1 MiB sysctl key",
}


@pytest.mark.parametrize("log_json", [False, True], ids=["stderr", "log-json"])
@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_value_error_is_one_short_line(ctx, request, case, log_json):
    if (case, log_json) in RUNC_LONG_LINES:
        request.applymarker(runc_deviates(RUNC_LONG_LINES[case, log_json]))
    _bad_value_create(ctx, case, log_json)


RUNC_NAMES_NO_FIELD = {"hostname-newline", "hostname-1MiB", "mount-destination-escapes",
                       "env-control-characters", "json-map-key-1MiB"}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_value_error_names_the_field(ctx, request, case):
    if case in RUNC_NAMES_NO_FIELD:
        request.applymarker(runc_deviates("its message does not name the config field"))
    text = _bad_value_create(ctx, case, log_json=False)
    field = BAD_VALUES[case][1]
    assert re.search(r"(^|[\s:\".])" + re.escape(field), text), text


def test_rlimit_soft_zero_is_a_limit(ctx):
    # soft 0, given or left out (then 0, Go's zero value in runc), is a limit like any other.
    ctx.config["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "hard": 4096, "soft": 0},
                                        {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                                        {"type": "RLIMIT_MSGQUEUE", "hard": 8192}]
    out = ctx.run_sh("grep -E '^Max (core file|msgqueue) size' /proc/self/limits")
    assert re.search(r"^Max core file size\s+0\s+4096\s", out, re.M), out
    assert re.search(r"^Max msgqueue size\s+0\s+8192\s", out, re.M), out


# A soft RLIMIT_NOFILE of 0, given or left out: too low for any runtime to set a container up.
LOW_NOFILE = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 0},
              {"type": "RLIMIT_NOFILE", "hard": 1024}]


def low_nofile_create(ctx, rlimit):
    ctx.config["process"]["rlimits"] = [rlimit]
    ctx.config["process"]["oomScoreAdj"] = 100
    ctx.save()
    return assert_one_line(create_must_fail(ctx))


@pytest.mark.parametrize("rlimit", LOW_NOFILE, ids=["soft-0", "soft-missing"])
def test_rlimit_nofile_too_low_fails_create(ctx, rlimit):
    # Neither runtime can set a container up without a file descriptor to open.
    low_nofile_create(ctx, rlimit)


@runc_deviates("runc reports `error closing exec fds: ... too many open files`, naming no field")
@pytest.mark.parametrize("rlimit", LOW_NOFILE, ids=["soft-0", "soft-missing"])
def test_rlimit_nofile_too_low_names_the_rlimit(ctx, rlimit):
    text = low_nofile_create(ctx, rlimit)
    assert "process.rlimits[0].soft: RLIMIT_NOFILE soft limit 0" in text, text
    assert "oomScoreAdj" not in text.split("process.rlimits[0].soft")[0], text
