//! Property tests of the id newtypes and validated values: parsing never
//! panics on any string, what parses prints back to the one canonical spelling and parses to the
//! same value, and the near-misses an attacker or a sloppy client sends are refused.

use std::str::FromStr;

use proptest::prelude::*;
use uuid::Uuid;

use crate::ids::{
    EventId, EventName, InvalidValue, JobId, SeatCount, SeatId, UserId, MAX_NAME_CHARS, MAX_SEATS,
    MIN_SEATS,
};

/// Any string, with a bias towards the shapes of real ids so that the interesting branches of
/// the parsers are reached (arbitrary Unicode almost never looks like `<uuid>:<n>`).
fn id_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F-]{30,40}",
        "[0-9a-fA-F-]{36}:[0-9+-]{0,8}",
        "[0-9a-fA-F-]{36}:j[0-9+-]{0,22}",
        (uuid_text(), "[:j0-9 +-]{0,24}").prop_map(|(u, tail)| format!("{u}{tail}")),
        (any::<String>(), uuid_text(), any::<String>()).prop_map(|(a, u, b)| format!("{a}{u}{b}")),
    ]
}

/// A UUID in its hyphenated form, in random letter case.
fn uuid_text() -> impl Strategy<Value = String> {
    (any::<u128>(), any::<bool>()).prop_map(|(bits, upper)| {
        let text = Uuid::from_u128(bits).hyphenated().to_string();
        if upper {
            text.to_uppercase()
        } else {
            text
        }
    })
}

/// Parses, prints, parses again: the printed form is canonical (lowercase) and means the same.
fn round_trips<T>(raw: &str) -> Result<(), TestCaseError>
where
    T: FromStr<Err = InvalidValue> + std::fmt::Display + PartialEq + std::fmt::Debug,
{
    match raw.parse::<T>() {
        Ok(value) => {
            let printed = value.to_string();
            prop_assert_eq!(&printed, &raw.to_ascii_lowercase(), "one spelling per id");
            prop_assert_eq!(printed.parse::<T>().ok(), Some(value));
        }
        Err(e) => {
            // The message is for a person and stays short whatever was sent.
            prop_assert!(e.to_string().chars().count() < 200, "long message: {}", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_string_parses_or_is_refused_and_what_parses_is_canonical(raw in id_like()) {
        round_trips::<EventId>(&raw)?;
        round_trips::<UserId>(&raw)?;
        round_trips::<SeatId>(&raw)?;
        round_trips::<JobId>(&raw)?;
    }

    #[test]
    fn ids_parse_from_json_strings_only(raw in id_like(), number in any::<i64>()) {
        let as_json = serde_json::Value::String(raw.clone());
        let seat: Result<SeatId, _> = serde_json::from_value(as_json);
        prop_assert_eq!(seat.ok(), raw.parse::<SeatId>().ok());
        let user: Result<UserId, _> = serde_json::from_value(number.into());
        prop_assert!(user.is_err(), "a number is not a user id");
    }

    #[test]
    fn every_real_seat_id_round_trips(event in uuid_text(), number in 1..=MAX_SEATS) {
        let raw = format!("{event}:{number}");
        let seat: SeatId = raw.parse().map_err(|e| TestCaseError::fail(format!("{raw}: {e}")))?;
        prop_assert_eq!(seat.number(), number);
        prop_assert_eq!(seat.event().to_string(), event.to_ascii_lowercase());
        prop_assert_eq!(seat.to_string(), raw.to_ascii_lowercase());
        let json = serde_json::to_string(&seat).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(serde_json::from_str::<SeatId>(&json).ok(), Some(seat));
    }

    #[test]
    fn every_real_job_id_round_trips(event in uuid_text(), seq in 1..=u64::MAX) {
        let raw = format!("{event}:j{seq}");
        let job: JobId = raw.parse().map_err(|e| TestCaseError::fail(format!("{raw}: {e}")))?;
        prop_assert_eq!(job.seq(), seq);
        prop_assert_eq!(job.to_string(), raw.to_ascii_lowercase());
    }

    #[test]
    fn seat_numbers_outside_the_range_or_not_canonical_are_refused(
        event in uuid_text(),
        number in prop_oneof![Just(0u64), (u64::from(MAX_SEATS) + 1)..=u64::MAX],
        zeros in 1usize..4,
        sign in prop_oneof![Just("+"), Just("-"), Just(" "), Just("\u{661}")],
        good in 1..=MAX_SEATS,
    ) {
        for bad in [
            format!("{event}:{number}"),
            format!("{event}:{}{good}", "0".repeat(zeros)),
            format!("{event}:{sign}{good}"),
            format!("{event}:{good} "),
            format!(" {event}:{good}"),
            format!("{{{event}}}:{good}"),
            format!("{}:{good}", event.replace('-', "")),
            format!("{event}:{good}:{good}"),
        ] {
            prop_assert!(bad.parse::<SeatId>().is_err(), "`{}` must be refused", bad);
        }
    }

    #[test]
    fn job_ids_refuse_seq_zero_signs_and_overflow(
        event in uuid_text(),
        seq in 1..=u64::MAX,
        sign in prop_oneof![Just("+"), Just("-"), Just("0"), Just(" ")],
    ) {
        for bad in [
            format!("{event}:j0"),
            format!("{event}:j{sign}{seq}"),
            format!("{event}:j{seq}0000000000000000000000"),
            format!("{event}:{seq}"),
            format!("{event}:J{seq}"),
        ] {
            prop_assert!(bad.parse::<JobId>().is_err(), "`{}` must be refused", bad);
        }
    }

    #[test]
    fn seat_counts_are_exactly_the_documented_range(n in any::<u64>()) {
        let count = SeatCount::try_from(n);
        let in_range = (u64::from(MIN_SEATS)..=u64::from(MAX_SEATS)).contains(&n);
        prop_assert_eq!(count.is_ok(), in_range);
        if let Ok(count) = count {
            prop_assert_eq!(u64::from(count.get()), n);
        }
    }

    #[test]
    fn event_names_follow_their_three_rules(name in prop_oneof![
        any::<String>(),
        "[ \t\u{a0}\u{3000}]{0,5}[a-zé]{0,5}[ \u{85}\u{7f}\n]{0,2}",
        "[a-z]{195,205}",
    ]) {
        let accepted = EventName::try_from(name.clone());
        let expected = !name.trim().is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && !name.chars().any(char::is_control);
        prop_assert_eq!(accepted.is_ok(), expected, "{:?}", name);
        if let Ok(accepted) = accepted {
            prop_assert_eq!(accepted.as_str(), name.as_str());
        }
    }
}
