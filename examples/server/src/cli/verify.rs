//! `seckill-server verify-draw <promotion>`: recomputes a draw from the
//! events any client can read (`GET /events` of a running server), as
//! docs/draws.md says anyone can, and says whether the coupons went to the
//! winners the committed secret gives.

use seckill_client::api::StatusDto;
use seckill_client::Client;
use seckill_domain::draw::{self, VerifiedDraw};
use seckill_domain::PromotionEvent;

use super::*;

#[derive(Debug, ClapArgs)]
pub(crate) struct VerifyDrawArgs {
    /// The promotion drawn (a UUID).
    pub(crate) promotion: uuid::Uuid,

    /// The server to read its events from.
    #[arg(long, env = "SECKILL_URL", default_value = "http://127.0.0.1:3000")]
    pub(crate) url: String,
}

/// Reads the promotion's events from the global feed and checks its draw;
/// prints the result. An error when it does not check out.
pub(crate) async fn verify_draw(args: VerifyDrawArgs) -> anyhow::Result<()> {
    // No overall timeout: the feed is one long answer, read to the draw's
    // last event. Connecting is bounded.
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let client = Client::with_http(args.url.clone(), http);
    let promotion = client
        .promotion(args.promotion)
        .await
        .context("reading the promotion")?;
    anyhow::ensure!(
        promotion.draw.is_some(),
        "promotion {} is not a draw",
        args.promotion
    );
    anyhow::ensure!(
        promotion.status == StatusDto::Drawn,
        "promotion {} has not been drawn yet: its entries close at {}",
        args.promotion,
        promotion
            .draw
            .as_ref()
            .map(|d| d.closes_at.to_rfc3339())
            .unwrap_or_default()
    );
    // The feed from its start, until this promotion's last event (its
    // finish, which a drawn promotion has).
    let mut feed = client.events(None).await.context("following /events")?;
    let mut events: Vec<PromotionEvent> = Vec::new();
    while let Some(frame) = feed.next().await.context("reading /events")? {
        if frame.data.promotion_id != args.promotion {
            continue;
        }
        let event: PromotionEvent = serde_json::from_value(frame.data.event)
            .with_context(|| format!("reading event {} of the feed", frame.id))?;
        let finished = matches!(event, PromotionEvent::PromotionFinished { .. });
        events.push(event);
        if finished {
            break;
        }
    }
    let VerifiedDraw {
        commitment,
        secret,
        entries,
        winners,
        ..
    } = draw::verify(&events).context("the draw does not check out")?;
    println!("promotion   {}", args.promotion);
    println!("commitment  {commitment}");
    println!("secret      {secret}   (its SHA-256 is the commitment)");
    println!("entries     {}", entries.len());
    println!("winners     {} (coupon 1 first)", winners.len());
    for (number, winner) in (1..).zip(&winners) {
        println!("  {number:>6}  {winner}");
    }
    println!("verified: every coupon went to the winner the committed secret gives");
    Ok(())
}
