//! The field at a position of a JSON text: `process.user.uid` for the position serde_json gives
//! in an error. Found by scanning the text up to that position, not by wrapping serde's
//! deserializer: a wrapper instantiates every visitor of the spec a second time (serde_path_to_error
//! cost ~400 KiB of the binary), and the scan runs only when a config fails.

use crate::error::bare;

enum Frame {
    Object { key: Option<String>, want_key: bool },
    Array { index: usize },
}

/// The byte offset of serde_json's 1-based line and 0-based byte column.
pub fn offset(text: &[u8], line: usize, column: usize) -> usize {
    let start = text
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(line.saturating_sub(2))
        .map_or(0, |(i, _)| i + 1);
    let start = if line <= 1 { 0 } else { start };
    (start + column).min(text.len())
}

/// serde_json's line and column of a byte offset.
pub fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    (
        1 + before.iter().filter(|b| **b == b'\n').count(),
        before.len() - start,
    )
}

/// The path to the value being read at `offset` (`linux.sysctl.KEY`, `mounts[2].type`), empty
/// for the whole document; keys shown short and escaped. A missing field's error comes after the
/// object's closing brace, and so names the object.
pub fn field_at(text: &[u8], offset: usize) -> String {
    let end = offset.min(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match text[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                None => {}
            },
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, want_key }) = stack.last_mut()
                    && *want_key
                {
                    let raw = &text[start..(i + 1).min(text.len())];
                    *key = Some(
                        serde_json::from_slice::<String>(raw)
                            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
                    );
                    *want_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut field = String::new();
    for frame in &stack {
        match frame {
            Frame::Array { index } => field.push_str(&format!("[{index}]")),
            Frame::Object { key: Some(k), .. } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&bare(k).to_string());
            }
            Frame::Object { key: None, .. } => {}
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field serde_json's error on `json` points at, as `spec::parse_as` finds it.
    fn at<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        let e = serde_json::from_str::<T>(json).unwrap_err();
        field_at(
            json.as_bytes(),
            offset(json.as_bytes(), e.line(), e.column()),
        )
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Doc {
        a: Inner,
        list: Option<Vec<Inner>>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
        s: Option<String>,
    }

    #[test]
    fn the_failing_value_is_named() {
        assert_eq!(at::<Doc>(r#"{"a":{"n":"x"}}"#), "a.n");
        assert_eq!(
            at::<Doc>("{\n \"a\": {\n  \"s\": \"t\",\n  \"n\": -1\n }\n}"),
            "a.n"
        );
        assert_eq!(
            at::<Doc>(r#"{"a":{"n":1},"list":[{"n":1},{"n":2,"s":3}]}"#),
            "list[1].s"
        );
        assert_eq!(at::<Doc>(r#"{"a":{"n":1},"list":[{"n":1}, 7]}"#), "list[1]");
        assert_eq!(at::<Doc>(r#"[]"#), "");
    }

    #[test]
    fn a_missing_field_names_its_object() {
        assert_eq!(at::<Doc>(r#"{"a":{"s":"t"}}"#), "a");
        assert_eq!(at::<Doc>(r#"{"a":{}}"#), "a");
        assert_eq!(at::<Doc>(r#"{"list":[]}"#), "");
        assert_eq!(at::<Doc>(r#"{"a":{"n":1},"list":[{"s":"x"}]}"#), "list[0]");
    }

    #[test]
    fn keys_are_decoded_then_escaped_and_strings_skipped() {
        assert_eq!(
            at::<Doc>(r#"{"a":{"s":"}],{\"","n":"x"}}"#),
            "a.n",
            "brackets and quotes inside a string are text"
        );
        let e = at::<std::collections::HashMap<String, String>>(r#"{"k\n\"y": 1}"#);
        assert_eq!(e, r#"k\n"y"#);
    }

    #[test]
    fn positions_round_trip() {
        let text = b"ab\ncd\n\nef";
        for i in 0..=text.len() {
            let (l, c) = line_column(text, i);
            assert_eq!(offset(text, l, c), i, "{i}: {l}:{c}");
        }
    }
}
