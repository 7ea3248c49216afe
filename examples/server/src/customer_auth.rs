//! Who the customer is. Off by default, as in the Java original: the grab's
//! `customerId` is believed. With customer tokens on (`--customer-auth jwt`)
//! the customer is the `sub` of a JWT the identity provider signed
//! (HS256 with a shared secret, or RS256/ES256 checked with its public key),
//! presented as `Authorization: Bearer <jwt>` on the routes that act for a
//! customer: a grab and the list of their coupons. [`Caller`] is the
//! extractor those handlers take.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use seckill_domain::CustomerId;
use serde::Deserialize;

use super::admin_auth::bearer;
use super::problem::{Problem, ProblemType};
use super::AppState;

/// How the server learns who the customer is.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum CustomerAuth {
    /// The request says so (the body's or the path's `customerId`).
    #[default]
    Claimed,
    /// A JWT's `sub`, checked with this verifier.
    Jwt(Arc<JwtVerifier>),
}

impl std::fmt::Debug for CustomerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Claimed => f.write_str("Claimed"),
            Self::Jwt(verifier) => write!(f, "Jwt({:?})", verifier.validation.algorithms),
        }
    }
}

/// Checks customer tokens: the signature with one key, the expiry (always
/// required), and the issuer and audience when configured.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

/// Why a verifier cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtKeyError {
    /// An HS256 secret shorter than 32 bytes (RFC 7518 §3.2 wants the
    /// hash's size at least).
    #[error("the JWT secret is {0} bytes; HS256 needs at least 32")]
    ShortSecret(usize),
    /// The PEM is neither an RSA nor an EC (P-256) public key.
    #[error("the public key is neither an RSA nor a P-256 EC public key in PEM: {0}")]
    Pem(#[source] jsonwebtoken::errors::Error),
}

impl JwtVerifier {
    /// Tokens signed HS256 with `secret`.
    pub fn hs256(secret: &[u8]) -> Result<Self, JwtKeyError> {
        if secret.len() < 32 {
            return Err(JwtKeyError::ShortSecret(secret.len()));
        }
        Ok(Self::with(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ))
    }

    /// Tokens signed with the private half of `pem`: RS256 for an RSA key,
    /// ES256 for a P-256 key. Only that algorithm is accepted, so a token
    /// cannot pick a weaker one (or `none`, or HS256 keyed by the public key).
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => Ok(Self::with(key, Algorithm::RS256)),
            Err(_) => DecodingKey::from_ec_pem(pem)
                .map(|key| Self::with(key, Algorithm::ES256))
                .map_err(JwtKeyError::Pem),
        }
    }

    fn with(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `aud` is checked only when an audience is configured.
        validation.validate_aud = false;
        Self { key, validation }
    }

    /// Accepts only tokens whose `iss` is `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation.required_spec_claims.insert("iss".into());
        self
    }

    /// Accepts only tokens whose `aud` names `audience`.
    #[must_use]
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.validation.required_spec_claims.insert("aud".into());
        self
    }

    /// The customer a token speaks for, if it is genuine and current.
    fn customer(&self, token: &str) -> Result<CustomerId, Problem> {
        #[derive(Deserialize)]
        struct Claims {
            sub: String,
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |error| {
                tracing::debug!(%error, "customer token refused");
                invalid_token(&format!("the customer token was refused: {error}"))
            },
        )?;
        CustomerId::parse(claims.claims.sub).map_err(|error| {
            invalid_token(&format!("the token's `sub` is no customer id: {error}"))
        })
    }
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

fn invalid_token(detail: &str) -> Problem {
    Problem::new(ProblemType::Unauthorized, detail)
        .challenge("Bearer realm=\"seckill\", error=\"invalid_token\"")
}

/// Who sends a request that acts for a customer.
#[derive(Debug, Clone)]
pub(super) enum Caller {
    /// Customer tokens are off: whoever the request names.
    Anyone,
    /// The subject of a valid customer token.
    Customer(CustomerId),
}

