//! The values inside the API's ids and times: seat and job numbers, and RFC 3339 times as
//! milliseconds since the epoch.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};

/// The number of a seat id `<event>:<n>`.
pub fn seat_number(id: &str) -> Result<u32> {
    id.rsplit_once(':')
        .and_then(|(_, n)| n.parse().ok())
        .with_context(|| format!("a seat id ending in :<number>, not {id:?}"))
}

/// The sequence number of a job id `<event>:j<seq>.<tag>`, as the API hands them out (the tag,
/// which proves the API issued the id, is not looked at).
pub fn job_seq(id: &str) -> Result<u64> {
    id.split_once('.')
        .filter(|(_, tag)| !tag.is_empty())
        .and_then(|(job, _)| job.rsplit_once(":j"))
        .and_then(|(_, n)| n.parse().ok())
        .with_context(|| format!("a job id ending in :j<number>.<tag>, not {id:?}"))
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn rfc3339_ms(s: &str) -> Result<i64> {
    let at = humantime::parse_rfc3339(s).with_context(|| format!("an RFC 3339 time: {s:?}"))?;
    let ms = at
        .duration_since(UNIX_EPOCH)
        .context("a time after the epoch")?
        .as_millis();
    Ok(i64::try_from(ms)?)
}

/// Milliseconds since the epoch now, by this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// serde for an optional RFC 3339 time held as milliseconds (`expiresAt`), written as the API
/// writes it (UTC, milliseconds).
pub(super) mod rfc3339_opt {
    use serde::{de, Deserialize, Deserializer, Serializer};

    use super::{rfc3339_ms, Duration, UNIX_EPOCH};

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
        Option::<String>::deserialize(de)?
            .map(|text| rfc3339_ms(&text).map_err(|e| de::Error::custom(format!("{e:#}"))))
            .transpose()
    }

    pub fn serialize<S: Serializer>(ms: &Option<i64>, ser: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => {
                let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(*ms).unwrap_or_default());
                ser.collect_str(&humantime::format_rfc3339_millis(at))
            }
            None => ser.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_give_their_numbers() {
        assert_eq!(seat_number("abc:17").expect("a number"), 17);
        assert_eq!(job_seq("abc:j42.0f1e").expect("a number"), 42);
        for bad in ["abc:42.0f1e", "abc:j42", "abc:j42.", "abc:j.0f1e"] {
            assert!(job_seq(bad).is_err(), "{bad}");
        }
    }
}
