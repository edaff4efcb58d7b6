//! Compiled seccomp programs kept under the state root (`ROOT/.cache/seccomp/<key>`), shared by
//! every container of that root: libseccomp takes about 12 ms of CPU over a profile like
//! Podman's, on every `create` and `run`, for the same bytes each time.
//!
//! An entry is only ever a speed-up. It is found by a hash of what the program depends on (the
//! seccomp section, kiln's and libseccomp's versions, the kernel and the architecture), but
//! holds all of that in full and is used only when it is equal, so that a hash collision cannot
//! hand one profile another's program; its checksum and the program's shape are checked before
//! anything of it is used. Anything else (missing, short, damaged, a symlink, too large) is
//! compiled again and rewritten. Entries are written whole (a private temporary file, then
//! rename), so a reader never sees half of one, and the directory keeps the newest [`KEEP`].

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;

use super::Filter;

/// The state root's directory of caches: `container::id` refuses it as an ID, so no
/// container's state directory can be this one, and `list` never shows it.
pub const CACHE_DIR: &str = ".cache";

/// The entries kept; more are pruned, oldest first, when one is written.
const KEEP: usize = 64;

/// Larger entries are neither written nor read (a profile is tens of KiB).
const MAX_ENTRY: u64 = 4 << 20;

const MAGIC: &[u8; 8] = b"kilnsc\x00\x01";

/// What a compiled program depends on, in full, and the file name its hash gives.
#[derive(Debug, PartialEq, Eq)]
pub struct Key {
    material: Vec<u8>,
    name: String,
}

impl Key {
    /// Each part length-prefixed, so that no two different inputs make the same material.
    pub fn new(section: &[u8], kiln: &str, libseccomp: &str, kernel: &str, arch: &str) -> Key {
        let mut material = Vec::with_capacity(section.len() + 128);
        for part in [
            section,
            kiln.as_bytes(),
            libseccomp.as_bytes(),
            kernel.as_bytes(),
            arch.as_bytes(),
        ] {
            material.extend_from_slice(&(part.len() as u64).to_le_bytes());
            material.extend_from_slice(part);
        }
        let name = format!("{:016x}", fnv1a(&material));
        Key { material, name }
    }

    /// The key of `s` on this host, for this build.
    pub fn of(s: &LinuxSeccomp) -> Key {
        let section = serde_json::to_vec(s).expect("the seccomp section serialises");
        let libseccomp = super::libseccomp_version().unwrap_or_default();
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Key::new(
            &section,
            env!("CARGO_PKG_VERSION"),
            &libseccomp,
            &kernel,
            std::env::consts::ARCH,
        )
    }
}

