//! The closed sets of words the API spells in its answers: a seat's status, a job's status and a
//! job's type. Each is one enum with one spelling per variant ([`SeatStatus::as_str`]...), and
//! every reading of such a word, serde's included, goes through its `parse`.
//!
//! The service has its own enums for these words (loadgen is a plain HTTP client and does not
//! depend on it); the e2e test `spellings` fails when the two lists differ.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Declares an enum of words: `ALL` (made from the same list as the variants, so it has every
/// one), `as_str`, `parse` (the spelling exactly, nothing else), `Display`, and serde both ways
/// through the spelling.
macro_rules! spelled {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every variant, in the order of the declaration.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            /// How the API spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The variant spelled exactly `text`.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(Spelling(Self::parse, &[$($text),+]))
            }
        }
    };
}

/// Reads a string as one of `.1` through the parser `.0`, without copying it.
struct Spelling<T>(fn(&str) -> Option<T>, &'static [&'static str]);

impl<T> de::Visitor<'_> for Spelling<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {:?}", self.1)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        (self.0)(text).ok_or_else(|| E::unknown_variant(text, self.1))
    }
}

spelled! {
    /// A seat's status (`status` of a seat, `currentStatus` of a refusal).
    pub enum SeatStatus {
        Available = "Available",
        OnHold = "On hold",
        Reserved = "Reserved",
    }
}

spelled! {
    /// Where a job stands (`status` of `GET /seats/job/{id}/status`).
    pub enum JobStatus {
        /// On the queue, with `position` jobs ahead (also while it waits for a retry).
        Waiting = "waiting",
        /// Next in line, and a worker is on it.
        Active = "active",
        /// Applied: `result` says how.
        Completed = "completed",
        /// Could not be applied at all: `error` says why.
        Failed = "failed",
    }
}

spelled! {
    /// What a job does (`type` of a job's status).
    pub enum JobKind {
        Hold = "HOLD_SEAT",
        Reserve = "RESERVE_SEAT",
    }
}

impl JobStatus {
    /// Completed or failed: nothing more will happen to the job.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl JobKind {
    /// The endpoint that takes this kind of job.
    pub fn path(self) -> &'static str {
        match self {
            Self::Hold => "/seats/hold",
            Self::Reserve => "/seats/reserve",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each spelling parses to its variant, in Rust and through serde, and nothing near it does.
    fn round_trips<T>(all: &[T], as_str: fn(&T) -> &'static str, parse: fn(&str) -> Option<T>)
    where
        T: PartialEq + fmt::Debug + Serialize + for<'de> Deserialize<'de>,
    {
        for variant in all {
            let text = as_str(variant);
            assert_eq!(parse(text).as_ref(), Some(variant), "{text:?}");
            let json = serde_json::to_string(variant).expect("serialises");
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(&serde_json::from_str::<T>(&json).expect("parses"), variant);
            for near in [
                text.to_lowercase(),
                text.to_uppercase(),
                format!(" {text}"),
                text.replace(' ', ""),
            ] {
                if near != text {
                    assert_eq!(parse(&near), None, "{near:?} is not {text:?}");
                    let json = format!("{near:?}");
                    assert!(serde_json::from_str::<T>(&json).is_err(), "{json}");
                }
            }
        }
    }

    #[test]
    fn every_spelling_parses_to_its_variant_and_nothing_else_does() {
        round_trips(&SeatStatus::ALL, |s| s.as_str(), SeatStatus::parse);
        round_trips(&JobStatus::ALL, |s| s.as_str(), JobStatus::parse);
        round_trips(&JobKind::ALL, |k| k.as_str(), JobKind::parse);
        assert_eq!(SeatStatus::parse(""), None);
    }
}
