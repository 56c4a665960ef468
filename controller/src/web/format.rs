//! How values read on the pages: times in UTC, sizes in bytes, durations, states as CSS
//! classes.

use crate::clock::from_unix_ms;
use crate::state::JobState;

/// `2026-12-07 06:38:20Z` for ms since the Unix epoch; `-` for none (0 or negative).
pub(crate) fn time(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms > 0 => humantime::format_rfc3339_seconds(from_unix_ms(ms))
            .to_string()
            .replacen('T', " ", 1),
        _ => "-".to_owned(),
    }
}

/// A size in bytes with a binary unit: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1.2 s`, `340 ms`.
pub(crate) fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The CSS class of a state: `state state-running`.
pub(crate) fn state_class(state: JobState) -> String {
    format!(
        "state state-{}",
        state.as_str().to_ascii_lowercase().replace('_', "-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well() {
        assert_eq!(time(Some(1_796_625_500_000)), "2026-12-07 06:38:20Z");
        assert_eq!(time(None), "-");
        assert_eq!(time(Some(0)), "-");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(duration_ms(340), "340 ms");
        assert_eq!(duration_ms(1250), "1.2 s");
        assert_eq!(state_class(JobState::TimedOut), "state state-timed-out");
    }
}
