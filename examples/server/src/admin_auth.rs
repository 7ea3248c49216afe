//! Who may use the admin routes (`/admin/...`): holders of the admin token,
//! presented as `Authorization: Bearer <token>` and compared in constant
//! time; nobody when the server has no token; anybody only when the
//! operator opened them on purpose.

use std::sync::Arc;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use super::problem::{Problem, ProblemType};

/// The admin token: what an operator presents on every admin request.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

/// Why a string cannot be an admin token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// Shorter than [`AdminToken::MIN_LEN`]: guessable.
    #[error("the admin token is {0} bytes; give at least 16 (e.g. `openssl rand -hex 32`)")]
    TooShort(usize),
    /// It holds a character a header value cannot carry, or white space.
    #[error("the admin token must be visible ASCII without spaces")]
    NotVisibleAscii,
}

impl AdminToken {
    /// The shortest token accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A token; visible ASCII, at least [`Self::MIN_LEN`] bytes.
    pub fn new(token: &str) -> Result<Self, AdminTokenError> {
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(AdminTokenError::NotVisibleAscii);
        }
        if token.len() < Self::MIN_LEN {
            return Err(AdminTokenError::TooShort(token.len()));
        }
        Ok(Self(Arc::from(token)))
    }

    /// A fresh token of 32 random bytes (64 hex digits) from the operating
    /// system's CSPRNG, for a server started without one.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Self(Arc::from(hex)))
    }

    /// The token itself, to show the operator once or to send as a client.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, compared in constant time so the
    /// comparison's duration says nothing about the token.
    fn admits(&self, presented: &[u8]) -> bool {
        presented.ct_eq(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// Who may use the admin routes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum AdminAccess {
    /// Nobody: every admin request is refused with 403 `admin-disabled`.
    #[default]
    Closed,
    /// Requests presenting this token.
    Token(AdminToken),
    /// Anybody, as the Java original: only behind a gateway that checks
    /// who calls (`--admin-open`).
    Open,
}

/// The challenge of an admin 401.
const ADMIN_CHALLENGE: &str = "Bearer realm=\"seckill-admin\"";

impl AdminAccess {
    /// Admits the request whose headers are `headers`, or answers why not.
    pub(super) fn admit(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let token = match self {
            Self::Open => return Ok(()),
            Self::Closed => {
                return Err(Problem::new(
                    ProblemType::AdminDisabled,
                    "the admin routes are disabled: start the server with --admin-token, \
                     --admin-token-file or SECKILL_ADMIN_TOKEN (see docs/security.md)",
                ))
            }
            Self::Token(token) => token,
        };
        let Some(presented) = headers.get(AUTHORIZATION) else {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                "admin routes need `Authorization: Bearer <admin token>`",
            )
            .challenge(ADMIN_CHALLENGE));
        };
        let presented = bearer(presented.as_bytes()).unwrap_or_default();
        if token.admits(presented) {
            Ok(())
        } else {
            Err(Problem::new(
                ProblemType::Unauthorized,
                "the admin token presented is not the server's",
            )
            .challenge("Bearer realm=\"seckill-admin\", error=\"invalid_token\""))
        }
    }
}

/// The credentials of an `Authorization: Bearer <credentials>` header; the
/// scheme is case-insensitive (RFC 9110 §11.1).
pub(super) fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, credentials) = header.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| credentials.trim_ascii())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn tokens_are_long_visible_ascii_and_generated_ones_differ() {
        assert_eq!(
            AdminToken::new("short").unwrap_err(),
            AdminTokenError::TooShort(5)
        );
        assert_eq!(
            AdminToken::new("with a space in the middle").unwrap_err(),
            AdminTokenError::NotVisibleAscii
        );
        let (one, other) = (
            AdminToken::generate().unwrap(),
            AdminToken::generate().unwrap(),
        );
        assert_eq!(one.reveal().len(), 64);
        assert_ne!(one.reveal(), other.reveal());
        assert!(!format!("{one:?}").contains(one.reveal()));
    }

    #[test]
    fn only_the_token_is_admitted_and_401s_say_how_to_authenticate() {
        let access = AdminAccess::Token(AdminToken::new("0123456789abcdef").unwrap());
        assert!(access
            .admit(&headers(Some("Bearer 0123456789abcdef")))
            .is_ok());
        assert!(access
            .admit(&headers(Some("bearer 0123456789abcdef")))
            .is_ok());
        for refused in [
            None,
            Some("Bearer wrong"),
            Some("0123456789abcdef"),
            Some("Basic 0123456789abcdef"),
            Some("Bearer 0123456789abcde"),
            Some("Bearer 0123456789abcdef0"),
        ] {
            let problem = access.admit(&headers(refused)).unwrap_err();
            assert_eq!(problem.details().status, 401, "{refused:?}");
            assert!(problem.details().problem_type.ends_with("/unauthorized"));
        }
        let closed = AdminAccess::Closed.admit(&headers(Some("Bearer anything")));
        assert_eq!(closed.unwrap_err().details().status, 403);
        assert!(AdminAccess::Open.admit(&headers(None)).is_ok());
    }
}
