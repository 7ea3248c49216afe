//! `GET /sync/{latestId}`: the original's sync feed. Other services pull the
//! coupons granted after a cursor, page by page; the cursor is the event's
//! global position, which never skips a coupon (ADR 0011).

use axum::extract::{RawQuery, State};
use axum::Json;

use seckill_client::api::SyncCouponDto;

use super::extract::ApiPath;
use super::openapi::answers::{BadRequest, TooManyRequests, Unavailable, Unprocessable};
use super::problem::{Problem, ProblemType};
use super::routes::query_problem;
use super::AppState;

/// Coupons a page holds unless `limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The most coupons one page holds.
pub(crate) const MAX_LIMIT: usize = 1_000;

/// The coupons granted after `latestId`, oldest first.
#[utoipa::path(
    get,
    path = "/sync/{latestId}",
    tag = "query",
    params(
        ("latestId" = u64, Path, description = "The last `id` already seen; 0 for the beginning", minimum = 0),
        ("limit" = Option<u64>, Query, description = "Most coupons in the page (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Up to `limit` coupons granted after `latestId`, oldest first; `[]` when there is none yet", body = Vec<SyncCouponDto>),
        BadRequest, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub(super) async fn sync(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<SyncCouponDto>>, Problem> {
    // Positions are PostgreSQL `bigint`s, and the document says int64.
    let after: u64 = raw
        .parse()
        .ok()
        .filter(|after| i64::try_from(*after).is_ok())
        .ok_or_else(|| {
            Problem::new(
                ProblemType::MalformedRequest,
                format!(
                    "latestId {raw:?} is not a whole number from 0 to {}",
                    i64::MAX
                ),
            )
        })?;
    let limit = limit(query.as_deref())?;
    let coupons = state
        .shared
        .seckill
        .coupons_after(after, limit)
        .await
        .map_err(query_problem)?;
    Ok(Json(
        coupons
            .into_iter()
            .map(|(id, coupon)| SyncCouponDto {
                id,
                customer_id: coupon.customer_id.into(),
                promotion_id: *coupon.promotion_id.as_uuid(),
                time: coupon.grabbed_at,
                discount: coupon.discount.get(),
                number: coupon.number,
            })
            .collect(),
    ))
}

/// The `limit` of a query string: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] if absent.
fn limit(query: Option<&str>) -> Result<usize, Problem> {
    let raw = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="));
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(Problem::new(
            ProblemType::InvalidValue,
            format!("limit {raw:?} must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_refuse_out_of_range() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some("limit=1")).unwrap(), 1);
        assert_eq!(limit(Some("x=2&limit=1000")).unwrap(), 1000);
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten", "limit="] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
