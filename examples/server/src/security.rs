//! [`Security`]: who may call what, and how often. The server binary builds
//! it from its flags (docs/security.md lists each control, flag and
//! default); the router applies it in one middleware ([`guard`]), in the
//! grab and coupon handlers (through [`Caller`] and
//! [`Security::limit_customer`]), and per listener ([`Surface`]).
//!
//! [`Caller`]: super::customer_auth::Caller

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use seckill_domain::CustomerId;

use super::admin_auth::AdminAccess;
use super::customer_auth::CustomerAuth;
use super::metrics::Metrics;
use super::problem::{Problem, ProblemType};
use super::rate_limit::{Limiters, RateLimits, TrustedProxies};
use super::AppState;

/// The server's access rules. [`Default`] is what a library user gets from
/// [`AppState::new`]: admin routes closed, customers as claimed, no rate
/// limits (the binary turns them on by default), no trusted proxy.
#[derive(Debug, Default)]
pub struct Security {
    pub(super) admin: AdminAccess,
    pub(super) customers: CustomerAuth,
    limiters: Option<Limiters>,
    proxies: TrustedProxies,
}

impl Security {
    /// Rules with this admin access, and the defaults otherwise.
    pub fn new(admin: AdminAccess) -> Self {
        Self {
            admin,
            ..Self::default()
        }
    }

    /// Identifies customers this way.
    #[must_use]
    pub fn customers(mut self, customers: CustomerAuth) -> Self {
        self.customers = customers;
        self
    }

    /// Enforces these rate limits.
    #[must_use]
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.limiters = Some(Limiters::new(limits));
        self
    }

    /// Believes the forwarding headers of these proxies.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Takes one grab of `customer` from their rate limit, if limits are on.
    pub(super) fn limit_customer(
        &self,
        customer: &CustomerId,
        metrics: &Metrics,
    ) -> Result<(), Problem> {
        match &self.limiters {
            Some(limiters) => limiters.customer(customer, metrics),
            None => Ok(()),
        }
    }

    /// Periodic housekeeping: drops the buckets of clients gone quiet.
    pub(super) fn upkeep(&self) {
        if let Some(limiters) = &self.limiters {
            limiters.upkeep();
        }
    }
}

/// What a path is, for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `/admin/...`: needs admin access.
    Admin,
    /// `POST /command/...`: a grab.
    Grab,
    /// The rest of the API: queries and feeds.
    Api,
    /// Pages, docs, metrics, probes: not limited.
    Other,
}

fn kind(method: &Method, path: &str) -> Kind {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/admin") {
        Kind::Admin
    } else if under("/command") && method == Method::POST {
        Kind::Grab
    } else if under("/command") || under("/query") || under("/sync") || under("/events") {
        Kind::Api
    } else {
        Kind::Other
    }
}

/// Every request passes here first: the client address's rate limit,
/// then, under `/admin`, the admin token. Both before any routing, so an
/// unauthenticated client learns nothing about which admin paths exist.
pub(super) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let security = &state.shared.security;
    let kind = kind(request.method(), request.uri().path());
    if let (Some(limiters), Kind::Admin | Kind::Grab | Kind::Api) = (&security.limiters, kind) {
        if let Some(client) = security.proxies.client(&request) {
            if let Err(problem) =
                limiters.address(client, kind == Kind::Grab, &state.shared.metrics)
            {
                return problem.into_response();
            }
        }
    }
    if kind == Kind::Admin {
        if let Err(problem) = security.admin.admit(request.headers()) {
            return problem.into_response();
        }
    }
    next.run(request).await
}

/// Which part of the server one listener serves (`--admin-bind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: one listener for all.
    All,
    /// The public part: everything but `/admin`, `/metrics` and `/docs`.
    Public,
    /// The operators' part: `/admin`, `/metrics`, `/docs` (with
    /// `/openapi.json`, which it reads) and the probes.
    Operators,
}

impl Surface {
    fn serves(self, path: &str) -> bool {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let operators = under("/admin") || under("/metrics") || under("/docs");
        match self {
            Self::All => true,
            Self::Public => !operators,
            Self::Operators => {
                operators || matches!(path, "/openapi.json" | "/healthz" | "/readyz")
            }
        }
    }

    /// The middleware that answers 404 for the paths this listener leaves to
    /// the other.
    pub(super) async fn filter(self, request: Request, next: Next) -> Response {
        if self.serves(request.uri().path()) {
            next.run(request).await
        } else {
            let detail = match self {
                Self::Public => "not on this listener: the operators' listener (--admin-bind) serves it",
                _ => "not on this listener: the operators' listener serves /admin, /metrics and /docs only",
            };
            Problem::new(ProblemType::NotFound, detail).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_told_apart_by_whole_segments() {
        assert_eq!(kind(&Method::POST, "/admin/promotions/"), Kind::Admin);
        assert_eq!(kind(&Method::GET, "/admin"), Kind::Admin);
        assert_eq!(kind(&Method::GET, "/administrator"), Kind::Other);
        assert_eq!(kind(&Method::POST, "/command/coupons/"), Kind::Grab);
        // An entry into a draw is limited as a grab is.
        assert_eq!(kind(&Method::POST, "/command/entries/"), Kind::Grab);
        assert_eq!(kind(&Method::GET, "/command/coupons/"), Kind::Api);
        assert_eq!(kind(&Method::GET, "/query/coupons/alice"), Kind::Api);
        assert_eq!(kind(&Method::GET, "/sync/0"), Kind::Api);
        assert_eq!(kind(&Method::GET, "/events"), Kind::Api);
        assert_eq!(kind(&Method::GET, "/metrics"), Kind::Other);
        assert!(Surface::Public.serves("/query/promotions"));
        assert!(!Surface::Public.serves("/admin/promotions/"));
        assert!(!Surface::Public.serves("/docs/"));
        assert!(Surface::Public.serves("/openapi.json"));
        assert!(Surface::Operators.serves("/metrics"));
        assert!(!Surface::Operators.serves("/command/coupons/"));
        assert!(!Surface::Operators.serves("/"));
    }
}
