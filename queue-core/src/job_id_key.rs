//! The deployment's job-id key ([`keys::JOB_ID_KEY`]): the secret the API's job ids are
//! authenticated with when JOB_ID_SECRET is not set. It lives in Redis so that every API process
//! on that Redis verifies the ids the others issued; nothing else (no worker, no script) reads it.

use fred::interfaces::KeysInterface;
use fred::types::SetOptions;

use crate::error::{Error, Result};
use crate::keys;
use crate::store::Store;

/// Random bytes in a key the service makes itself: 256 bits, twice the bits of a tag.
const KEY_BYTES: usize = 32;

/// A new key to offer [`Store::job_id_key`]: 32 random bytes from the operating system, as 64
/// lowercase hex digits (what is stored in Redis, readable with `redis-cli`).
pub fn fresh_job_id_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Store {
    /// The deployment's job-id key. When Redis has none yet, `fresh` (from
    /// [`fresh_job_id_key`]) becomes it: written with SET NX, so that of several API processes
    /// starting together the first write wins, and each reads back the one that won.
    ///
    /// The key's value never appears in an error.
    pub async fn job_id_key(&self, fresh: &str) -> Result<String> {
        let client = self.client_for(keys::JOB_ID_KEY)?;
        client
            .set::<(), _, _>(keys::JOB_ID_KEY, fresh, None, Some(SetOptions::NX), false)
            .await?;
        let key: Option<String> = client.get(keys::JOB_ID_KEY).await?;
        key.filter(|key| is_made_key(key)).ok_or_else(|| {
            Error::Corrupt(format!(
                "{} is not {} lowercase hex digits",
                keys::JOB_ID_KEY,
                2 * KEY_BYTES
            ))
        })
    }
}

/// Whether `key` has the shape of a key [`fresh_job_id_key`] makes.
fn is_made_key(key: &str) -> bool {
    key.len() == 2 * KEY_BYTES && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_are_64_hex_digits_and_differ() {
        let (a, b) = (
            fresh_job_id_key().expect("the OS gives random bytes"),
            fresh_job_id_key().expect("the OS gives random bytes"),
        );
        assert!(
            is_made_key(&a) && is_made_key(&b),
            "{} and {} hex digits",
            a.len(),
            b.len()
        );
        assert_ne!(a, b, "two keys made one after the other differ");
        assert!(
            !is_made_key(&a.to_uppercase()),
            "only what fresh_job_id_key writes"
        );
        assert!(!is_made_key(&a[1..]), "only what fresh_job_id_key writes");
    }
}
