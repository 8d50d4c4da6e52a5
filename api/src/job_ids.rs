//! Job ids no one can guess (docs/CONTRACT.md §2). Inside the service a job is a
//! [`queue_core::JobId`], its event and its sequence number, which anyone could count through.
//! The id the API hands out adds a tag: `<event id>:j<seq>.<tag>`, where the tag is the first
//! 128 bits of HMAC-SHA256(key, "<event id>:j<seq>") as 32 lowercase hex digits. Only a holder
//! of the key can make a tag, so the ids of other jobs cannot be derived from one's own; the
//! status route answers a wrong or missing tag exactly as it answers an unknown job.
//!
//! The key is JOB_ID_SECRET, or else the deployment's random key in Redis
//! (`queue_core::keys::JOB_ID_KEY`), read once per process. Either way it is shown nowhere: not
//! in `Debug`, not in a log line, not in an answer.

use std::fmt::{self, Write as _};

use hmac::{Hmac, KeyInit, Mac};
use queue_core::settings::ApiSettings;
use queue_core::{JobId, Store};
use sha2::Sha256;
use tokio::sync::OnceCell;

/// Bytes of a tag: 128 bits, past guessing.
const TAG_BYTES: usize = 16;

/// Mints and verifies the public ids of jobs under one key.
#[derive(Clone)]
pub struct JobIds {
    /// HMAC-SHA256 keyed once: each tag then costs two SHA-256 blocks.
    mac: Hmac<Sha256>,
}

impl fmt::Debug for JobIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobIds { key: <redacted> }")
    }
}

/// A job id as a client sent it, well-formed: `<event id>:j<seq>`, then `.<tag>` or nothing.
#[derive(Debug, Clone, Copy)]
pub struct ClaimedJobId<'a> {
    job: JobId,
    /// Whatever followed the first `.`; `None` without one (the old shape of an id).
    tag: Option<&'a str>,
}

impl<'a> ClaimedJobId<'a> {
    /// `None` when `raw` is not of the form `<event id>:j<seq>[.<anything>]` (seq ≥ 1, written
    /// without leading zeros): a malformed id. What follows the `.` is only judged by
    /// [`JobIds::verify`], so that a tag of the wrong length or alphabet is as unknown as a
    /// wrong one.
    pub fn parse(raw: &'a str) -> Option<Self> {
        let (job, tag) = match raw.split_once('.') {
            Some((job, tag)) => (job, Some(tag)),
            None => (raw, None),
        };
        Some(Self {
            job: job.parse().ok()?,
            tag,
        })
    }
}

impl JobIds {
    /// `None` for a key HMAC refuses (it takes keys of any length, so never).
    pub fn new(key: &[u8]) -> Option<Self> {
        Some(Self {
            mac: Hmac::new_from_slice(key).ok()?,
        })
    }

    /// The id the API hands out for `job`: `<event id>:j<seq>.<tag>`.
    pub fn public(&self, job: JobId) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // Built by hand: one `format!` per byte of the tag cost more than the MAC itself, and
        // the internal id is written once, for the MAC and the answer both.
        let mut id = internal_id(job, 1 + 2 * TAG_BYTES);
        let full = self.mac_over(&id).finalize().into_bytes();
        id.push('.');
        for byte in &full[..TAG_BYTES] {
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        id
    }

    /// The job `claimed` names, if its tag is the one [`JobIds::public`] gave it. The tag is
    /// compared in constant time (a timing difference would tell how much of a guess was right).
    pub fn verify(&self, claimed: &ClaimedJobId<'_>) -> Option<JobId> {
        let tag: [u8; TAG_BYTES] = decode_tag(claimed.tag?)?;
        // `verify_truncated_left` accepts any length up to the whole MAC: `tag` is exactly
        // TAG_BYTES long, or a one-byte guess would pass one time in 256.
        self.mac_of(claimed.job).verify_truncated_left(&tag).ok()?;
        Some(claimed.job)
    }

    /// The MAC of `job`'s internal id, `<event id>:j<seq>`, ready to verify.
    fn mac_of(&self, job: JobId) -> Hmac<Sha256> {
        self.mac_over(&internal_id(job, 0))
    }

    /// The MAC of an internal id (the one place that says what a tag authenticates: the whole
    /// id, event and sequence number).
    fn mac_over(&self, internal: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(internal.as_bytes());
        mac
    }
}

/// `job`'s internal id, `<event id>:j<seq>` (what its `Display` writes), with room for `extra`
/// bytes more: written without the formatting machinery, as [`JobIds::public`] runs for every
/// accepted job.
fn internal_id(job: JobId, extra: usize) -> String {
    /// Digits of the largest sequence number.
    const SEQ_DIGITS: usize = 20;
    let mut event = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let mut id = String::with_capacity(event.len() + 2 + SEQ_DIGITS + extra);
    id.push_str(job.event().encode(&mut event));
    id.push_str(":j");
    // Writing to a String cannot fail.
    let _ = write!(id, "{}", job.seq());
    id
}

/// The bytes of a tag written as exactly `2 × TAG_BYTES` hex digits (either case, as the UUID
/// before it may be); `None` for anything else.
fn decode_tag(hex: &str) -> Option<[u8; TAG_BYTES]> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * TAG_BYTES {
        return None;
    }
    let mut tag = [0u8; TAG_BYTES];
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        let digit = |d: u8| char::from(d).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
    }
    Some(tag)
}

/// This process's [`JobIds`]: from JOB_ID_SECRET at once, or from the deployment's key in Redis
/// the first time it is needed and Redis answers (the API starts while Redis is down, as it
/// always has, and answers 503 meanwhile).
pub struct JobIdKey {
    ids: OnceCell<JobIds>,
    /// The key this process offers Redis should it have none yet (unused with JOB_ID_SECRET).
    fresh: String,
}

