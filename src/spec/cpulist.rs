//! The kernel's list format for CPUs and NUMA nodes ("0-3,7"), as `process.execCPUAffinity`
//! and `linux.memoryPolicy.nodes` write them, parsed into the bitmask that
//! sched_setaffinity(2) and set_mempolicy(2) take. runc's rules: spaces around an element and
//! empty elements are allowed, ids above [`MAX_ID`] are not (a bogus "4000000000" would
//! otherwise ask for a 500 MiB mask).

use oci_spec::runtime::Process;

use super::invalid::{Invalid, Problem};

/// The highest CPU or node id accepted (runc's `configs.MaxCPU`).
pub const MAX_ID: u32 = 64 * 1024;

/// Why a list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("{0:?} is not a CPU or node number")]
    NotANumber(String),
    #[error("{0} is above the highest id supported, {MAX_ID}")]
    TooLarge(u64),
    #[error("range {0:?} ends before it starts")]
    Backwards(String),
    #[error("{0:?} lists no CPU or node")]
    Empty(String),
}

/// A set of ids as 64-bit words, id `n` at bit `n % 64` of word `n / 64`: the layout of the
/// kernel's `unsigned long` masks on a 64-bit machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mask(pub Vec<u64>);

impl Mask {
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// Parses a list. `""` is the empty set (runc: unset); a non-empty string naming no id is
/// refused.
pub fn parse(list: &str) -> Result<Mask, ListError> {
    let mut ranges = Vec::new();
    for element in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (start, end) = match element.split_once('-') {
            Some((s, e)) => (id(s)?, id(e)?),
            None => (id(element)?, id(element)?),
        };
        if start > end {
            return Err(ListError::Backwards(element.to_owned()));
        }
        ranges.push((start, end));
    }
    if ranges.is_empty() && !list.is_empty() {
        return Err(ListError::Empty(list.to_owned()));
    }
    let highest = ranges.iter().map(|r| r.1).max();
    let mut words = vec![0u64; highest.map_or(0, |h| h as usize / 64 + 1)];
    for (start, end) in ranges {
        for n in start..=end {
            words[n as usize / 64] |= 1 << (n % 64);
        }
    }
    Ok(Mask(words))
}

/// A process's `execCPUAffinity`: where it runs before joining the container's cgroup, and
/// after (an empty list is unset, as in runc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affinity {
    pub initial: Option<Mask>,
    pub last: Option<Mask>,
}

/// `prefix` is the field holding the process: `process.` in a config, empty in exec's
/// `--process` file.
pub fn affinity(prefix: &str, p: &Process) -> Result<Affinity, Invalid> {
    let Some(a) = p.exec_cpu_affinity() else {
        return Ok(Affinity::default());
    };
    let one = |name: &str, list: &Option<String>| match list.as_deref().map(parse) {
        Some(Err(e)) => Err(Invalid::new(
            format!("{prefix}execCPUAffinity.{name}"),
            Problem::BadList(e),
        )),
        Some(Ok(m)) if !m.is_empty() => Ok(Some(m)),
        _ => Ok(None),
    };
    Ok(Affinity {
        initial: one("initial", a.initial())?,
        last: one("final", a.cpu_affinity_final())?,
    })
}

fn id(text: &str) -> Result<u32, ListError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ListError::NotANumber(text.to_owned()));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_ID) => Ok(n as u32),
        Ok(n) => Err(ListError::TooLarge(n)),
        // More digits than a u64 holds.
        Err(_) => Err(ListError::TooLarge(u64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::{ListError, MAX_ID, Mask, affinity, parse};

    #[test]
    fn affinity_errors_name_the_field() {
        let process = |a: &str| -> oci_spec::runtime::Process {
            serde_json::from_str(&format!(
                r#"{{"cwd":"/","user":{{"uid":0,"gid":0}},"execCPUAffinity":{a}}}"#
            ))
            .unwrap()
        };
        let a = affinity("process.", &process(r#"{"initial":"1","final":"0-1"}"#)).unwrap();
        assert_eq!(a.initial, Some(Mask(vec![2])));
        assert_eq!(a.last, Some(Mask(vec![3])));
        let a = affinity("", &process(r#"{"final":"0"}"#)).unwrap();
        assert_eq!((a.initial, a.last), (None, Some(Mask(vec![1]))));
        let e = affinity("process.", &process(r#"{"initial":"99999999"}"#)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("process.execCPUAffinity.initial: 99999999 is above"),
            "{e}"
        );
        let e = affinity("", &process(r#"{"initial":"0","final":"5-70000"}"#)).unwrap_err();
        assert!(e.to_string().starts_with("execCPUAffinity.final: "), "{e}");
    }

    #[test]
    fn lists_and_ranges_become_bits() {
        assert_eq!(parse("0"), Ok(Mask(vec![1])));
        assert_eq!(parse("0-3,7"), Ok(Mask(vec![0b1000_1111])));
        assert_eq!(parse(" 1 , 1-2,,"), Ok(Mask(vec![0b110])));
        assert_eq!(parse("64"), Ok(Mask(vec![0, 1])));
        assert_eq!(parse("63-64").unwrap().0, vec![1 << 63, 1]);
        let top = parse(&MAX_ID.to_string()).unwrap();
        assert_eq!(top.0.len(), MAX_ID as usize / 64 + 1);
        assert_eq!(top.0[0], 0);
        assert!(!top.is_empty());
    }

    #[test]
    fn the_empty_string_is_the_empty_set() {
        let m = parse("").unwrap();
        assert!(m.is_empty() && m.0.is_empty());
        assert_eq!(parse(" , "), Err(ListError::Empty(" , ".into())));
    }

    #[test]
    fn garbage_and_huge_numbers_are_refused() {
        assert_eq!(parse("a"), Err(ListError::NotANumber("a".into())));
        assert_eq!(parse("1-"), Err(ListError::NotANumber("".into())));
        assert_eq!(parse("-1"), Err(ListError::NotANumber("".into())));
        assert_eq!(parse("+1"), Err(ListError::NotANumber("+1".into())));
        assert_eq!(parse("1-2-3"), Err(ListError::NotANumber("2-3".into())));
        assert_eq!(parse("3-1"), Err(ListError::Backwards("3-1".into())));
        assert_eq!(
            parse(&(MAX_ID + 1).to_string()),
            Err(ListError::TooLarge(u64::from(MAX_ID) + 1))
        );
        assert_eq!(
            parse("0-99999999999999999999999"),
            Err(ListError::TooLarge(u64::MAX))
        );
        let msg = parse("0-4000000000").unwrap_err().to_string();
        assert!(msg.contains("4000000000") && msg.contains("65536"), "{msg}");
    }
}
