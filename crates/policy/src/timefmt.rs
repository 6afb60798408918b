//! Human text for instants and durations (UTC, no clock reads, no time zones).

use crate::input::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};

/// `"2024-01-01 10:00:00 UTC"` for Unix milliseconds.
pub fn format_utc(unix_ms: u64) -> String {
    let days = unix_ms / DAY_MS;
    let (year, month, day) = civil_from_days(days);
    let of_day = unix_ms % DAY_MS;
    let hour = of_day / HOUR_MS;
    let minute = of_day % HOUR_MS / MINUTE_MS;
    let second = of_day % MINUTE_MS / SECOND_MS;
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

/// `"15 min"`, `"6 h"`, `"1 h 30 min"`, `"90 s"`, `"250 ms"`.
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0 s".to_string();
    }
    if ms % MINUTE_MS != 0 {
        return if ms % SECOND_MS == 0 {
            format!("{} s", ms / SECOND_MS)
        } else {
            format!("{ms} ms")
        };
    }
    let hours = ms / HOUR_MS;
    let minutes = ms % HOUR_MS / MINUTE_MS;
    match (hours, minutes) {
        (0, minutes) => format!("{minutes} min"),
        (hours, 0) => format!("{hours} h"),
        (hours, minutes) => format!("{hours} h {minutes} min"),
    }
}

/// `"22:00"` for minutes after midnight.
pub fn format_minute_of_day(minute: u16) -> String {
    let minute = minute % 1440;
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm,
/// valid for every u64 day count a Unix millisecond value can produce.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_704_067_200_000), "2024-01-01 00:00:00 UTC");
        assert_eq!(
            format_utc(1_709_164_800_000 + 3_723_000),
            "2024-02-29 01:02:03 UTC"
        );
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(15 * MINUTE_MS), "15 min");
        assert_eq!(format_duration(6 * HOUR_MS), "6 h");
        assert_eq!(format_duration(90 * MINUTE_MS), "1 h 30 min");
        assert_eq!(format_duration(90 * SECOND_MS), "90 s");
        assert_eq!(format_duration(250), "250 ms");
    }
}
