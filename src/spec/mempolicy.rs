//! `linux.memoryPolicy`: the NUMA policy every process of the container gets, as
//! set_mempolicy(2)'s mode word and node mask. The rules on nodes are runc's (DEFAULT and LOCAL
//! take none, PREFERRED any number, the others at least one); those on flags are the
//! kernel's, checked here so that the error names the field rather than a bare EINVAL. Whether
//! the nodes exist only the kernel knows: the process reports its refusal at `create`.

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType as Flag, MemoryPolicyModeType};

use super::cpulist::{self, Mask};
use super::invalid::{Invalid, Problem};

/// Every mode and flag kiln applies, as `features` lists them (sorted, as runc's).
pub const MODES: [&str; 7] = [
    "MPOL_BIND",
    "MPOL_DEFAULT",
    "MPOL_INTERLEAVE",
    "MPOL_LOCAL",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_WEIGHTED_INTERLEAVE",
];
pub const FLAGS: [&str; 3] = [
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
];

const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;

/// What set_mempolicy(2) is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The mode's number or'ed with the flags.
    pub mode: i32,
    pub nodes: Mask,
    /// The mode's name, for messages.
    pub name: &'static str,
}

fn mode(m: MemoryPolicyModeType) -> (i32, &'static str) {
    use MemoryPolicyModeType as M;
    match m {
        M::MpolDefault => (0, "MPOL_DEFAULT"),
        M::MpolPreferred => (1, "MPOL_PREFERRED"),
        M::MpolBind => (2, "MPOL_BIND"),
        M::MpolInterleave => (3, "MPOL_INTERLEAVE"),
        M::MpolLocal => (4, "MPOL_LOCAL"),
        M::MpolPreferredMany => (5, "MPOL_PREFERRED_MANY"),
        M::MpolWeightedInterleave => (6, "MPOL_WEIGHTED_INTERLEAVE"),
    }
}

pub fn plan(p: &LinuxMemoryPolicy) -> Result<Policy, Invalid> {
    let field = |f: &str| format!("linux.memoryPolicy.{f}");
    let (number, name) = mode(p.mode());
    let nodes = cpulist::parse(p.nodes().as_deref().unwrap_or(""))
        .map_err(|e| Invalid::new(field("nodes"), Problem::BadList(e)))?;
    let needs = match (number, nodes.is_empty()) {
        // DEFAULT, LOCAL
        (0 | 4, false) => Some("takes no nodes"),
        // BIND, INTERLEAVE, PREFERRED_MANY, WEIGHTED_INTERLEAVE
        (2 | 3 | 5 | 6, true) => Some("needs at least one node"),
        _ => None,
    };
    if let Some(needs) = needs {
        return Err(Invalid::new(
            field("nodes"),
            Problem::PolicyNodes { mode: name, needs },
        ));
    }
    let flags = p.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            Flag::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
            Flag::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
            Flag::MpolFStaticNodes => MPOL_F_STATIC_NODES,
        }
    });
    let node_flags = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES;
    let refused = if flags & node_flags == node_flags {
        Some("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    } else if flags & MPOL_F_NUMA_BALANCING != 0 && !matches!(number, 2 | 5) {
        Some("MPOL_F_NUMA_BALANCING needs mode MPOL_BIND or MPOL_PREFERRED_MANY")
    } else if flags & node_flags != 0 && nodes.is_empty() && number != 0 {
        Some("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES need nodes")
    } else {
        None
    };
    if let Some(why) = refused {
        return Err(Invalid::new(field("flags"), Problem::PolicyFlags(why)));
    }
    Ok(Policy {
        mode: number | flags,
        nodes,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::{FLAGS, MODES, plan};

    fn planned(json: &str) -> Result<(i32, Vec<u64>), String> {
        let p = serde_json::from_str(json).unwrap();
        plan(&p)
            .map(|p| (p.mode, p.nodes.0))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn modes_and_flags_become_the_kernels_numbers() {
        assert_eq!(planned(r#"{"mode":"MPOL_DEFAULT"}"#), Ok((0, vec![])));
        assert_eq!(
            planned(r#"{"mode":"MPOL_PREFERRED","nodes":"1"}"#),
            Ok((1, vec![2]))
        );
        assert_eq!(planned(r#"{"mode":"MPOL_PREFERRED"}"#), Ok((1, vec![])));
        assert_eq!(
            planned(r#"{"mode":"MPOL_BIND","nodes":"0-1","flags":["MPOL_F_STATIC_NODES"]}"#),
            Ok((2 | 1 << 15, vec![3]))
        );
        assert_eq!(
            planned(r#"{"mode":"MPOL_INTERLEAVE","nodes":"0","flags":["MPOL_F_RELATIVE_NODES"]}"#),
            Ok((3 | 1 << 14, vec![1]))
        );
        assert_eq!(planned(r#"{"mode":"MPOL_LOCAL"}"#), Ok((4, vec![])));
        assert_eq!(
            planned(
                r#"{"mode":"MPOL_PREFERRED_MANY","nodes":"0","flags":["MPOL_F_NUMA_BALANCING"]}"#
            ),
            Ok((5 | 1 << 13, vec![1]))
        );
        assert_eq!(
            planned(r#"{"mode":"MPOL_WEIGHTED_INTERLEAVE","nodes":"64"}"#),
            Ok((6, vec![0, 1]))
        );
        assert!(MODES.is_sorted() && FLAGS.is_sorted());
    }

    #[test]
    fn each_refusal_names_its_field() {
        for (json, field, words) in [
            (
                r#"{"mode":"MPOL_BIND"}"#,
                "nodes",
                "needs at least one node",
            ),
            (
                r#"{"mode":"MPOL_INTERLEAVE","nodes":" , "}"#,
                "nodes",
                "lists no",
            ),
            (
                r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#,
                "nodes",
                "takes no nodes",
            ),
            (
                r#"{"mode":"MPOL_LOCAL","nodes":"0"}"#,
                "nodes",
                "MPOL_LOCAL takes no",
            ),
            (
                r#"{"mode":"MPOL_BIND","nodes":"x"}"#,
                "nodes",
                "\"x\" is not",
            ),
            (r#"{"mode":"MPOL_BIND","nodes":"70000"}"#, "nodes", "above"),
            (
                r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#,
                "flags",
                "exclude each other",
            ),
            (
                r#"{"mode":"MPOL_INTERLEAVE","nodes":"0","flags":["MPOL_F_NUMA_BALANCING"]}"#,
                "flags",
                "needs mode MPOL_BIND",
            ),
            (
                r#"{"mode":"MPOL_PREFERRED","flags":["MPOL_F_STATIC_NODES"]}"#,
                "flags",
                "need nodes",
            ),
        ] {
            let e = planned(json).unwrap_err();
            assert!(
                e.starts_with(&format!("linux.memoryPolicy.{field}: ")) && e.contains(words),
                "{json}: {e}"
            );
        }
    }
}
