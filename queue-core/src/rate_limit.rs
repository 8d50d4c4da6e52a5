//! Admitting a request under its route class's rate limit (G10): one call of `rate_limit.lua`
//! over the buckets of every client the request counts against.

use crate::error::{Error, Result};
use crate::keys::{self, RateLimitClient};
use crate::scripts::{self, arg, run};
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
        let keys = clients
            .iter()
            .map(|client| keys::rate_limit(client, class.name()));
        let mut reply = run(
            &scripts::RATE_LIMIT,
            &self.client()?,
            keys,
            vec![arg(rate.every_ms), arg(rate.burst)],
        )
        .await?;
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
