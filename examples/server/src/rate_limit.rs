//! Rate limits for fair competition: no client may take more than its share
//! of a sale by sending faster than a person clicks. Grabs are limited per
//! client address and per customer, every other API request (admin, query,
//! feeds) per address with a looser limit; pages, `/docs`, `/metrics` and
//! the probes are not limited. Over a limit the answer is 429
//! `rate-limited` with `Retry-After`, counted in
//! `seckill_rate_limited_total{scope}`.
//!
//! The limits are GCRA buckets (the `governor` crate): a burst, then a
//! steady rate. The client address is the TCP peer's, or, when the peer is
//! a trusted proxy (`--trusted-proxy`), the nearest untrusted address that
//! `Forwarded` or `X-Forwarded-For` names: a client can prepend anything to
//! those headers, so only what trusted proxies appended is believed.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use seckill_domain::CustomerId;

use super::metrics::Metrics;
use super::problem::{Problem, ProblemType};

/// A limit: `count` requests per `period`, of which `burst` may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    count: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
}

impl Limit {
    /// `count` per second, `burst` at once.
    pub const fn per_second(count: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            count,
            period: Duration::from_secs(1),
            burst,
        }
    }

    fn quota(self) -> Quota {
        let interval = self.period / self.count.get();
        Quota::with_period(interval.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.burst)
    }
}

/// `5/s`, `300/min` or `1/h`, optionally ` burst 10` (the burst defaults to
/// the count): the syntax of the `--limit-*` flags.
impl FromStr for Limit {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let syntax = || format!("`{raw}` is not a limit like `5/s`, `300/min` or `5/s burst 10`");
        let mut words = raw.split_whitespace();
        let rate = words.next().ok_or_else(syntax)?;
        let (count, unit) = rate.split_once('/').ok_or_else(syntax)?;
        let count: NonZeroU32 = count.parse().map_err(|_| syntax())?;
        let period = match unit {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(syntax()),
        };
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => count,
            (Some("burst"), Some(burst), None) => burst.parse().map_err(|_| syntax())?,
            _ => return Err(syntax()),
        };
        Ok(Self {
            count,
            period,
            burst,
        })
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period.as_secs() {
            60 => "min",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit} burst {}", self.count, self.burst)
    }
}

/// The limits the server enforces. The defaults are what a person never
/// meets: a click on "grab" is one request, a retry after a refusal a few
/// more, and the live page asks for a few queries every 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Grabs from one client address.
    pub grab_per_address: Limit,
    /// Grabs for one customer, whatever address they come from.
    pub grab_per_customer: Limit,
    /// Every other API request from one client address.
    pub api_per_address: Limit,
}

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("zero"),
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            grab_per_address: Limit::per_second(nonzero(5), nonzero(10)),
            grab_per_customer: Limit::per_second(nonzero(1), nonzero(3)),
            api_per_address: Limit::per_second(nonzero(50), nonzero(100)),
        }
    }
}

/// Which limit refused a request, as the `scope` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Grabs per address.
    GrabAddress,
    /// Grabs per customer.
    GrabCustomer,
    /// Other API requests per address.
    ApiAddress,
}

impl Scope {
    pub(super) const fn label(self) -> &'static str {
        match self {
            Self::GrabAddress => "grab_address",
            Self::GrabCustomer => "grab_customer",
            Self::ApiAddress => "api_address",
        }
    }
}

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, DefaultClock>;

/// The limiters' state: one bucket per address or customer seen recently.
/// DashMap-backed (sharded locks): every request of a flash sale checks
/// one, from every worker thread at once.
pub(super) struct Limiters {
    grab_per_address: Keyed<IpAddr>,
    grab_per_customer: Keyed<CustomerId>,
    api_per_address: Keyed<IpAddr>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("addresses", &self.grab_per_address.len())
            .field("customers", &self.grab_per_customer.len())
            .finish_non_exhaustive()
    }
}

impl Limiters {
    pub(super) fn new(limits: RateLimits) -> Self {
        Self {
            grab_per_address: RateLimiter::dashmap(limits.grab_per_address.quota()),
            grab_per_customer: RateLimiter::dashmap(limits.grab_per_customer.quota()),
            api_per_address: RateLimiter::dashmap(limits.api_per_address.quota()),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request of `address` from the limit of its kind.
    pub(super) fn address(&self, address: IpAddr, grab: bool, metrics: &Metrics) -> Admit {
        if grab {
            self.take(
                &self.grab_per_address,
                &address,
                Scope::GrabAddress,
                metrics,
            )
        } else {
            self.take(&self.api_per_address, &address, Scope::ApiAddress, metrics)
        }
    }

    /// Takes one grab of `customer` from their limit.
    pub(super) fn customer(&self, customer: &CustomerId, metrics: &Metrics) -> Admit {
        self.take(
            &self.grab_per_customer,
            customer,
            Scope::GrabCustomer,
            metrics,
        )
    }

    fn take<K: Clone + Eq + std::hash::Hash>(
        &self,
        limiter: &Keyed<K>,
        key: &K,
        scope: Scope,
        metrics: &Metrics,
    ) -> Admit {
        match limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics.record_rate_limited(scope.label());
                let wait = not_until.wait_time_from(self.clock.now());
                // Whole seconds, rounded up: a client that waits that long
                // is admitted.
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let seconds = u32::try_from(seconds.max(1)).unwrap_or(u32::MAX);
                Err(Problem::new(
                    ProblemType::RateLimited,
                    format!(
                        "too many requests ({} limit); retry in {seconds} s",
                        scope.label().replace('_', " per ")
                    ),
                )
                .retry_after_secs(seconds))
            }
        }
    }