impl fmt::Debug for JobIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobIdKey")
            .field("loaded", &self.ids.initialized())
            .finish_non_exhaustive()
    }
}

impl JobIdKey {
    /// The key of `settings.job_id_secret`, or a key to be read from Redis.
    pub fn new(settings: &ApiSettings) -> anyhow::Result<Self> {
        let secret = settings.job_id_secret.as_bytes();
        let (ids, fresh) = if secret.is_empty() {
            (OnceCell::new(), queue_core::job_id_key::fresh_job_id_key()?)
        } else {
            let ids = JobIds::new(secret).ok_or_else(|| anyhow::anyhow!("HMAC refuses the key"))?;
            (OnceCell::new_with(Some(ids)), String::new())
        };
        Ok(Self { ids, fresh })
    }

    /// The job ids of this deployment. Reads the key from Redis the first time (requests
    /// arriving meanwhile wait for that one read); an error leaves it to the next call.
    pub async fn get(&self, store: &Store) -> queue_core::Result<&JobIds> {
        self.ids
            .get_or_try_init(|| async {
                let key = store.job_id_key(&self.fresh).await?;
                JobIds::new(key.as_bytes()).ok_or_else(|| {
                    queue_core::Error::Corrupt("HMAC refuses the job-id key".to_owned())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4";
    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ids() -> JobIds {
        JobIds::new(KEY).expect("HMAC takes any key")
    }

    fn job(seq: u64) -> JobId {
        format!("{EVENT}:j{seq}").parse().expect("a job id")
    }

    fn verifies(raw: &str) -> bool {
        ClaimedJobId::parse(raw).is_some_and(|claimed| ids().verify(&claimed).is_some())
    }

    /// The tag is HMAC-SHA256 truncated to its first 128 bits: RFC 4231's test case 2, then
    /// answers computed with another implementation (Python's `hmac`).
    #[test]
    fn tags_are_known_answers() {
        let mut jefe = JobIds::new(b"Jefe").expect("HMAC takes any key").mac;
        jefe.update(b"what do ya want for nothing?");
        assert_eq!(
            jefe.finalize().into_bytes()[..TAG_BYTES],
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7
            ],
            "RFC 4231 test case 2, first 16 bytes: the hash and the key set-up are HMAC-SHA256's"
        );
        for (seq, tag) in [
            (1, "7de489ac299f636da7e566cc2579ec92"),
            (42, "202dcf7f2be7e4fb4d7cc2437b47c22f"),
            (43, "4448d93128f99701750674b51ffdb4da"),
        ] {
            assert_eq!(
                ids().public(job(seq)),
                format!("{EVENT}:j{seq}.{tag}"),
                "job {seq}"
            );
        }
        assert_eq!(
            ids().public(job(42)),
            crate::dto::EXAMPLE_JOB,
            "the OpenAPI example is a real id"
        );
    }

    #[test]
    fn the_internal_id_is_what_display_writes() {
        for seq in [1, 9, 10, 42, 1_000_000, u64::MAX] {
            let job = job(seq);
            assert_eq!(internal_id(job, 0), job.to_string(), "job {seq}");
        }
    }

    #[test]
    fn a_tag_verifies_for_its_own_job_only() {
        let id = ids().public(job(42));
        let tag = id.split_once('.').map(|(_, t)| t).expect("a tag");
        assert!(verifies(&id), "{id}");
        let shouted = format!("{}:j42.{}", EVENT.to_uppercase(), tag.to_uppercase());
        assert!(
            verifies(&shouted),
            "either case, as for the UUID: {shouted}"
        );
        for wrong in [
            format!("{EVENT}:j41.{tag}"),
            format!("{EVENT}:j43.{tag}"),
            format!("{EVENT}:j42"),
            format!("{EVENT}:j42."),
            format!("{EVENT}:j42.{}", &tag[..2]),
            format!("{EVENT}:j42.{}", &tag[..31]),
            format!("{EVENT}:j42.{tag}0"),
            format!("{EVENT}:j42.{tag}.{tag}"),
            format!("{EVENT}:j42.{}", "0".repeat(32)),
            format!("{EVENT}:j42.{}g", &tag[..31]),
            format!("{EVENT}:j42.+{}", &tag[..31]),
        ] {
            assert!(
                ClaimedJobId::parse(&wrong).is_some(),
                "`{wrong}` is well-formed"
            );
            assert!(!verifies(&wrong), "`{wrong}` must not verify");
        }
        let other = JobIds::new(b"another key, also 32 bytes long!").expect("a key");
        let claimed = ClaimedJobId::parse(&id).expect("well-formed");
        assert_eq!(other.verify(&claimed), None, "another key, another tag");
    }

    #[test]
    fn only_an_event_and_a_sequence_number_make_an_id_well_formed() {
        for bad in [
            "nope".to_owned(),
            format!("{EVENT}:j0.tag"),
            format!("{EVENT}:j007"),
            format!("{EVENT}:42.tag"),
            format!("{EVENT}.j1"),
            format!("{EVENT}:j.1"),
            ".".to_owned(),
        ] {
            assert!(ClaimedJobId::parse(&bad).is_none(), "`{bad}` is malformed");
        }
    }

    #[test]
    fn the_key_is_never_shown() {
        let shown = format!("{:?}", ids());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        let settings = queue_core::Settings::load_with(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"),
            |name| (name == "JOB_ID_SECRET").then(|| String::from_utf8_lossy(KEY).into_owned()),
        )
        .expect("valid settings");
        let key = JobIdKey::new(&settings.api).expect("a key");
        let shown = format!("{key:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
