//! Timestamps as the API shows them: RFC 3339 in UTC to the second, like `2023-10-27T10:00:00Z`.

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats Unix milliseconds as RFC 3339 UTC, to the second.
pub fn rfc3339(unix_ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_look_like_the_seed() {
        assert_eq!(super::rfc3339(1_698_400_800_123), "2023-10-27T10:00:00Z");
    }
}
