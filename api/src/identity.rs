//! Who is asking (docs/CONTRACT.md §2, G9): the user a request acts for, the user a read is shown
//! to, and whether the caller is an admin.
//!
//! - none mode: the body's `UUID` is the user. Nothing proves who a caller is, so a user's id
//!   works as a secret and no answer shows it to anyone else; a read names its asker with
//!   `X-User-Id`. Admin is `Authorization: Bearer <ADMIN_TOKEN>`.
//! - jwt mode: the user is the `sub` of a bearer JWT (a UUID as is, any other string mapped to a
//!   v5 UUID in [`SUBJECT_NAMESPACE`]); admin is a `role: "admin"` claim or `"admin"` in `roles`.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, FromRequest, HttpRequest};
use anyhow::{bail, Context};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use queue_core::settings::{AuthMode, AuthSettings};
use queue_core::UserId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{ApiError, AuthProblem};

/// The namespace of the v5 UUIDs that stand for a `sub` that is not a UUID:
/// `uuid5(NAMESPACE_URL, "urn:seat-reservation:jwt-sub")`, fixed so that one subject is one
/// user across instances and releases.
pub const SUBJECT_NAMESPACE: Uuid = uuid::uuid!("4b59fcd8-ec99-5c43-b911-38f40eeb54df");

/// The header a read names its asker with in none mode.
pub const USER_HEADER: &str = "X-User-Id";

/// How requests are matched to users; built once from the settings.
pub struct Identity {
    mode: Mode,
    /// SHA-256 of ADMIN_TOKEN (none mode), compared in constant time.
    admin_token: Option<[u8; 32]>,
}

enum Mode {
    None,
    Jwt(Box<Verifier>),
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// Tokens verified already, with what they proved and when they expire: a client sends the
    /// same token with each of its requests, and checking a signature costs far more than a
    /// lookup. The token itself is the key, so only the very token that verified is let in.
    verified: Mutex<HashMap<Box<str>, Verified>>,
}

#[derive(Debug, Clone, Copy)]
struct Verified {
    bearer: Bearer,
    /// `exp`, seconds since the epoch.
    exp: u64,
}

/// Tokens remembered per process; past this the memory is cleared (about 300 bytes a token).
const VERIFIED_CAPACITY: usize = 100_000;

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("mode", &self.mode())
            .field("admin_token", &self.admin_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// The claims the service reads; any others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    /// Required by the validation (`exp`), so present whenever a token verified. A number, as
    /// JWT's NumericDate may have a fraction.
    exp: f64,
    #[serde(default)]
    role: Option<serde_json::Value>,
    #[serde(default)]
    roles: Option<serde_json::Value>,
}

impl Claims {
    fn is_admin(&self) -> bool {
        let names = |v: &Option<serde_json::Value>| -> Vec<String> {
            match v {
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        names(&self.role)
            .iter()
            .chain(names(&self.roles).iter())
            .any(|r| r == "admin")
    }
}

/// What a bearer token proved.
#[derive(Debug, Clone, Copy)]
struct Bearer {
    user: UserId,
    admin: bool,
}

impl Identity {
    /// Checks the settings and loads the key; a bad one is an error naming its setting.
    pub fn from_settings(auth: &AuthSettings) -> anyhow::Result<Self> {
        let admin_token = (!auth.admin_token.is_empty()).then(|| digest(&auth.admin_token));
        let mode = match auth.mode {
            AuthMode::None => Mode::None,
            AuthMode::Jwt => Mode::Jwt(Box::new(Verifier::from_settings(auth)?)),
        };
        Ok(Self { mode, admin_token })
    }

    pub fn mode(&self) -> AuthMode {
        match self.mode {
            Mode::None => AuthMode::None,
            Mode::Jwt(_) => AuthMode::Jwt,
        }
    }

    /// The user a read is shown to: none mode, `X-User-Id`; jwt mode, the bearer token's user
    /// (401 when there is a token and it does not verify). `X-User-Id` is a 422 when it is not a
    /// UUID, in both modes. `None` for an anonymous read, which shows no user's id.
    pub fn viewer(&self, headers: &HeaderMap) -> Result<Option<UserId>, ApiError> {
        // Checked in both modes, so that one request means one thing whatever the mode; in jwt
        // mode it names nobody (anyone could send it).
        let named = match headers.get(USER_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| ApiError::InvalidField {
                        field: USER_HEADER.to_owned(),
                        message: format!(
                            "the {USER_HEADER} header must be a user id (a UUID such as \
                             0b6f6a8e-54a4-4b43-9a71-3f0c2f2f5c11)"
                        ),
                    })?,
            ),
        };
        match &self.mode {
            Mode::None => Ok(named),
            Mode::Jwt(verifier) => match bearer(headers)? {
                None => Ok(None),
                Some(token) => Ok(Some(verifier.verify(token)?.user)),
            },
        }
    }

