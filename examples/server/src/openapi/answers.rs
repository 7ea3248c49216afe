//! The problem answers of the OpenAPI document, declared once: one type per
//! status, named in each route's `responses(...)`. The descriptions list the
//! problem types (see [`ProblemType`]) a status stands for; which endpoint
//! answers which type is in `docs/api.md`.
//!
//! The types are never built: they exist for their [`IntoResponses`]
//! implementation, which is all `#[utoipa::path]` reads.
//!
//! [`ProblemType`]: super::super::ProblemType

#![expect(
    dead_code,
    reason = "the body fields are read by the derive only, to name the schema"
)]

use utoipa::IntoResponses;

use super::super::problem::ProblemDetails;

/// One problem answer type per line: `Name = status, "description"`, and
/// optionally the response headers. The body is always a [`ProblemDetails`]
/// as `application/problem+json`.
macro_rules! problem_answers {
    ($(
        $(#[$doc:meta])*
        $name:ident = $status:literal, $description:literal $(, headers $headers:tt)?;
    )*) => {$(
        $(#[$doc])*
        #[derive(IntoResponses)]
        #[response(
            status = $status,
            description = $description,
            content_type = "application/problem+json"
            $(, headers $headers)?
        )]
        pub(crate) struct $name(ProblemDetails);
    )*};
}

problem_answers! {
    /// 400: the request does not parse into the endpoint's shape.
    BadRequest = 400, "`malformed-request`: the body is not JSON, has an unknown or missing field or a wrong type, a time is not RFC 3339, or an id does not parse";

    /// 403 on a grab: too late, or for another customer than the token's.
    GrabForbidden = 403, "`ended`: the finish time passed or the promotion was cancelled (`finishedAt`); `forbidden`: with customer tokens on, the body's `customerId` is not the token's `sub`";

    /// 401 on an admin route.
    AdminUnauthorized = 401, "`unauthorized`: no `Authorization: Bearer <admin token>`, or not the server's token",
        headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"seckill-admin\"`"));

    /// 403 on an admin route.
    AdminDisabled = 403, "`admin-disabled`: the server was started without an admin token";

    /// 401 on a customer's route, with customer tokens on.
    CustomerUnauthorized = 401, "`unauthorized`: with customer tokens on (`--customer-auth jwt`), no valid `Authorization: Bearer <JWT>`: missing, forged, expired, or of another issuer or audience",
        headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"seckill\"`"));

    /// 403 on another customer's coupons.
    OtherCustomer = 403, "`forbidden`: with customer tokens on, the path's `customerId` is not the token's `sub`";

    /// 429: over a rate limit.
    TooManyRequests = 429, "`rate-limited`: the client address or the customer sent more than its limit allows",
        headers(("Retry-After" = u32, description = "Seconds to wait before the limit admits a request"));

    /// 404: no promotion under the id.
    UnknownPromotion = 404, "`unknown-promotion`: no promotion exists under the id";

    /// 409: the promotion's state refuses the request.
    Conflict = 409, "The promotion's state refuses the request: `already-grabbed` on a grab (the held coupon is in `coupon`, so a retry is safe); `is-a-draw` on a grab of a draw (enter it; `closesAt`); `already-started` (`publishTime`), `already-finished` or `already-drawn` on a change";

    /// 409 on an entry.
    EntryConflict = 409, "`already-entered`: the customer entered already (their entry is in `entry`, so a retry is safe); `not-a-draw`: the promotion allocates first come (grab it)";

    /// 403 on an entry: too late, or for another customer than the token's.
    EntryForbidden = 403, "`entries-closed`: the draw's entries closed at `closesAt`; `ended`: the promotion was cancelled (`finishedAt`); `forbidden`: with customer tokens on, the body's `customerId` is not the token's `sub`";

    /// 410 on an entry.
    EntriesFull = 410, "`entries-full`: the draw holds 10,000,000 entries, its most";

    /// 410: the grab came too slow.
    SoldOut = 410, "`sold-out`: every coupon is taken";

    /// 413: the body is over the limit.
    PayloadTooLarge = 413, "`payload-too-large`: the body is over 16 KiB";

    /// 415: the body is not declared as JSON.
    UnsupportedMediaType = 415, "`unsupported-media-type`: the body is not declared as `application/json`";

    /// 422: a value parses but breaks its rule.
    Unprocessable = 422, "`invalid-value`: a value parses but breaks its rule; `invalid-schedule`: the times could not run a sale now";

    /// 425: the grab or entry came too early.
    NotStarted = 425, "`not-started`: grabbing (or entering) opens at `publishTime`",
        headers(("Retry-After" = String, description = "When grabbing opens, as an HTTP date"));

    /// 503: try again later, here or on another instance.
    Unavailable = 503, "`overloaded` (the promotion's queue is full), `shutting-down` or `storage-unavailable` (nothing was acknowledged), or `outcome-unknown` (the commit's answer was lost; it may have been recorded): retrying is safe",
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying"));
}
