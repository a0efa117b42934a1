//! Event time: capture timestamps as epoch milliseconds, formatted RFC 3339.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch, UTC. All logic runs on these.
pub type Millis = i64;

pub fn parse_rfc3339(s: &str) -> Result<Millis, chrono::ParseError> {
    Ok(DateTime::parse_from_rfc3339(s)?.timestamp_millis())
}

pub fn format_rfc3339(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("invalid-time({ms})"),
    }
}

/// Wall clock, only at the edges (arrival time of a message without a
/// capture time, future-skew checks).
pub fn wall_clock_ms() -> Millis {
    Utc::now().timestamp_millis()
}

pub fn secs_to_ms(s: f64) -> Millis {
    (s * 1000.0).round() as Millis
}

/// serde helpers for RFC 3339 strings stored as `Millis`.
pub mod rfc3339 {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not RFC 3339: {e}")))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&format_rfc3339(*ms)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
            let s = Option::<String>::deserialize(d)?;
            s.map(|s| {
                parse_rfc3339(&s)
                    .map_err(|e| serde::de::Error::custom(format!("`{s}` is not RFC 3339: {e}")))
            })
            .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let ms = parse_rfc3339("2015-07-03T06:05:00Z").unwrap();
        assert_eq!(ms, 1_435_903_500_000);
        assert_eq!(format_rfc3339(ms), "2015-07-03T06:05:00Z");
        assert_eq!(parse_rfc3339("2015-07-03T08:05:00+02:00").unwrap(), ms);
    }
}