    /// The user a request's bearer token proves, in jwt mode, for the rate limits; `None` in
    /// none mode, without a token or with one that does not verify (the request's extractor
    /// answers 401 for that; the limit on its address still counts it).
    pub fn token_user(&self, headers: &HeaderMap) -> Option<UserId> {
        match &self.mode {
            Mode::None => None,
            Mode::Jwt(verifier) => {
                let token = bearer(headers).ok().flatten()?;
                verifier.verify(token).ok().map(|b| b.user)
            }
        }
    }

    /// The user a hold, reserve, refresh or release acts for. none mode: the body's `UUID`,
    /// which is then required. jwt mode: the token's user; the body's `UUID` may be left out,
    /// and when present must be that user (403 `user_mismatch`).
    pub fn actor(&self, caller: &Caller, claimed: Option<UserId>) -> Result<UserId, ApiError> {
        match (&caller.0, claimed) {
            (Proof::Unchecked, Some(user)) => Ok(user),
            (Proof::Unchecked, None) => Err(ApiError::InvalidField {
                field: "UUID".to_owned(),
                message: "UUID is required: the id of the user the request is for".to_owned(),
            }),
            (Proof::Token(bearer), Some(user)) if user != bearer.user => {
                Err(ApiError::UserMismatch)
            }
            (Proof::Token(bearer), _) => Ok(bearer.user),
        }
    }

    /// Refuses a request that is not an admin's: 401 without credentials or with a wrong one,
    /// 403 for a user who is not an admin, or when none mode has no ADMIN_TOKEN.
    pub fn require_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match &self.mode {
            Mode::None => {
                let Some(expected) = &self.admin_token else {
                    return Err(ApiError::AdminOnly {
                        why: "admin operations are disabled: ADMIN_TOKEN is not set",
                    });
                };
                let Some(token) = bearer(headers)? else {
                    return Err(ApiError::Unauthenticated(AuthProblem::Missing));
                };
                if bool::from(digest(token).ct_eq(expected)) {
                    Ok(())
                } else {
                    Err(ApiError::Unauthenticated(AuthProblem::Invalid(
                        "the bearer token is not the admin token".to_owned(),
                    )))
                }
            }
            Mode::Jwt(verifier) => {
                let Some(token) = bearer(headers)? else {
                    return Err(ApiError::Unauthenticated(AuthProblem::Missing));
                };
                if verifier.verify(token)?.admin {
                    Ok(())
                } else {
                    Err(ApiError::AdminOnly {
                        why: "this needs an admin token (a `role` or `roles` claim of \"admin\")",
                    })
                }
            }
        }
    }

    /// `POST /events/create`: open in none mode (as in the original design), admin-only in jwt
    /// mode.
    pub fn may_create_events(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.mode {
            Mode::None => Ok(()),
            Mode::Jwt(_) => self.require_admin(headers),
        }
    }
}

/// The credentials of a request that acts for a user, checked before its body is read: in jwt
/// mode a verified bearer token (else 401), in none mode nothing (the body names the user).
/// Turn it into the user with [`Identity::actor`].
#[derive(Debug)]
pub struct Caller(Proof);

#[derive(Debug)]
enum Proof {
    Unchecked,
    Token(Bearer),
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = identity(req).and_then(|identity| match &identity.mode {
            Mode::None => Ok(Self(Proof::Unchecked)),
            Mode::Jwt(verifier) => match bearer(req.headers())? {
                None => Err(ApiError::Unauthenticated(AuthProblem::Missing)),
                Some(token) => verifier.verify(token).map(|b| Self(Proof::Token(b))),
            },
        });
        ready(caller)
    }
}

/// An admin's request (see [`Identity::require_admin`]), checked before its body is read.
#[derive(Debug)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(identity(req).and_then(|i| i.require_admin(req.headers()).map(|()| Self)))
    }
}

/// A request that may create an event (see [`Identity::may_create_events`]), checked before
/// its body is read.
#[derive(Debug)]
pub struct EventCreator;

impl FromRequest for EventCreator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(identity(req).and_then(|i| i.may_create_events(req.headers()).map(|()| Self)))
    }
}

