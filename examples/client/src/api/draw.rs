//! The bodies of draws (docs/draws.md): a customer's entry, and where a
//! draw stands as `PromotionDto::draw` shows it.

use chrono::{DateTime, Utc};
use seckill_app::DrawSummary;
use seckill_domain::Entry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One customer's entry into a draw.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryDto {
    /// The promotion entered.
    pub promotion_id: Uuid,
    /// Its place in entry order, from 1; it breaks ties in the draw.
    #[schema(example = 1)]
    pub number: u32,
    /// Who entered.
    #[schema(example = "alice")]
    pub customer_id: String,
    /// When the entry was requested.
    pub entered_at: DateTime<Utc>,
}

impl From<Entry> for EntryDto {
    fn from(entry: Entry) -> Self {
        Self {
            promotion_id: *entry.promotion_id.as_uuid(),
            number: entry.number,
            customer_id: entry.customer_id.into(),
            entered_at: entry.entered_at,
        }
    }
}

/// Where a draw stands: its close, the entries so far, the commitment to
/// its secret, and after the draw the secret, from which anyone can
/// recompute the winners (docs/draws.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrawDto {
    /// When entries close and the promotion is drawn.
    pub closes_at: DateTime<Utc>,
    /// How many entered so far.
    #[schema(example = 1000)]
    pub entries: u32,
    /// SHA-256 of the secret, 64 hex digits, recorded when the promotion
    /// was created.
    #[schema(example = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925")]
    pub commitment: String,
    /// The secret, 64 hex digits, once drawn.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret: Option<String>,
}

impl From<&DrawSummary> for DrawDto {
    fn from(draw: &DrawSummary) -> Self {
        Self {
            closes_at: draw.closes_at,
            entries: draw.entries,
            commitment: draw.seal.commitment.to_string(),
            secret: draw.secret.map(|secret| secret.to_string()),
        }
    }
}
