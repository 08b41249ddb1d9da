//! Log lines in uWSGI's shapes, on stderr. `vlog!` prefixes the date as uWSGI's
//! `uwsgi_log_verbose` does (`Sun Nov 22 01:47:45 2026 - `); `log!` prints the bare line.
//! Dates are UTC (the Emperor does not read the timezone database).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes one line to stderr in a single write (lines from vassals interleave cleanly).
pub fn line(s: &str) {
    let mut buf = String::with_capacity(s.len() + 1);
    buf.push_str(s);
    if !buf.ends_with('\n') {
        buf.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
}

/// A line with uWSGI's verbose date prefix.
pub fn verbose(s: &str) {
    line(&format!("{} - {s}", ctime(now_secs())));
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `ctime(3)` without the newline, in UTC: `Sun Nov 22 01:47:45 2026`.
pub fn ctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        y
    )
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `log!("...")`: a bare line.
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(&format!($($t)*)) };
}

/// `vlog!("...")`: a line with the date prefix.
#[macro_export]
macro_rules! vlog {
    ($($t:tt)*) => { $crate::log::verbose(&format!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_format() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_795_312_065), "Sun Nov 22 01:47:45 2026");
    }
}
