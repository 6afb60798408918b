//! Exit codes, and errors that carry their own.

use std::fmt;
use std::time::Duration;

use baton_client::ClientError;

/// Success.
pub const OK: i32 = 0;
/// The cluster refused the request, or the operation failed.
pub const FAILED: i32 = 1;
/// A usage error (clap uses 2 for its own).
pub const USAGE: i32 = 2;
/// No endpoint answered.
pub const UNREACHABLE: i32 = 3;
/// Gave up waiting.
pub const TIMED_OUT: i32 = 4;

/// An error with an explicit exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

pub fn failed(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: FAILED,
        message: message.into(),
    }
    .into()
}

pub fn timed_out(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: TIMED_OUT,
        message: message.into(),
    }
    .into()
}

/// The exit code for `error`: the first cause that says which.
pub fn code_of(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return exit.code;
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return match client {
                ClientError::Unreachable { .. } => UNREACHABLE,
                ClientError::BadToken(_) => USAGE,
                _ => FAILED,
            };
        }
    }
    FAILED
}

/// `error` and its causes on one line.
pub fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A humantime duration, or a usage error naming the flag.
pub fn parse_duration(flag: &str, value: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(value.trim())
        .map_err(|_| usage(format!("invalid {flag} `{value}`: use e.g. 500ms, 30s")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_cause() {
        let unreachable = anyhow::Error::new(ClientError::Unreachable {
            endpoints: vec!["a".into()],
            last_error: "refused".into(),
        })
        .context("listing groups");
        assert_eq!(code_of(&unreachable), UNREACHABLE);
        let api = anyhow::Error::new(ClientError::Api {
            status: 409,
            message: "exists".into(),
        });
        assert_eq!(code_of(&api), FAILED);
        assert_eq!(code_of(&timed_out("slow")), TIMED_OUT);
        assert_eq!(code_of(&anyhow::anyhow!("other")), FAILED);
    }

    #[test]
    fn durations_name_the_flag() {
        assert_eq!(
            parse_duration("--timeout", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        let err = parse_duration("--timeout", "5x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid --timeout `5x`: use e.g. 500ms, 30s"
        );
        assert_eq!(code_of(&err), USAGE);
    }
}
