//! RFC 3339 UTC timestamps as SLSA `metadata.startedOn` / `finishedOn` require them.
//!
//! Only the `YYYY-MM-DDTHH:MM:SS[.fraction]Z` form is produced or accepted: SLSA asks for UTC,
//! and protobuf-based consumers (in-toto-attestation, Sigstore clients) parse these fields as
//! `google.protobuf.Timestamp`, which rejects leap seconds and more than nine fraction digits.

use std::time::{SystemTime, UNIX_EPOCH};

/// Why a timestamp could not be produced or was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not of the form `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with valid calendar values.
    #[error("{value:?} is not an RFC 3339 UTC timestamp like \"2024-05-01T12:00:00Z\"")]
    Invalid {
        /// The offending input.
        value: String,
    },
    /// The clock reads a time RFC 3339 cannot express (before 1970 here, or after year 9999).
    #[error("system time is outside 1970..=9999 and cannot be written as RFC 3339")]
    OutOfRange,
}

/// Formats `time` as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
pub fn rfc3339_utc(time: SystemTime) -> Result<String, TimestampError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TimestampError::OutOfRange)?
        .as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    if year > 9999 {
        return Err(TimestampError::OutOfRange);
    }
    let rem = secs % 86_400;
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Checks that `value` is an RFC 3339 UTC timestamp (`Z` suffix, optional 1-9 fraction digits).
pub fn validate_rfc3339_utc(value: &str) -> Result<(), TimestampError> {
    if is_rfc3339_utc(value) {
        Ok(())
    } else {
        Err(TimestampError::Invalid {
            value: value.to_owned(),
        })
    }
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return false;
    }
    if b[16] != b':' || b.last() != Some(&b'Z') {
        return false;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = &b[range];
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    let fraction = &b[19..b.len() - 1];
    let fraction_ok = match fraction.split_first() {
        None => true,
        Some((b'.', digits)) => {
            (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        }
        Some(_) => false,
    };
    fraction_ok
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && min < 60
        && sec < 60
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH).unwrap(), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day 2000
        assert_eq!(rfc3339_utc(t).unwrap(), "2000-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339_utc(t).unwrap(), "2023-11-14T22:13:20Z");
        assert!(validate_rfc3339_utc(&rfc3339_utc(SystemTime::now()).unwrap()).is_ok());
    }

    #[test]
    fn validates() {
        for ok in [
            "2024-05-01T12:00:00Z",
            "2024-02-29T23:59:59.123456789Z",
            "2024-12-31T00:00:00.5Z",
        ] {
            assert!(validate_rfc3339_utc(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+00:00",
            "2024-05-01 12:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567890Z",
            "2024-05-01t12:00:00z",
            "",
        ] {
            assert!(validate_rfc3339_utc(bad).is_err(), "{bad}");
        }
    }
}
