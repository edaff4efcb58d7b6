"""Spec 1.3 fields and runc 1.2-1.5's command line (issue 13): what kiln does with each, seen
from the host and from inside the container."""

import json
import re

import pytest

from conftest import runc_deviates
from test_cgroups import cg_read, start_detached


def test_version_names_libseccomp(ctx):
    r = ctx.rt("--version", glob=[])
    assert r.ok, r
    assert re.search(r"^libseccomp: \d+\.\d+\.\d+$", r.out, re.M), r.out


def test_global_criu_flag_is_accepted(ctx):
    # Older clients pass --criu before every command.
    r = ctx.rt("--criu", "/usr/sbin/criu", "--root", ctx.root, "list", glob=[])
    assert r.ok, r


def test_run_no_subreaper_is_accepted(ctx):
    ctx.sh("exit 3")
    _, r = ctx.run("--no-subreaper")
    assert r.rc == 3, r


@runc_deviates("runc 1.1.5 has no update --cpu-burst / --cpu-idle")
def test_update_cpu_burst_and_idle(ctx):
    cid, pid, _ = start_detached(ctx, "sleep 100")
    r = ctx.rt("update", "--cpu-period", "100000", "--cpu-quota", "50000",
               "--cpu-burst", "20000", "--cpu-idle", "1", cid)
    assert r.ok, r
    assert cg_read(pid, "cpu", "cpu.cfs_burst_us", "cpu.max.burst") == "20000"
    assert cg_read(pid, "cpu", "cpu.idle", "cpu.idle") == "1"
    r = ctx.rt("update", "--cpu-idle", "0", cid)
    assert r.ok, r
    assert cg_read(pid, "cpu", "cpu.idle", "cpu.idle") == "0"
    ctx.delete(cid, force=True)


def test_update_rdt_schemas_are_refused_naming_the_flag(ctx):
    cid, _, _ = start_detached(ctx, "sleep 100")
    r = ctx.rt("update", "--l3-cache-schema", "L3:0=f", cid)
    assert r.rc == 1 and re.search(r"l3.cache.schema", r.err, re.I), r
    ctx.delete(cid, force=True)


def rdt_refused(ctx, rdt):
    ctx.config["linux"]["intelRdt"] = rdt
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc == 1, r
    assert "intelRdt" in r.err, r
    assert cid not in ctx.list_ids()
    return r


def test_intel_rdt_schema_without_resctrl_is_refused(ctx):
    rdt_refused(ctx, {"l3CacheSchema": "L3:0=f"})


@runc_deviates("runc 1.1.5 ignores an intelRdt with only a closID when resctrl is absent")
def test_intel_rdt_closid_without_resctrl_is_refused_saying_why(ctx):
    r = rdt_refused(ctx, {"closID": "kilntest"})
    assert "resctrl" in r.err, r


def test_oci_version_1_3_0_is_accepted(ctx):
    ctx.config["ociVersion"] = "1.3.0"
    assert ctx.run_sh("echo ok").strip() == "ok"


@runc_deviates("runc 1.1.5 does not claim intelRdt in features, yet accepts a closID it does not apply")
def test_features_intel_rdt_claim_matches_create(ctx):
    r = ctx.rt("features", glob=[])
    assert r.ok, r
    claimed = json.loads(r.out)["linux"].get("intelRdt", {}).get("enabled", False)
    ctx.config["linux"]["intelRdt"] = {"closID": "kilntest"}
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.ok == claimed, (claimed, r)
    if r.ok:
        ctx.delete(cid, force=True)


@pytest.mark.parametrize("where,field,value", [
    ("process", "execCPUAffinity", {"initial": "0", "final": "0-1"}),
    ("linux", "memoryPolicy", {"mode": "MPOL_BIND", "nodes": "0"}),
    ("linux", "netDevices", {"kilnnosuch0": {}}),
])
@runc_deviates("runc 1.1.5 ignores spec 1.2.1-1.3 fields it does not know")
def test_unapplied_spec13_fields_are_refused_naming_them(ctx, where, field, value):
    ctx.config[where][field] = value
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc == 1 and f"{where}.{field}" in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert cid not in ctx.list_ids()
