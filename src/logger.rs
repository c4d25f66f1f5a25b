//! A small stderr logger: `koordinator: warn: message`, or one JSON object a
//! line (`time`, `severity`, `message`) that Cloud Logging and friends parse.
//!
//! Two rules keep secrets out of logs at every level, trace included: only
//! koordinator's own records are printed (a dependency's trace output could
//! dump request bytes), and every line is redacted of each service-account
//! token koordinator has read, in case a server or proxy echoes one back in
//! a message. The termination log goes through the same redaction.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::borrow::Cow;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

/// Tokens read so far (the newest few: projected tokens rotate hourly).
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());
const KEEP_SECRETS: usize = 4;

/// Registers a secret that no log line may show. Its dot-separated parts
/// (a JWT's header, claims and signature) are redacted on their own too.
pub fn add_secret(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if secrets.iter().any(|s| s == secret) {
        return;
    }
    let mut parts: Vec<String> = std::iter::once(secret)
        .chain(secret.split('.').filter(|p| p.len() >= 16))
        .map(str::to_string)
        .collect();
    parts.dedup();
    secrets.splice(0..0, parts);
    secrets.truncate(KEEP_SECRETS * 4);
}

/// `text` with every registered secret replaced by `[REDACTED]`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), "[REDACTED]"));
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct StderrLogger {
    format: Format,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level() && metadata.target().starts_with("koordinator")
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let line = render(self.format, record.level(), &redact(&message));
        // One write call a line, so lines of concurrent threads do not interleave.
        // A closed stderr must not take koordinator down: the error is dropped.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

fn render(format: Format, level: Level, message: &str) -> String {
    match format {
        Format::Text => format!(
            "koordinator: {}: {message}\n",
            level.as_str().to_lowercase()
        ),
        Format::Json => {
            let severity = match level {
                Level::Error => "ERROR",
                Level::Warn => "WARNING",
                Level::Info => "INFO",
                Level::Debug | Level::Trace => "DEBUG",
            };
            let object = serde_json::json!({
                "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                "severity": severity,
                "message": message,
            });
            format!("{object}\n")
        }
    }
}

/// Parses `KOORDINATOR_LOG`.
pub fn parse_level(text: &str) -> Option<LevelFilter> {
    match text.trim().to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// Parses `KOORDINATOR_LOG_FORMAT`.
pub fn parse_format(text: &str) -> Option<Format> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Some(Format::Text),
        "json" => Some(Format::Json),
        _ => None,
    }
}

/// Installs the logger. Called once, before anything logs.
pub fn init(format: Format, level: LevelFilter) {
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger { format }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// Raises (`-v`) or lowers (`-q`) a level.
pub fn adjust(level: LevelFilter, verbose: u8, quiet: bool) -> LevelFilter {
    if quiet {
        return level.min(LevelFilter::Error);
    }
    let mut level = level;
    for _ in 0..verbose {
        level = match level {
            LevelFilter::Off => LevelFilter::Error,
            LevelFilter::Error => LevelFilter::Warn,
            LevelFilter::Warn => LevelFilter::Info,
            LevelFilter::Info => LevelFilter::Debug,
            LevelFilter::Debug | LevelFilter::Trace => LevelFilter::Trace,
        };
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_time_severity_and_message() {
        let line = render(Format::Json, Level::Warn, "quote \" and\nnewline");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["severity"], "WARNING");
        assert_eq!(v["message"], "quote \" and\nnewline");
        let time = v["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    }

    #[test]
    fn text_lines_name_the_program_and_level() {
        assert_eq!(
            render(Format::Text, Level::Error, "boom"),
            "koordinator: error: boom\n"
        );
    }

    #[test]
    fn registered_secrets_and_their_parts_are_redacted() {
        add_secret("eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ");
        assert_eq!(
            redact("Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ!"),
            "Bearer [REDACTED]!"
        );
        assert_eq!(redact("sig c2lnbmF0dXJlLXNpZ25hdHVyZQ"), "sig [REDACTED]");
        assert_eq!(redact("nothing here"), "nothing here");
    }

    #[test]
    fn verbosity_flags_move_the_level() {
        assert_eq!(adjust(LevelFilter::Info, 1, false), LevelFilter::Debug);
        assert_eq!(adjust(LevelFilter::Info, 5, false), LevelFilter::Trace);
        assert_eq!(adjust(LevelFilter::Info, 0, true), LevelFilter::Error);
        assert_eq!(parse_level("WARN"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("loud"), None);
    }
}
