//! Admitting a request under its route class's rate limit (G10): one call of `rate_limit.lua`
//! over the buckets of every client the request counts against.

use crate::error::{Error, Result};
use crate::keys::{self, RateLimitClient};
use crate::scripts::{self, arg};
use crate::settings::{Rate, RouteClass};
use crate::store::Store;

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted: `remaining` more would be admitted at once, and every bucket is full again in
    /// `reset_ms`.
    Admitted { remaining: u32, reset_ms: u64 },
    /// Refused, with nothing written: one would be admitted in `retry_ms`, and every bucket is
    /// full again in `reset_ms`.
    Refused { retry_ms: u64, reset_ms: u64 },
}

impl Store {
    /// Charges one request of `class` to each of `clients` if every one of their buckets admits
    /// it; refuses it, writing nothing, if any does not.
    pub async fn admit(
        &self,
        class: RouteClass,
        rate: Rate,
        clients: &[RateLimitClient],
    ) -> Result<Admission> {
        let keys: Vec<String> = clients
            .iter()
            .map(|client| keys::rate_limit(client, class.name()))
            .collect();
        if self.clustered() && keys.len() > 1 {
            return self.admit_per_key(&keys, rate).await;
        }
        self.limit(&keys, rate).await
    }

    /// On a cluster, where each client's key has a slot of its own: one call per key, the last
    /// (in jwt mode the user's: the limit one user spread over many addresses meets) first, and
    /// each further one only once the one before admitted. A refusal by the first key writes
    /// nothing; a refusal by a later one leaves the keys before it charged (a user refused by
    /// its address's limit has spent a request of its own): the one case, on a cluster, where a
    /// refused request writes.
    async fn admit_per_key(&self, keys: &[String], rate: Rate) -> Result<Admission> {
        let mut answers = Vec::with_capacity(keys.len());
        for key in keys.iter().rev() {
            let answer = self.limit(std::slice::from_ref(key), rate).await?;
            let refused = matches!(answer, Admission::Refused { .. });
            answers.push(answer);
            if refused {
                break;
            }
        }
        merge(&answers).ok_or_else(|| Error::Corrupt("a rate limit over no key".into()))
    }

    /// One `rate_limit.lua` call over `keys` (all of one slot on a cluster).
    async fn limit(&self, keys: &[String], rate: Rate) -> Result<Admission> {
        let args = vec![arg(rate.every_ms), arg(rate.burst)];
        let mut reply = self.script(&scripts::RATE_LIMIT, keys, args).await?;
        let admitted = reply.flag()?;
        let first = reply.unsigned()?;
        let reset_ms = reply.unsigned()?;
        Ok(if admitted {
            Admission::Admitted {
                remaining: u32::try_from(first)
                    .map_err(|_| Error::Corrupt(format!("a remaining count of {first}")))?,
                reset_ms,
            }
        } else {
            Admission::Refused {
                retry_ms: first,
                reset_ms,
            }
        })
    }
}

/// The answer over several keys from each key's: refused when any refuses (retry when all
/// would admit), else admitted with the fewest remaining; reset when every key is full again.
fn merge(answers: &[Admission]) -> Option<Admission> {
    let reset_ms = answers.iter().map(|a| match a {
        Admission::Admitted { reset_ms, .. } | Admission::Refused { reset_ms, .. } => *reset_ms,
    });
    let reset_ms = reset_ms.max()?;
    let retry = answers
        .iter()
        .filter_map(|a| match a {
            Admission::Refused { retry_ms, .. } => Some(*retry_ms),
            Admission::Admitted { .. } => None,
        })
        .max();
    Some(match retry {
        Some(retry_ms) => Admission::Refused { retry_ms, reset_ms },
        None => Admission::Admitted {
            remaining: answers
                .iter()
                .filter_map(|a| match a {
                    Admission::Admitted { remaining, .. } => Some(*remaining),
                    Admission::Refused { .. } => None,
                })
                .min()
                .unwrap_or(0),
            reset_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::{merge, Admission};

    #[test]
    fn several_keys_answer_as_the_one_script_over_them_does() {
        let admitted = |remaining, reset_ms| Admission::Admitted {
            remaining,
            reset_ms,
        };
        let refused = |retry_ms, reset_ms| Admission::Refused { retry_ms, reset_ms };
        assert_eq!(merge(&[]), None);
        assert_eq!(
            merge(&[admitted(5, 100), admitted(2, 300)]),
            Some(admitted(2, 300)),
            "the emptiest bucket, the latest reset"
        );
        assert_eq!(
            merge(&[admitted(5, 100), refused(40, 900), refused(70, 200)]),
            Some(refused(70, 900)),
            "refused while any refuses, until all would admit"
        );
    }
}
