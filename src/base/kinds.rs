//! The closed sets of words stored as text in the database and shown in
//! the API: one enum each, so Rust and SQL cannot drift apart.

use std::fmt;
use std::str::FromStr;

/// Declares an enum with its stored spelling, `as_str`, `Display`,
/// `FromStr` and serde in that spelling.
macro_rules! stored_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        /// Compares with the stored word (handy in tests and filters).
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownWord { what: stringify!($name), word: s.to_string() }),
                }
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A stored word that is not one of its enum's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown {what} \"{word}\"")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
}

stored_enum!(
    /// Whether a violation is still going on.
    ViolationStatus { Open = "open", Cleared = "cleared" }
);

stored_enum!(
    /// Which moment of a violation an evidence frame shows.
    EvidenceKind { First = "first", Confirm = "confirm", Clear = "clear" }
);

stored_enum!(
    /// The bytes as the camera sent them, a copy with the zone drawn on, or
    /// an enlarged close-up of the zone.
    EvidenceVariant { Original = "original", Annotated = "annotated", Closeup = "closeup" }
);

stored_enum!(
    /// Why a violation ended.
    EndReason {
        /// The lane was seen clear.
        Cleared = "cleared",
        /// The zone was redrawn or moved to another camera.
        ZoneChanged = "zone_changed",
        /// The zone was removed from the configuration.
        ZoneRemoved = "zone_removed",
        /// The zone's enforcement window closed.
        ScheduleEnded = "schedule_ended",
    }
);

stored_enum!(
    /// What a violation alert announces.
    ViolationEventKind { New = "new", Update = "update", End = "end" }
);

stored_enum!(
    /// An officer's latest decision on a violation.
    ReviewStatus { Pending = "pending", Confirmed = "confirmed", Dismissed = "dismissed", Cited = "cited" }
);

stored_enum!(
    /// Where an alert row of the outbox stands.
    OutboxStatus { Pending = "pending", Sent = "sent", Suppressed = "suppressed", Expired = "expired" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips() {
        for k in EvidenceKind::ALL {
            assert_eq!(k.as_str().parse::<EvidenceKind>().unwrap(), *k);
        }
        for r in EndReason::ALL {
            assert_eq!(r.as_str().parse::<EndReason>().unwrap(), *r);
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(serde_json::from_str::<EndReason>(&json).unwrap(), *r);
        }
        assert_eq!(
            "gone".parse::<ViolationStatus>().unwrap_err().to_string(),
            "unknown ViolationStatus \"gone\""
        );
    }
}
