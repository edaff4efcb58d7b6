//! The `--log` / `--log-format` writer. containerd's shim and conmon read the last error from the
//! log file, so a JSON line is exactly logrus's: `{"level":"error","msg":"...","time":"..."}`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Opens the log target once, at start-up. A log file that cannot be opened is reported on stderr
/// and logging falls back to stderr, so the command's own error is never lost.
pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) {
    let file = path.and_then(|p| {
        OpenOptions::new().create(true).append(true).open(p).map_err(|e| {
            eprintln!("kiln: cannot open log file {}: {e}", p.display());
        }).ok()
    });
    let _ = LOGGER.set(Logger { file, format, debug });
}

pub fn error(msg: &str) {
    write(Level::Error, msg);
}

pub fn warn(msg: &str) {
    write(Level::Warn, msg);
}

pub fn debug(msg: impl FnOnce() -> String) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        write(Level::Debug, &msg());
    }
}

fn write(level: Level, msg: &str) {
    let default = Logger { file: None, format: Format::Text, debug: false };
    let logger = LOGGER.get().unwrap_or(&default);
    let now = SystemTime::now();
    let line = match logger.format {
        Format::Json => json_line(level, msg, now),
        Format::Text if logger.file.is_some() => text_line(level, msg, now),
        // On a terminal an operator reads it: no timestamp noise, just what went wrong.
        Format::Text if level == Level::Error => format!("kiln: {msg}\n"),
        Format::Text => format!("kiln: {}: {msg}\n", level.name()),
    };
    match &logger.file {
        Some(f) => {
            let _ = (&*f).write_all(line.as_bytes());
            // runc also prints a fatal error on stderr: an operator running by hand sees it.
            if level == Level::Error {
                eprintln!("kiln: {msg}");
            }
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

fn json_line(level: Level, msg: &str, now: SystemTime) -> String {
    format!(
        "{{\"level\":\"{}\",\"msg\":{},\"time\":\"{}\"}}\n",
        level.name(),
        serde_json::Value::from(msg),
        crate::timefmt::rfc3339(now)
    )
}

/// logrus's TextFormatter without colours: `time="..." level=error msg="..."`.
fn text_line(level: Level, msg: &str, now: SystemTime) -> String {
    format!("time=\"{}\" level={} msg={}\n", crate::timefmt::rfc3339(now), level.name(), serde_json::Value::from(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_logrus_shaped() {
        let line = json_line(Level::Error, "bad \"x\"\n", SystemTime::UNIX_EPOCH);
        assert_eq!(line, "{\"level\":\"error\",\"msg\":\"bad \\\"x\\\"\\n\",\"time\":\"1970-01-01T00:00:00Z\"}\n");
    }
}
