//! The check: counts the race's answers and holds them against what the
//! query API says afterwards.

use std::collections::HashSet;

use futures::StreamExt;

use super::race::Answer;
use super::{LoadConfig, LoadError, LoadReport};
use crate::api::{CouponDto, PromotionDto};
use crate::{Client, Grab};

/// Counts the answers into `report` and records every broken promise in
/// `report.violations`.
pub(super) async fn check(
    client: &Client,
    before: &PromotionDto,
    config: &LoadConfig,
    answers: Vec<(usize, Answer)>,
    report: &mut LoadReport,
) -> Result<(), LoadError> {
    let mut won = vec![None; config.customers];
    for (index, answer) in answers {
        match answer {
            Ok(Grab::Won(coupon)) => {
                report.won += 1;
                won[index] = Some(coupon);
            }
            Ok(Grab::SoldOut) => report.sold_out += 1,
            Ok(grab) => *report.other.entry(grab.status().as_u16()).or_default() += 1,
            Err(status) => *report.other.entry(status.as_u16()).or_default() += 1,
        }
    }
    let violations = &mut report.violations;
    let expected = config.customers.min(before.remaining as usize);
    if report.won != expected {
        violations.push(format!(
            "{} grabs won, expected min({} customers, {} coupons left) = {expected}",
            report.won, config.customers, before.remaining
        ));
    }
    if !report.other.is_empty() {
        violations.push(format!("unexpected grab answers: {:?}", report.other));
    }
    let numbers: HashSet<u32> = won.iter().flatten().map(|c| c.number).collect();
    if numbers.len() != report.won {
        violations.push("two winners were told the same coupon number".into());
    }

    let after = client.promotion(before.promotion_id).await?;
    if after.remaining as usize + report.won != before.remaining as usize {
        violations.push(format!(
            "promotion says {} remaining; {} before minus {} won is {}",
            after.remaining,
            before.remaining,
            report.won,
            before.remaining as usize - report.won.min(before.remaining as usize)
        ));
    }
    if after.granted + after.remaining != after.number_of_coupons {
        violations.push(format!(
            "promotion's granted {} + remaining {} != {} coupons",
            after.granted, after.remaining, after.number_of_coupons
        ));
    }

    // Every customer's list, at the same concurrency as the race.
    let lists = futures::stream::iter(0..config.customers)
        .map(|index| async move {
            let customer = format!("{}{index}", config.customer_prefix);
            Ok::<_, LoadError>((index, client.coupons_of(&customer).await?))
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for listed in lists {
        let (index, coupons) = listed?;
        let held: Vec<&CouponDto> = coupons
            .iter()
            .filter(|c| c.promotion_id == before.promotion_id)
            .collect();
        match (&won[index], held.as_slice()) {
            (Some(told), [stored]) if *stored == told => {}
            (None, []) => {}
            (told, stored) => violations.push(format!(
                "customer {}{index} was told {:?} but holds {:?}",
                config.customer_prefix,
                told.as_ref().map(|c| c.number),
                stored.iter().map(|c| c.number).collect::<Vec<_>>()
            )),
        }
    }
    Ok(())
}
