//! What validation refuses, as data: the field (its JSON path in the config) and the problem
//! with it. Each refusal is one [`Problem`] variant, whose `Display` is the message the user
//! reads (tests of the integration suite grep these words: keep them when a variant changes).
//! A new check adds a variant here and returns it from `validate.rs`.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType};

use super::{MAX_ID, rlimit_name};
use crate::error::{Error, bare, quote};

/// One refused field: `field` is its path (`process.rlimits[1].type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: String,
    pub problem: Problem,
}

impl Invalid {
    pub fn new(field: impl Into<String>, problem: Problem) -> Invalid {
        Invalid {
            field: field.into(),
            problem,
        }
    }

    /// The error the user reads: the config `file`, the field, the problem.
    pub fn in_file(self, file: impl Into<PathBuf>) -> Error {
        Error::config(file, self.field, self.problem.to_string())
    }
}

const NEEDS_MNT: &str = "private MNT namespace (add {\"type\": \"mount\"} to linux.namespaces)";
const NEEDS_UTS: &str = "private UTS namespace (add {\"type\": \"uts\"} to linux.namespaces)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("missing: nothing to run in the container")]
    NoProcess,
    #[error("must name the program to run")]
    NoArgs,
    #[error("{} is not an absolute path", quote(.0))]
    CwdNotAbsolute(PathBuf),
    #[error("{} appears twice", rlimit_name(*.0))]
    RlimitTwice(PosixRlimitType),
    #[error("{}: soft limit {soft} is above hard limit {hard}", rlimit_name(*.typ))]
    SoftAboveHard {
        typ: PosixRlimitType,
        soft: u64,
        hard: u64,
    },
    #[error("{} is not of the form KEY=value", quote(.0))]
    EnvNotKeyValue(String),
    /// A uid or gid above [`MAX_ID`] (-1 to setresuid and chown means "leave unchanged").
    #[error("{0} is out of range: uids and gids must be in range 0-{MAX_ID}")]
    IdOutOfRange(u64),
    #[error("must be greater than zero (containerID {container_id}, hostID {host_id})")]
    EmptyMapping { container_id: u32, host_id: u32 },
    #[error(
        "{name} {start} + size {size} ends at {last}, out of range: uids and gids must be in range 0-{MAX_ID}"
    )]
    MappingEndOutOfRange {
        /// `containerID` or `hostID`.
        name: &'static str,
        start: u32,
        size: u32,
        last: u64,
    },
    #[error("{0:?} namespace listed twice")]
    NamespaceTwice(LinuxNamespaceType),
    /// A path that must be absolute (a namespace's, a device's, a hook's).
    #[error("{} is not absolute", quote(.0))]
    NotAbsolute(PathBuf),
    #[error("unable to restrict sys entries without a {NEEDS_MNT}")]
    RestrictedPathsNeedMountNamespace,
    #[error("a read-only root needs a {NEEDS_MNT}")]
    ReadonlyRootNeedsMountNamespace,
    #[error("mappings need a user namespace in linux.namespaces")]
    MappingsNeedUserNamespace,
    #[error("a new user namespace needs at least one mapping")]
    UserNamespaceNeedsMapping,
    #[error("offsets need a time namespace in linux.namespaces")]
    OffsetsNeedTimeNamespace,
    #[error(
        "rootless container requires user namespaces: uid {euid} may create the others only inside one (add {{\"type\": \"user\"}} with uidMappings and gidMappings)"
    )]
    RootlessNeedsUserNamespace { euid: u32 },
    #[error("{} is longer than the kernel's limit of {max} bytes", quote(.name))]
    NameTooLong { name: String, max: usize },
    /// `hostname` or `domainname` set without a UTS namespace.
    #[error("setting a {0} needs a {NEEDS_UTS}")]
    NeedsUtsNamespace(&'static str),
    #[error("not a namespaced sysctl: setting it would change the host")]
    HostSysctl,
    /// A sysctl of a namespace the container does not own (`ipc`, `network`, `uts`).
    #[error("needs a private {0} namespace")]
    SysctlNeedsNamespace(&'static str),
    #[error("must not be empty")]
    Empty,
    #[error("an empty option")]
    EmptyOption,
    /// A mount option `uid=` or `gid=` whose value is not a number.
    #[error("{0:?}: not a number")]
    OptionNotANumber(String),
    /// A mount option `uid=` or `gid=` (`key`) whose id is out of range.
    #[error("{key}{} is out of range: uids and gids must be in range 0-{MAX_ID}", .id)]
    OptionIdOutOfRange { key: String, id: u64 },
    #[error(
        "{count} hooks, more than kiln's limit of {max} in one stage (each runs as a process, one after the other)"
    )]
    TooManyHooks { count: usize, max: usize },
    #[error("must be greater than zero")]
    NotPositive,
    /// A label for an LSM (`SELinux`, `AppArmor`) the host does not enable.
    #[error("{0} is not enabled on this host")]
    LsmNotEnabled(&'static str),
    /// A CPU or node list (`process.execCPUAffinity.initial`, `linux.memoryPolicy.nodes`).
    #[error("{0}")]
    BadList(super::cpulist::ListError),
    /// A memory policy mode given nodes it takes none of, or none where it needs some.
    #[error("{mode} {needs}")]
    PolicyNodes {
        mode: &'static str,
        needs: &'static str,
    },
    /// Memory policy flags the kernel refuses together, or with this mode.
    #[error("{0}")]
    PolicyFlags(&'static str),
    #[error(
        "unable to move network devices without a private NET namespace (add {{\"type\": \"network\"}} to linux.namespaces)"
    )]
    NetDevicesNeedNetworkNamespace,
    #[error("network devices are not supported for rootless containers (uid {euid})")]
    NetDevicesRootless { euid: u32 },
    /// An interface name the kernel would refuse (dev_valid_name), and why.
    #[error("{} is not a valid interface name: {why}", quote(.name))]
    BadInterfaceName { name: String, why: &'static str },
    /// Two devices given the same name in the container; `other` is the other's key.
    #[error("{} is also the name of linux.netDevices.{} in the container", quote(.name), bare(.other))]
    InterfaceNameTwice { name: String, other: String },
}
