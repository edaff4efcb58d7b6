//! The options of a `mounts` entry, parsed into flags, propagation, recursive attributes and
//! filesystem data: validation checks them before anything exists, `rootfs` applies them.

use nix::mount::MsFlags;

use super::Problem;

/// What a list of mount options asks for. Options that are not flags are filesystem data,
/// passed to mount(2) as given (`size=64k`, `mode=755`).
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Flags an option explicitly clears (`rw`, `suid`, ...): a remount must not carry them
    /// over from the source.
    pub clear: MsFlags,
    /// Propagation changes, applied one by one after the mount (`rslave`, `shared`, ...).
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...) for mount_setattr(2) on the whole tree.
    pub attr_set: u64,
    pub attr_clr: u64,
    pub data: Vec<String>,
    /// runc's extension: copy what the destination held into the new tmpfs.
    pub tmpcopyup: bool,
    /// `idmap` or `ridmap` (see `idmapped`).
    pub idmap: Option<Idmap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    /// The top mount only.
    Top,
    /// Every mount of an `rbind` tree.
    Recursive,
}

impl MountOptions {
    pub fn parse<S: AsRef<str>>(options: &[S]) -> std::result::Result<MountOptions, Problem> {
        let mut o = MountOptions {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: vec![],
            attr_set: 0,
            attr_clr: 0,
            data: vec![],
            tmpcopyup: false,
            idmap: None,
        };
        for opt in options {
            let opt = opt.as_ref();
            if let Some((set, flag)) = flag(opt) {
                o.flags.set(flag, set);
                o.clear.set(flag, !set);
            } else if let Some(p) = propagation(opt) {
                o.propagation.push(p);
            } else if let Some((set, attr)) = recursive_attr(opt) {
                if set {
                    o.attr_set |= attr
                } else {
                    o.attr_clr |= attr
                }
                // Clearing an atime mode means choosing another one: mount_setattr wants the
                // whole atime field cleared first.
                if attr & libc::MOUNT_ATTR__ATIME != 0 || attr == libc::MOUNT_ATTR_RELATIME {
                    o.attr_clr |= libc::MOUNT_ATTR__ATIME;
                }
            } else if opt == "tmpcopyup" {
                o.tmpcopyup = true;
            } else if opt == "idmap" || opt == "ridmap" {
                o.idmap = Some(if opt == "ridmap" {
                    Idmap::Recursive
                } else {
                    Idmap::Top
                });
            } else if opt.is_empty() {
                return Err(Problem::EmptyOption);
            } else {
                // tmpfs, devpts and others take the owner as data: 4294967295 there would be -1.
                if let Some(id) = opt
                    .strip_prefix("uid=")
                    .or_else(|| opt.strip_prefix("gid="))
                {
                    let id: u64 = id
                        .parse()
                        .map_err(|_| Problem::OptionNotANumber(opt.to_owned()))?;
                    if super::check_id(id).is_err() {
                        return Err(Problem::OptionIdOutOfRange {
                            key: opt[..4].to_owned(),
                            id,
                        });
                    }
                }
                o.data.push(opt.to_owned());
            }
        }
        Ok(o)
    }

    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// The flags of mount(8): (option, sets the flag? (false: clears it), flag).
const FLAGS: &[(&str, bool, libc::c_ulong)] = &[
    ("defaults", true, 0),
    ("ro", true, libc::MS_RDONLY),
    ("rw", false, libc::MS_RDONLY),
    ("nosuid", true, libc::MS_NOSUID),
    ("suid", false, libc::MS_NOSUID),
    ("nodev", true, libc::MS_NODEV),
    ("dev", false, libc::MS_NODEV),
    ("noexec", true, libc::MS_NOEXEC),
    ("exec", false, libc::MS_NOEXEC),
    ("sync", true, libc::MS_SYNCHRONOUS),
    ("async", false, libc::MS_SYNCHRONOUS),
    ("dirsync", true, libc::MS_DIRSYNC),
    ("remount", true, libc::MS_REMOUNT),
    ("mand", true, libc::MS_MANDLOCK),
    ("nomand", false, libc::MS_MANDLOCK),
    ("atime", false, libc::MS_NOATIME),
    ("noatime", true, libc::MS_NOATIME),
    ("diratime", false, libc::MS_NODIRATIME),
    ("nodiratime", true, libc::MS_NODIRATIME),
    ("relatime", true, libc::MS_RELATIME),
    ("norelatime", false, libc::MS_RELATIME),
    ("strictatime", true, libc::MS_STRICTATIME),
    ("nostrictatime", false, libc::MS_STRICTATIME),
    ("lazytime", true, libc::MS_LAZYTIME),
    ("nolazytime", false, libc::MS_LAZYTIME),
    ("iversion", true, libc::MS_I_VERSION),
    ("noiversion", false, libc::MS_I_VERSION),
    ("silent", true, libc::MS_SILENT),
    ("loud", false, libc::MS_SILENT),
    ("acl", true, libc::MS_POSIXACL),
    ("noacl", false, libc::MS_POSIXACL),
    ("bind", true, libc::MS_BIND),
    ("rbind", true, libc::MS_BIND | libc::MS_REC),
    ("nosymfollow", true, libc::MS_NOSYMFOLLOW),
    ("symfollow", false, libc::MS_NOSYMFOLLOW),
];

const PROPAGATION: &[(&str, libc::c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// Recursive attributes for mount_setattr(2): (option, sets? (false: clears), MOUNT_ATTR_*).
const RECURSIVE: &[(&str, bool, u64)] = &[
    ("rro", true, libc::MOUNT_ATTR_RDONLY),
    ("rrw", false, libc::MOUNT_ATTR_RDONLY),
    ("rnosuid", true, libc::MOUNT_ATTR_NOSUID),
    ("rsuid", false, libc::MOUNT_ATTR_NOSUID),
    ("rnodev", true, libc::MOUNT_ATTR_NODEV),
    ("rdev", false, libc::MOUNT_ATTR_NODEV),
    ("rnoexec", true, libc::MOUNT_ATTR_NOEXEC),
    ("rexec", false, libc::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", true, libc::MOUNT_ATTR_NODIRATIME),
    ("rdiratime", false, libc::MOUNT_ATTR_NODIRATIME),
    ("rrelatime", true, libc::MOUNT_ATTR_RELATIME),
    ("rnorelatime", false, libc::MOUNT_ATTR_RELATIME),
    ("rnoatime", true, libc::MOUNT_ATTR_NOATIME),
    ("ratime", false, libc::MOUNT_ATTR_NOATIME),
    ("rstrictatime", true, libc::MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", false, libc::MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", true, libc::MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", false, libc::MOUNT_ATTR_NOSYMFOLLOW),
];

/// Every option kiln understands, for the `features` document.
pub fn known_options() -> impl Iterator<Item = &'static str> {
    FLAGS
        .iter()
        .map(|f| f.0)
        .chain(PROPAGATION.iter().map(|p| p.0))
        .chain(RECURSIVE.iter().map(|r| r.0))
        .chain(["tmpcopyup", "idmap", "ridmap"])
}

fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    FLAGS
        .iter()
        .find(|f| f.0 == opt)
        .map(|&(_, set, bits)| (set, MsFlags::from_bits_retain(bits)))
}

fn propagation(opt: &str) -> Option<MsFlags> {
    PROPAGATION
        .iter()
        .find(|p| p.0 == opt)
        .map(|&(_, bits)| MsFlags::from_bits_retain(bits))
}

fn recursive_attr(opt: &str) -> Option<(bool, u64)> {
    RECURSIVE
        .iter()
        .find(|r| r.0 == opt)
        .map(|&(_, set, attr)| (set, attr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_propagation_and_data_are_split() {
        let o = MountOptions::parse(&[
            "nosuid",
            "noexec",
            "rslave",
            "size=65536k",
            "mode=755",
            "ro",
            "rw",
        ])
        .unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["size=65536k", "mode=755"]);
    }

    #[test]
    fn rbind_and_recursive_readonly() {
        let o = MountOptions::parse(&["rbind", "rro"]).unwrap();
        assert!(o.is_bind() && o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.attr_set, libc::MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn empty_option_is_an_error() {
        assert!(MountOptions::parse(&["ro", ""]).is_err());
    }

    #[test]
    fn clearing_a_flag_is_remembered() {
        let o = MountOptions::parse(&["rw", "nosuid"]).unwrap();
        assert!(o.clear.contains(MsFlags::MS_RDONLY));
        assert!(!o.clear.contains(MsFlags::MS_NOSUID));
    }
}