/// FNV-1a, 64 bits: a stable hash for the file name and for the checksum against damage (not
/// against an attacker: whoever can write the state root can do worse than replace a filter).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// MAGIC, the key material and the filter (JSON), each length-prefixed, then the checksum of all
/// that precedes it.
pub fn encode(key: &Key, filter: &Filter) -> Vec<u8> {
    let payload = serde_json::to_vec(filter).expect("the filter serialises");
    let mut out = Vec::with_capacity(MAGIC.len() + key.material.len() + payload.len() + 24);
    out.extend_from_slice(MAGIC);
    for part in [&key.material, &payload] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The filter of an entry, if the entry is whole, is for `key`, and holds a loadable program.
pub fn decode(key: &Key, bytes: &[u8]) -> Option<Filter> {
    let (body, sum) = bytes.split_last_chunk::<8>()?;
    if fnv1a(body) != u64::from_le_bytes(*sum) {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let (material, rest) = part(rest)?;
    let (payload, rest) = part(rest)?;
    if !rest.is_empty() || material != key.material {
        return None;
    }
    let filter: Filter = serde_json::from_slice(payload).ok()?;
    let insn = size_of::<libc::sock_filter>();
    let shaped = !filter.program.is_empty()
        && filter.program.len().is_multiple_of(insn)
        && filter.program.len() / insn <= super::MAX_INSNS;
    shaped.then_some(filter)
}

/// One length-prefixed part, and what follows it.
fn part(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Writes the file `name` of the cache directory `dir` (made if missing, private) whole: a
/// private temporary file, then rename, so that a reader never sees half of one.
pub fn write_entry(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".tmp.{name}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, dir.join(name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The cache of the state root `root`.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(root: &Path) -> Cache {
        Cache {
            dir: root.join(CACHE_DIR).join("seccomp"),
        }
    }

    /// The entry's filter, if there is a sound one.
    pub fn load(&self, key: &Key) -> Option<Filter> {
        let path = self.dir.join(&key.name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > MAX_ENTRY {
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_ENTRY + 1).read_to_end(&mut bytes).ok()?;
        let filter = decode(key, &bytes);
        if filter.is_none() {
            crate::log::debug(|| format!("{}: not a sound entry, compiling again", path.display()));
        }
        filter
    }

    /// Writes the entry for `key`. A cache that cannot be written costs only time: the reason is
    /// logged and `create` goes on.
    pub fn store(&self, key: &Key, filter: &Filter) {
        if let Err(e) = self.write(key, &encode(key, filter)) {
            crate::log::debug(|| format!("{}: not cached: {e}", self.dir.display()));
        }
        self.prune();
    }

    fn write(&self, key: &Key, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() as u64 > MAX_ENTRY {
            return Ok(());
        }
        write_entry(&self.dir, &key.name, bytes)
    }

    /// Keeps the newest [`KEEP`] files (temporary ones a killed `create` left included).
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(i64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.mtime(), e.path())))
            .collect();
        if files.len() <= KEEP {
            return;
        }
        files.sort();
        for (_, path) in &files[..files.len() - KEEP] {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> Filter {
        Filter {
            program: vec![6, 0, 0, 0, 0, 0, 0xff, 0x7f],
            flags: 0,
            listener: None,
        }
    }

    fn key(section: &str) -> Key {
        Key::new(section.as_bytes(), "0.1.0", "2.5.4", "6.1.0", "x86_64")
    }

    #[test]
    fn every_part_of_the_key_counts() {
        let k = key("{}");
        assert_eq!(k, key("{}"));
        assert_ne!(k, key("{ }"));
        assert_ne!(
            k.name,
            Key::new(b"{}", "0.1.1", "2.5.4", "6.1.0", "x86_64").name
        );
        assert_ne!(
            k.name,
            Key::new(b"{}", "0.1.0", "2.5.5", "6.1.0", "x86_64").name
        );
        assert_ne!(
            k.name,
            Key::new(b"{}", "0.1.0", "2.5.4", "6.1.1", "x86_64").name
        );
        assert_ne!(
            k.name,
            Key::new(b"{}", "0.1.0", "2.5.4", "6.1.0", "aarch64").name
        );
        // Parts are delimited: moving a byte from one to the next is another key.
        assert_ne!(
            Key::new(b"ab", "c", "", "", "").material,
            Key::new(b"a", "bc", "", "", "").material
        );
        assert_eq!(k.name.len(), 16);
    }

    #[test]
    fn an_entry_round_trips() {
        let k = key("{}");
        let f = decode(&k, &encode(&k, &filter())).unwrap();
        assert_eq!(f.program, filter().program);
    }

    #[test]
    fn a_damaged_entry_is_refused() {
        let k = key("{}");
        let good = encode(&k, &filter());
        // Every truncation, and every single flipped bit.
        for len in 0..good.len() {
            assert!(decode(&k, &good[..len]).is_none(), "cut at {len}");
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&k, &bad).is_none(), "byte {i} bit {bit}");
            }
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&k, &longer).is_none());
    }

    #[test]
    fn another_key_entry_is_refused() {
        let entry = encode(&key("{}"), &filter());
        assert!(decode(&key("{ }"), &entry).is_none());
    }

    #[test]
    fn a_program_of_the_wrong_shape_is_refused() {
        let k = key("{}");
        for program in [
            vec![],
            vec![0; 7],
            vec![0; 8 * (super::super::MAX_INSNS + 1)],
        ] {
            let f = Filter {
                program,
                ..filter()
            };
            assert!(decode(&k, &encode(&k, &f)).is_none());
        }
    }

    #[test]
    fn store_then_load_and_prune() {
        let root = std::env::temp_dir().join(format!("kiln-seccomp-cache-{}", std::process::id()));
        let cache = Cache::new(&root);
        let k = key("{}");
        assert!(cache.load(&k).is_none());
        cache.store(&k, &filter());
        assert_eq!(cache.load(&k).unwrap().program, filter().program);
        // A damaged file is not loaded.
        let path = cache.dir.join(&k.name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(cache.load(&k).is_none());
        for i in 0..KEEP + 5 {
            cache.store(&key(&format!("{{\"n\":{i}}}")), &filter());
        }
        assert_eq!(std::fs::read_dir(&cache.dir).unwrap().count(), KEEP);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