impl Caller {
    /// Refuses to act for `customer` unless the caller is them.
    pub(super) fn may_act_for(&self, customer: &CustomerId) -> Result<(), Problem> {
        match self {
            Self::Customer(caller) if caller != customer => Err(Problem::new(
                ProblemType::Forbidden,
                format!("the customer token is for `{caller}`, not for `{customer}`"),
            )),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let CustomerAuth::Jwt(verifier) = &state.shared.security.customers else {
            return Ok(Self::Anyone);
        };
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| bearer(value.as_bytes()))
            .and_then(|token| std::str::from_utf8(token).ok());
        let Some(token) = token else {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "this server identifies customers by token: send `Authorization: Bearer <customer JWT>`",
            )
            .challenge("Bearer realm=\"seckill\""));
        };
        verifier.customer(token).map(Self::Customer)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    /// A P-256 key pair made for this test only (`openssl ecparam -name
    /// prime256v1 -genkey`, then `pkcs8 -topk8` and `ec -pubout`).
    const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVn8zOhFt4REHGGbl
2CL5kC/roe1iC4BSedLZNOoXY7OhRANCAATmQbzMLc3AAGUrpa4cXAidh3SIXD13
NqKa7o+8ezJgTkOoU4Fuh1JZNu6na3GYIATtyz9JwhUyCobeNYkBfm6W
-----END PRIVATE KEY-----
";
    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5kG8zC3NwABlK6WuHFwInYd0iFw9
dzaimu6PvHsyYE5DqFOBbodSWTbup2txmCAE7cs/ScIVMgqG3jWJAX5ulg==
-----END PUBLIC KEY-----
";

    fn in_an_hour() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    fn es256(claims: &serde_json::Value) -> String {
        let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
        encode(&Header::new(Algorithm::ES256), claims, &key).unwrap()
    }

    #[test]
    fn an_es256_public_key_admits_its_tokens_and_no_other_algorithm() {
        let verifier = JwtVerifier::public_key_pem(EC_PUBLIC.as_bytes()).unwrap();
        let token = es256(&json!({"sub": "alice", "exp": in_an_hour()}));
        assert_eq!(verifier.customer(&token).unwrap().as_str(), "alice");
        // The classic confusion: HS256 keyed with the public key's text.
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "mallory", "exp": in_an_hour()}),
            &EncodingKey::from_secret(EC_PUBLIC.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier.customer(&confused).unwrap_err().details().status,
            401
        );
        // No expiry, no subject, an id that is no customer id: refused.
        for claims in [
            json!({"sub": "alice"}),
            json!({"exp": in_an_hour()}),
            json!({"sub": " padded ", "exp": in_an_hour()}),
        ] {
            let refused = verifier.customer(&es256(&claims)).unwrap_err();
            assert_eq!(refused.details().status, 401, "{claims}");
        }
        assert!(JwtVerifier::public_key_pem(b"not a key").is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let verifier = JwtVerifier::public_key_pem(EC_PUBLIC.as_bytes())
            .unwrap()
            .issuer("https://id.example")
            .audience("seckill");
        let good = json!({"sub": "alice", "exp": in_an_hour(), "iss": "https://id.example", "aud": "seckill"});
        assert!(verifier.customer(&es256(&good)).is_ok());
        for (member, value) in [("iss", "https://evil.example"), ("aud", "another-app")] {
            let mut claims = good.clone();
            claims[member] = value.into();
            assert!(verifier.customer(&es256(&claims)).is_err(), "{member}");
        }
        let mut no_audience = good;
        no_audience.as_object_mut().unwrap().remove("aud");
        assert!(verifier.customer(&es256(&no_audience)).is_err());
    }

    #[test]
    fn hs256_secrets_must_be_long() {
        assert!(matches!(
            JwtVerifier::hs256(b"short"),
            Err(JwtKeyError::ShortSecret(5))
        ));
        assert!(JwtVerifier::hs256(&[7; 32]).is_ok());
    }
}