    /// Forgets buckets that are full again (their clients went quiet), so
    /// a bot cycling through customer ids cannot grow memory without bound.
    pub(super) fn upkeep(&self) {
        for limiter in [&self.grab_per_address, &self.api_per_address] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.grab_per_customer.retain_recent();
        self.grab_per_customer.shrink_to_fit();
    }
}

/// Admitted, or the 429 to answer.
pub(super) type Admit = Result<(), Problem>;

/// The proxies whose `Forwarded` and `X-Forwarded-For` are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Proxies in these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy; then the nearest address the proxies name that is not itself
    /// a trusted proxy (the right-most, as each proxy appends the address it
    /// got the request from). `None` when the request came through no socket
    /// (tests that call the router directly).
    pub(super) fn client<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip();
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(request.headers());
        // The proxies appended left to right; walk back from the nearest.
        let mut client = peer;
        for hop in chain.iter().rev() {
            let Some(hop) = *hop else {
                // An address we cannot read (`unknown`, an obfuscated name):
                // the last one we could read is as far as we can trust.
                break;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        Some(client)
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack socket) as plain IPv4,
/// so one client has one key.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The addresses of the `for=` of `Forwarded` (RFC 7239), or else of
/// `X-Forwarded-For`, in order, every header line included; `None` for an
/// entry that is not an address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<Option<IpAddr>> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for").then(|| node(value))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(node)
        .collect()
}

/// One node: `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:4711`.
fn node(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(address) = raw.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = raw.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    let bracketed = raw.strip_prefix('[')?.split(']').next()?;
    bracketed.parse().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[test]
    fn limits_parse_and_print_in_the_flags_syntax() {
        let limit: Limit = "5/s burst 10".parse().unwrap();
        assert_eq!(limit, Limit::per_second(nonzero(5), nonzero(10)));
        assert_eq!(limit.to_string(), "5/s burst 10");
        assert_eq!(
            "300/min".parse::<Limit>().unwrap().to_string(),
            "300/min burst 300"
        );
        for bad in [
            "",
            "5",
            "0/s",
            "5/day",
            "5/s burst",
            "5/s burst 0",
            "5/s bursts 3",
            "x/s",
        ] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_is_admitted_then_the_next_request_waits_with_a_retry_after() {
        let limits = RateLimits {
            grab_per_address: Limit::per_second(nonzero(1), nonzero(3)),
            ..RateLimits::default()
        };
        let limiters = Limiters::new(limits);
        let metrics = Metrics::isolated();
        let bot: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiters.address(bot, true, &metrics).is_ok());
        }
        let refused = limiters.address(bot, true, &metrics).unwrap_err();
        assert_eq!(refused.details().status, 429);
        // Another address, and the same address's other requests, are not
        // held back by this one's grabs.
        assert!(limiters
            .address("127.0.1.1".parse().unwrap(), true, &metrics)
            .is_ok());
        assert!(limiters.address(bot, false, &metrics).is_ok());
        assert!(metrics
            .render()
            .contains("seckill_rate_limited_total{scope=\"grab_address\"} 1\n"));
    }

    fn from(peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut request = Request::get("/query/promotions");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let ip = |raw: &str| Some(raw.parse::<IpAddr>().unwrap());
        // A client speaking for itself is its own address, whatever it says.
        let direct = from("203.0.113.9:5000", &[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(proxies.client(&direct), ip("203.0.113.9"));
        // Through two trusted proxies: the address the outer one saw. What
        // the client prepended (192.0.2.66) is not believed.
        let proxied = from(
            "10.0.0.2:5000",
            &[
                ("x-forwarded-for", "192.0.2.66, 198.51.100.1"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
        );
        assert_eq!(proxies.client(&proxied), ip("198.51.100.1"));
        // `Forwarded` wins over `X-Forwarded-For`, and reads quoted IPv6.
        let forwarded = from(
            "10.0.0.2:5000",
            &[
                (
                    "forwarded",
                    "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"",
                ),
                ("x-forwarded-for", "198.51.100.1"),
            ],
        );
        assert_eq!(proxies.client(&forwarded), ip("2001:db8::1"));
        // A trusted proxy that names nobody is the client.
        assert_eq!(proxies.client(&from("10.0.0.2:1", &[])), ip("10.0.0.2"));
        // An unreadable hop stops the walk at the last readable one.
        let unknown = from("10.0.0.2:1", &[("forwarded", "for=unknown, for=10.0.0.1")]);
        assert_eq!(proxies.client(&unknown), ip("10.0.0.1"));
        // Without any trusted proxy, headers are never read.
        let untrusting = TrustedProxies::default();
        assert_eq!(untrusting.client(&proxied), ip("10.0.0.2"));
        let mapped = from("[::ffff:127.0.0.2]:1", &[]);
        assert_eq!(untrusting.client(&mapped), ip("127.0.0.2"));
    }
}
