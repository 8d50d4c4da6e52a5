//! Who the client says it is (docs/CONTRACT.md §2, "who is asking"). In none mode a request for
//! a user names the user in its body, and a read names its asker with `X-User-Id`. In jwt mode
//! every request for a user carries a bearer token whose `sub` is that user's id, minted here
//! with the service's HS256 secret (one token per simulated user, made once and reused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

/// How the client identifies its users.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// AUTH_MODE=none: the body's `UUID`, and `X-User-Id` on reads.
    #[default]
    None,
    /// AUTH_MODE=jwt: bearer tokens signed with the service's secret.
    Jwt(Arc<Minter>),
}

/// Mints and keeps one HS256 token per user.
pub struct Minter {
    key: jsonwebtoken::EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
    ttl: Duration,
    tokens: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
}

/// The subject of the admin token the client creates events with.
pub const ADMIN_SUBJECT: &str = "loadgen-admin";

impl Minter {
    /// A minter for a service with AUTH_JWT_SECRET `secret`, and `iss` / `aud` when it checks
    /// them. Tokens last `ttl`.
    pub fn new(
        secret: &str,
        issuer: Option<String>,
        audience: Option<String>,
        ttl: Duration,
    ) -> Result<Self> {
        Ok(Self {
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())
                .context("the JWT secret")?,
            issuer,
            audience,
            ttl,
            tokens: Mutex::default(),
        })
    }

    /// The token of `user` (a user id): minted on first use, then reused.
    pub fn token(&self, user: &str) -> Result<String> {
        if let Some(token) = self.tokens.lock().ok().and_then(|t| t.get(user).cloned()) {
            return Ok(token);
        }
        let token = self.mint(user, false)?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(user.to_owned(), token.clone());
        }
        Ok(token)
    }

    /// A fresh token for `sub`, an admin's when `admin`.
    pub fn mint(&self, sub: &str, admin: bool) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims {
            sub,
            iat: now,
            exp: now + self.ttl.as_secs().max(1),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
            role: admin.then_some("admin"),
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.key)
            .context("signing a token")
    }
}

impl Auth {
    /// jwt mode with the service's secret, tokens valid for an hour.
    pub fn jwt(secret: &str, issuer: Option<String>, audience: Option<String>) -> Result<Self> {
        Ok(Self::Jwt(Arc::new(Minter::new(
            secret,
            issuer,
            audience,
            Duration::from_secs(3600),
        )?)))
    }

    /// The headers of a request made for (or read as) `user`.
    pub fn headers_for(&self, user: &str) -> Result<Option<(&'static str, String)>> {
        match self {
            Self::None => Ok(None),
            Self::Jwt(minter) => Ok(Some((
                "Authorization",
                format!("Bearer {}", minter.token(user)?),
            ))),
        }
    }

    /// The header a read names its asker with.
    pub fn viewer_header(&self, user: &str) -> Result<(&'static str, String)> {
        match self {
            Self::None => Ok(("X-User-Id", user.to_owned())),
            Self::Jwt(minter) => Ok(("Authorization", format!("Bearer {}", minter.token(user)?))),
        }
    }

    /// The header of an admin request (event creation in jwt mode).
    pub fn admin_header(&self) -> Result<Option<(&'static str, String)>> {
        match self {
            Self::None => Ok(None),
            Self::Jwt(minter) => Ok(Some((
                "Authorization",
                format!("Bearer {}", minter.mint(ADMIN_SUBJECT, true)?),
            ))),
        }
    }
}

/// A report names the mode, never the secret.
impl Serialize for Auth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::None => "none",
            Self::Jwt(_) => "jwt",
        })
    }
}
