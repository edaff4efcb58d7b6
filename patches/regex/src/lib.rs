//! `regex-lite` under the name `regex`: see this crate's Cargo.toml for why.
pub use regex_lite::*;
