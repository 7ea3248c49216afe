//! The server's security flags (docs/security.md): the admin token, customer
//! tokens, rate limits, trusted proxies and the operators' listener, and
//! how they become the library's [`Security`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use seckill_server::{
    AdminAccess, AdminToken, CustomerAuth, JwtVerifier, Limit, RateLimits, Security, TrustedProxies,
};

/// How customers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CustomerAuthMode {
    /// As the request claims (the Java original's API).
    None,
    /// As the `sub` of a JWT in `Authorization: Bearer`.
    Jwt,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

#[derive(Debug, Args)]
pub(crate) struct SecurityArgs {
    /// The token admin requests present as `Authorization: Bearer <token>`
    /// (at least 16 visible ASCII characters). Without this, a file or
    /// `--admin-open`, the server generates one at start and logs it.
    #[arg(long, env = "SECKILL_ADMIN_TOKEN", hide_env_values = true,
          conflicts_with_all = ["admin_token_file", "admin_open"])]
    pub(crate) admin_token: Option<String>,

    /// Reads the admin token from this file (one line), e.g. a mounted secret.
    #[arg(long, env = "SECKILL_ADMIN_TOKEN_FILE", conflicts_with = "admin_open")]
    pub(crate) admin_token_file: Option<PathBuf>,

    /// Serves the admin routes to anybody, as the Java original did: only
    /// behind a gateway that checks who calls. Logs a warning at start.
    #[arg(long)]
    pub(crate) admin_open: bool,

    /// How customers are identified: `none` believes the request's
    /// `customerId`; `jwt` takes the `sub` of a customer token and needs
    /// `--jwt-secret` or `--jwt-public-key`.
    #[arg(long, env = "SECKILL_CUSTOMER_AUTH", value_enum, default_value_t = CustomerAuthMode::None)]
    pub(crate) customer_auth: CustomerAuthMode,

    /// The HS256 secret customer tokens are signed with (at least 32 bytes).
    #[arg(
        long,
        env = "SECKILL_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    pub(crate) jwt_secret: Option<String>,

    /// A PEM public key customer tokens are checked with: RSA (RS256) or
    /// P-256 (ES256), the identity provider's signing key.
    #[arg(long, env = "SECKILL_JWT_PUBLIC_KEY")]
    pub(crate) jwt_public_key: Option<PathBuf>,

    /// Accepts only customer tokens with this `iss`.
    #[arg(long, env = "SECKILL_JWT_ISSUER")]
    pub(crate) jwt_issuer: Option<String>,

    /// Accepts only customer tokens whose `aud` names this.
    #[arg(long, env = "SECKILL_JWT_AUDIENCE")]
    pub(crate) jwt_audience: Option<String>,

    /// The fairness rate limits (429 over them). `off` for load tests that
    /// send everything from one address.
    #[arg(long, env = "SECKILL_RATE_LIMIT", value_enum, default_value_t = Switch::On)]
    pub(crate) rate_limit: Switch,

    /// Grabs one client address may send, e.g. `5/s burst 10` or `300/min`.
    #[arg(long, env = "SECKILL_LIMIT_GRAB_PER_ADDRESS",
          default_value_t = RateLimits::default().grab_per_address)]
    pub(crate) limit_grab_per_address: Limit,

    /// Grabs sent for one customer, from any address.
    #[arg(long, env = "SECKILL_LIMIT_GRAB_PER_CUSTOMER",
          default_value_t = RateLimits::default().grab_per_customer)]
    pub(crate) limit_grab_per_customer: Limit,

    /// Other API requests (admin, queries, feeds) one client address may send.
    #[arg(long, env = "SECKILL_LIMIT_API_PER_ADDRESS",
          default_value_t = RateLimits::default().api_per_address)]
    pub(crate) limit_api_per_address: Limit,

    /// A proxy or load balancer (address or CIDR, repeatable or
    /// comma-separated) whose `Forwarded` / `X-Forwarded-For` name the
    /// client. From any other peer those headers are ignored.
    #[arg(long = "trusted-proxy", env = "SECKILL_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_network)]
    pub(crate) trusted_proxies: Vec<IpNet>,

    /// Serves `/admin`, `/metrics` and `/docs` on this address instead of
    /// `--bind` (e.g. `127.0.0.1:3001`, loopback only).
    #[arg(long, env = "SECKILL_ADMIN_BIND")]
    pub(crate) admin_bind: Option<SocketAddr>,
}

/// A CIDR (`10.0.0.0/8`) or a single address (`10.0.0.7`).
fn parse_network(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{raw}` is not an address or a CIDR like 10.0.0.0/8"))
}

impl SecurityArgs {
    /// The rules the flags ask for; logs the generated admin token, if any.
    pub(crate) fn rules(&self) -> anyhow::Result<Security> {
        let mut security = Security::new(self.admin_access()?)
            .customers(self.customer_auth()?)
            .trusted_proxies(TrustedProxies::new(self.trusted_proxies.clone()));
        match self.rate_limit {
            Switch::On => {
                let limits = RateLimits {
                    grab_per_address: self.limit_grab_per_address,
                    grab_per_customer: self.limit_grab_per_customer,
                    api_per_address: self.limit_api_per_address,
                };
                tracing::info!(
                    grab_per_address = %limits.grab_per_address,
                    grab_per_customer = %limits.grab_per_customer,
                    api_per_address = %limits.api_per_address,
                    "rate limits on"
                );
                security = security.rate_limits(limits);
            }
            Switch::Off => tracing::warn!(
                "rate limits off (--rate-limit off): a fast client can crowd out the rest"
            ),
        }
        Ok(security)
    }

    fn admin_access(&self) -> anyhow::Result<AdminAccess> {
        if self.admin_open {
            tracing::warn!(
                "admin routes open to anybody (--admin-open): put the server behind a gateway that checks who calls /admin"
            );
            return Ok(AdminAccess::Open);
        }
        let configured = match (&self.admin_token, &self.admin_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the admin token from {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let token = match configured {
            Some(token) => AdminToken::new(&token).context("checking the admin token")?,
            None => {
                let token = AdminToken::generate().context("generating an admin token")?;
                // Once, at start: the quick start's page asks for it. A
                // deployment sets its own, which is never logged.
                tracing::warn!(
                    token = token.reveal(),
                    "no admin token configured (--admin-token, --admin-token-file or SECKILL_ADMIN_TOKEN): \
                     generated one for this run; admin requests need `Authorization: Bearer <token>`"
                );
                token
            }
        };
        Ok(AdminAccess::Token(token))
    }

    fn customer_auth(&self) -> anyhow::Result<CustomerAuth> {
        if self.customer_auth == CustomerAuthMode::None {
            if self.jwt_secret.is_some() || self.jwt_public_key.is_some() {
                bail!("--jwt-secret and --jwt-public-key need --customer-auth jwt");
            }
            return Ok(CustomerAuth::Claimed);
        }
        let mut verifier = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(secret), _) => JwtVerifier::hs256(secret.as_bytes())?,
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading the JWT public key {}", path.display()))?;
                JwtVerifier::public_key_pem(&pem)?
            }
            (None, None) => bail!("--customer-auth jwt needs --jwt-secret or --jwt-public-key"),
        };
        if let Some(issuer) = &self.jwt_issuer {
            verifier = verifier.issuer(issuer);
        }
        if let Some(audience) = &self.jwt_audience {
            verifier = verifier.audience(audience);
        }
        tracing::info!(
            ?verifier,
            "customers identified by token (--customer-auth jwt)"
        );
        Ok(CustomerAuth::Jwt(std::sync::Arc::new(verifier)))
    }
}
