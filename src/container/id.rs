//! Container IDs as runc accepts them: letters, digits, `_ + - .`, and never `.` or `..` (an ID
//! is a directory name under the state root).

use crate::error::{Error, Result};
use crate::seccomp::cache::CACHE_DIR;

pub fn validate(id: &str) -> Result<()> {
    let why = if id.is_empty() {
        Some("it is empty")
    } else if id == "." || id == ".." {
        Some("it names a directory")
    } else if id == CACHE_DIR {
        Some("it is the directory of kiln's caches in the state root")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        Some("only letters, digits and _ + - . are allowed")
    } else if id.len() > 1024 {
        Some("it is longer than 1024 characters")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::InvalidId {
            id: id.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        for ok in ["a", "kiln-test_1.2+x", "ABC"] {
            assert!(super::validate(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".cache", "../x", "a/b", "a b", "é"] {
            assert!(super::validate(bad).is_err(), "{bad}");
        }
    }
}
