//! `update`: new resource values for a live container. The request is merged into the
//! resources in force (kept in the state), and what changed is written, together with its
//! partner where the kernel needs both at once (memory with swap, cpu quota with period).

use oci_spec::runtime::LinuxResources;
use serde_json::Value;

use crate::container::{Container, Status};
use crate::error::{Error, Result};

/// The fields that must be written together: `update --memory` alone must still keep
/// memory+swap consistent, and v2's `cpu.max` holds quota and period in one file.
const PARTNERS: &[(&str, &[&str])] = &[
    ("memory", &["limit", "swap"]),
    ("cpu", &["quota", "period"]),
];

pub fn update(c: &mut Container, request: &LinuxResources) -> Result<()> {
    let status = c.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(c.wrong_state(status, "only a live container can be updated"));
    }
    let mut delta = to_value(request);
    // Device rules stay as created, as with runc: clients (containerd) send them back with
    // every update, and rewriting v1's lists would deny devices for a moment.
    if let Some(obj) = delta.as_object_mut() {
        obj.remove("devices");
    }
    let mut merged = match &c.state.resources {
        Some(raw) => serde_json::from_slice::<LinuxResources>(raw.get().as_bytes())
            .map(|r| to_value(&r))
            .map_err(|e| {
                c.bad_state(
                    crate::container::STATE_FILE,
                    format!("its resources are not what kiln wrote: {e}"),
                )
            })?,
        None => to_value(&LinuxResources::default()),
    };
    merge(&mut merged, &delta);
    for (group, fields) in PARTNERS {
        let touched = fields
            .iter()
            .any(|f| delta.get(group).and_then(|g| g.get(f)).is_some());
        if !touched {
            continue;
        }
        for f in *fields {
            if let Some(v) = merged.get(*group).and_then(|g| g.get(*f)) {
                delta[*group][*f] = v.clone();
            }
        }
    }
    c.cgroup()?.set(&from_value(&delta)?)?;
    c.state.resources = Some(raw(&from_value(&merged)?));
    c.save()
}

/// `update --l3-cache-schema/--mem-bw-schema`: the lines into the container's resctrl group.
/// A container created without linux.intelRdt has none, and update makes none (runc's rule).
pub fn schemata(c: &Container, lines: &[&str]) -> Result<()> {
    let status = c.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(c.wrong_state(status, "only a live container can be updated"));
    }
    let group = c.state.intel_rdt.as_ref().ok_or_else(|| {
        Error::Usage(
            "--l3-cache-schema, --mem-bw-schema: the container has no Intel RDT group (its config sets no linux.intelRdt), and update makes none".into(),
        )
    })?;
    crate::cgroups::resctrl::update(group, lines)
}

/// Resources as the state keeps them, JSON text; through `to_vec` and `from_slice`, as below.
/// Without the device rules: they stay as created (see [`update`]), so nothing reads them
/// back, and they are most of the text (a default config's 13 rules, 800 bytes) that every
/// command reading the state, `list` once per container, would have to step over.
pub fn raw(r: &LinuxResources) -> Box<serde_json::value::RawValue> {
    let mut r = r.clone();
    r.set_devices(None);
    let text = String::from_utf8(serde_json::to_vec(&r).expect("resources serialise"))
        .expect("serde_json writes UTF-8");
    serde_json::value::RawValue::from_string(text).expect("serde_json reads its own JSON")
}

// Resources go to and from a Value through JSON text: the state file's reading and writing
// already instantiate LinuxResources' (de)serialisers for text, and serde_json's Value
// serialiser and deserialiser would instantiate them a second time (~9 KB of the binary).
fn to_value(r: &LinuxResources) -> Value {
    let text = serde_json::to_vec(r).expect("resources serialise");
    serde_json::from_slice(&text).expect("serde_json reads its own JSON")
}

/// A request built as JSON (`update`'s flags, or merged resources) as LinuxResources; an
/// error is worded as `serde_json::from_value`'s, without a position in text the user never saw.
pub fn from_value(v: &Value) -> Result<LinuxResources> {
    let text = serde_json::to_vec(v).expect("a JSON value serialises");
    serde_json::from_slice(&text)
        .map_err(|e| Error::Usage(format!("update: {}", crate::spec::without_position(&e))))
}

/// Objects merge key by key; anything else (numbers, arrays) is replaced.
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_the_request_leaves_out() {
        let mut a =
            serde_json::json!({"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 5}});
        merge(&mut a, &serde_json::json!({"memory": {"limit": 150}}));
        assert_eq!(
            a,
            serde_json::json!({"memory": {"limit": 150, "swap": 200}, "pids": {"limit": 5}})
        );
    }

    #[test]
    fn the_state_keeps_resources_without_device_rules() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"devices": [{"allow": false, "access": "rwm"}], "memory": {"limit": 100}}"#,
        )
        .unwrap();
        assert_eq!(raw(&r).get(), r#"{"memory":{"limit":100}}"#);
    }
}