fn identity(req: &HttpRequest) -> Result<&Identity, ApiError> {
    req.app_data::<web::Data<Identity>>()
        .map(|data| data.get_ref())
        .ok_or(ApiError::Misconfigured("no identity settings in the app"))
}

/// The token of an `Authorization: Bearer <token>` header; `None` without the header. Any
/// other scheme, or a header that is not text, is a 401.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = |why: &str| ApiError::Unauthenticated(AuthProblem::Invalid(why.to_owned()));
    let value = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not text"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid("the Authorization header must be `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid("the Authorization header must be `Bearer <token>`"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid("the bearer token is empty"));
    }
    Ok(Some(token))
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Verifier {
    fn from_settings(auth: &AuthSettings) -> anyhow::Result<Self> {
        let (key, algorithm) = if !auth.jwt_secret.is_empty() {
            let key = DecodingKey::from_secret(auth.jwt_secret.as_bytes())
                .context("invalid setting auth.jwt_secret (AUTH_JWT_SECRET)")?;
            (key, Algorithm::HS256)
        } else {
            let path = &auth.jwt_public_key_file;
            let pem = std::fs::read(path).with_context(|| {
                format!(
                    "invalid setting auth.jwt_public_key_file (AUTH_JWT_PUBLIC_KEY_FILE): \
                     cannot read `{path}`"
                )
            })?;
            public_key(&pem).with_context(|| {
                format!(
                    "invalid setting auth.jwt_public_key_file (AUTH_JWT_PUBLIC_KEY_FILE): `{path}` \
                     is not a PEM public key, RSA (RS256) or EC P-256 (ES256)"
                )
            })?
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = auth.jwt_leeway_secs;
        validation.validate_nbf = true;
        if auth.jwt_issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&auth.jwt_issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        if auth.jwt_audience.is_empty() {
            // Not configured: a token's `aud` is not ours to judge.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&auth.jwt_audience]);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        Ok(Self {
            key,
            validation,
            verified: Mutex::default(),
        })
    }

    fn verify(&self, token: &str) -> Result<Bearer, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let remembered = self
            .verified
            .lock()
            .ok()
            .and_then(|verified| verified.get(token).copied());
        if let Some(hit) = remembered {
            // Expiry is the one check whose answer changes with time; the same leeway applies.
            if now <= hit.exp.saturating_add(self.validation.leeway) {
                return Ok(hit.bearer);
            }
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| ApiError::Unauthenticated(AuthProblem::Invalid(why(e.kind()))))?;
        let bearer = Bearer {
            user: subject_user(&data.claims.sub),
            admin: data.claims.is_admin(),
        };
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(
                token.into(),
                Verified {
                    bearer,
                    exp: data.claims.exp as u64,
                },
            );
        }
        Ok(bearer)
    }
}

/// An RSA or an EC public key, with the algorithm it verifies.
fn public_key(pem: &[u8]) -> anyhow::Result<(DecodingKey, Algorithm)> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("PRIVATE KEY") {
        bail!("it holds a private key; give the service the public key only");
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, Algorithm::RS256));
    }
    let key = DecodingKey::from_ec_pem(pem)?;
    Ok((key, Algorithm::ES256))
}

/// The user a `sub` stands for: a UUID as is, anything else the v5 UUID of it.
pub fn subject_user(sub: &str) -> UserId {
    match sub.parse::<UserId>() {
        Ok(user) => user,
        Err(_) => {
            let uuid = Uuid::new_v5(&SUBJECT_NAMESPACE, sub.as_bytes());
            UserId::from_bytes(*uuid.as_bytes())
        }
    }
}

/// Why a token was refused, for the person reading the 401.
fn why(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer (iss) is not the expected one".to_owned(),
        ErrorKind::InvalidAudience => "the token's audience (aud) is not this service".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token is not signed with the algorithm this service uses".to_owned()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's `{claim}` claim is malformed"),
        _ => "the token is not a well-formed JWT".to_owned(),
    }
}

/// What `api token` signs.
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
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

/// What to mint: `api token --sub ID [--admin] [--ttl 1h] [--private-key FILE]`.
#[derive(Debug)]
pub struct MintRequest {
    pub sub: String,
    pub admin: bool,
    pub ttl: Duration,
    /// A PEM private key (RS256 or ES256); without it, AUTH_JWT_SECRET signs (HS256).
    pub private_key: Option<std::path::PathBuf>,
}

/// Mints a token the service (configured by `auth`) accepts: for tests, load tests and trying
/// the API by hand. `iss` and `aud` are the configured ones.
pub fn mint(auth: &AuthSettings, request: &MintRequest) -> anyhow::Result<String> {
    let (key, algorithm) = match &request.private_key {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the private key `{}`", path.display()))?;
            match EncodingKey::from_rsa_pem(&pem) {
                Ok(key) => (key, Algorithm::RS256),
                Err(_) => (
                    EncodingKey::from_ec_pem(&pem).with_context(|| {
                        format!(
                            "`{}` is not a PEM private key, RSA or EC P-256 (PKCS#8)",
                            path.display()
                        )
                    })?,
                    Algorithm::ES256,
                ),
            }
        }
        None if auth.jwt_secret.is_empty() => {
            bail!("set AUTH_JWT_SECRET (HS256), or pass --private-key FILE (RS256 or ES256)")
        }
        None => (
            EncodingKey::from_secret(auth.jwt_secret.as_bytes())?,
            Algorithm::HS256,
        ),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = MintedClaims {
        sub: &request.sub,
        iat: now,
        exp: now + request.ttl.as_secs().max(1),
        iss: (!auth.jwt_issuer.is_empty()).then_some(auth.jwt_issuer.as_str()),
        aud: (!auth.jwt_audience.is_empty()).then_some(auth.jwt_audience.as_str()),
        role: request.admin.then_some("admin"),
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &key,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str) -> AuthSettings {
        AuthSettings {
            mode: AuthMode::Jwt,
            jwt_secret: secret.to_owned(),
            jwt_public_key_file: String::new(),
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            jwt_leeway_secs: 0,
            admin_token: String::new(),
        }
    }

    #[test]
    fn the_subject_namespace_is_the_documented_one() {
        assert_eq!(
            SUBJECT_NAMESPACE,
            Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:seat-reservation:jwt-sub"),
            "the namespace is uuid5(NAMESPACE_URL, \"urn:seat-reservation:jwt-sub\")"
        );
    }

    #[test]
    fn a_uuid_subject_is_the_user_and_any_other_maps_to_one_v5_uuid() {
        let uuid = "0b6f6a8e-54a4-4b43-9a71-3f0c2f2f5c11";
        assert_eq!(subject_user(uuid).to_string(), uuid);
        let a = subject_user("auth0|alice");
        assert_eq!(a, subject_user("auth0|alice"), "stable");
        assert_ne!(a, subject_user("auth0|bob"));
        assert_eq!(
            Uuid::parse_str(&a.to_string()).map(|u| u.get_version_num()),
            Ok(5)
        );
    }

    #[test]
    fn a_minted_token_verifies_and_carries_its_role() -> anyhow::Result<()> {
        let auth = settings(&"s".repeat(32));
        let verifier = Verifier::from_settings(&auth)?;
        let request = MintRequest {
            sub: "alice".to_owned(),
            admin: true,
            ttl: Duration::from_secs(60),
            private_key: None,
        };
        let bearer = verifier
            .verify(&mint(&auth, &request)?)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert!(bearer.admin);
        assert_eq!(bearer.user, subject_user("alice"));
        let other = settings(&"t".repeat(32));
        let refused = verifier.verify(&mint(&other, &request)?);
        assert!(
            matches!(&refused, Err(ApiError::Unauthenticated(AuthProblem::Invalid(why))) if why.contains("signature")),
            "{refused:?}"
        );
        Ok(())
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() -> anyhow::Result<()> {
        let verifier = Verifier::from_settings(&settings(&"s".repeat(32)))?;
        let bearer = Bearer {
            user: subject_user("alice"),
            admin: true,
        };
        let remember = |token: &str, exp: u64| {
            if let Ok(mut verified) = verifier.verified.lock() {
                verified.insert(token.into(), Verified { bearer, exp });
            }
        };
        let now = jsonwebtoken::get_current_timestamp();
        remember("live", now + 60);
        remember("lapsed", now - 1);
        assert!(verifier.verify("live").is_ok(), "a remembered live token");
        assert!(
            verifier.verify("lapsed").is_err(),
            "an expired one is verified again, and fails"
        );
        Ok(())
    }

    #[test]
    fn a_challenge_never_breaks_its_quoted_string() {
        let challenge = AuthProblem::Invalid("a \"quoted\" \\ reason".to_owned()).challenge();
        assert_eq!(
            challenge,
            "Bearer realm=\"seat-reservation\", error=\"invalid_token\", \
             error_description=\"a 'quoted' ' reason\""
        );
    }
}
