//! Human and machine output: aligned plain-text tables, `key: value` blocks, JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Prints `value` as one pretty JSON document.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Columns separated by two spaces, each as wide as its widest cell; empty cells show `-`.
/// The last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |text: &str| -> String {
        if text.is_empty() {
            "-".to_string()
        } else {
            text.to_string()
        }
    };
    let mut lines: Vec<Vec<String>> = vec![headers.iter().map(|h| h.to_string()).collect()];
    lines.extend(rows.iter().map(|row| row.iter().map(|c| cell(c)).collect()));
    let columns = headers.len();
    let mut widths = vec![0; columns];
    for line in &lines {
        for (i, text) in line.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(text.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate().take(columns) {
            if i + 1 == columns {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `key:  value` lines with the values aligned; empty values show `-`.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let value = if value.is_empty() { "-" } else { value };
        out.push_str(&format!(
            "{:<w$}  {}\n",
            format!("{key}:"),
            value,
            w = width + 1
        ));
    }
    out
}

/// An optional name, or `-`.
pub fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_string())
}

/// Milliseconds since the epoch as RFC 3339 UTC.
pub fn timestamp(ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Seconds with two decimals: `1.23s`.
pub fn seconds(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

/// Time left until `expires_ms` (epoch ms), rounded to seconds.
pub fn until(expires_ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let left = Duration::from_secs(expires_ms.saturating_sub(now) / 1000);
    humantime::format_duration(left).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let text = table(
            &["NAME", "STATE", "GROUPS"],
            &[
                vec!["n1".into(), "Up".into(), "web,db".into()],
                vec!["node-two".into(), "Down".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "NAME      STATE  GROUPS\nn1        Up     web,db\nnode-two  Down   -\n"
        );
    }

    #[test]
    fn fields_align() {
        let text = fields(&[("a", "1".into()), ("long key", "".into())]);
        assert_eq!(text, "a:         1\nlong key:  -\n");
    }
}
