//! What commands answer and how callers follow a promotion: typed replies
//! (the promotion as it stands after an admin command, the coupon after a
//! grab), the per-promotion watch, and errors that name their code and say
//! whether a retry may help.

use super::*;

/// Create, update and cancel answer with the promotion as each left it, the
/// same view a read gives, with no second call.
pub async fn admin_commands_answer_with_the_promotion_as_it_stands(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, clock) = service(store.clone());
    clock.set(opens() - Duration::minutes(10));

    let created = seckill.create_promotion(terms(3)).await.unwrap();
    let id = created.id();
    assert_eq!(created.status, PromotionStatus::Upcoming);
    assert_eq!(
        (created.summary.number_of_coupons, created.summary.remaining),
        (3, 3)
    );
    assert_eq!(created, seckill.promotion(id).await.unwrap());

    let renamed = renamed_terms();
    let updated = seckill.update_promotion(id, renamed).await.unwrap();
    assert_eq!(updated.summary.name.as_deref(), Some("Singles' Day"));
    assert_eq!(
        (updated.summary.number_of_coupons, updated.summary.discount),
        (5, 0.5)
    );
    assert_eq!(updated, seckill.promotion(id).await.unwrap());

    clock.set(opens() + Duration::seconds(1));
    seckill.grab(id, customer("ann")).await.unwrap();
    let cancelled = seckill.cancel_promotion(id).await.unwrap();
    assert_eq!(cancelled.status, PromotionStatus::Cancelled);
    assert_eq!(cancelled.summary.remaining, 4);
    assert_eq!(cancelled, seckill.promotion(id).await.unwrap());
    assert_consistent(&store, id).await;
}

/// A promotion's watch holds its latest summary: it starts at the stored
/// one, follows every commit, and a reader that looks only at the end sees
/// the newest, never an older one. An unknown promotion is `NotFound`.
pub async fn a_promotion_watch_holds_its_latest_summary(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let id = seckill.create_promotion(terms(10)).await.unwrap().id();
    let other = seckill.create_promotion(terms(10)).await.unwrap().id();
    let mut watch = seckill.watch_promotion(id).await.unwrap();
    assert_eq!(watch.borrow_and_update().remaining, 10);

    for i in 0..4 {
        seckill.grab(id, customer(format!("c{i}"))).await.unwrap();
    }
    // Another promotion's commits never reach this watch.
    seckill.grab(other, customer("elsewhere")).await.unwrap();
    let latest = tokio::time::timeout(
        StdDuration::from_secs(10),
        watch.wait_for(|summary| summary.remaining == 6),
    )
    .await
    .expect("the watch reaches the last commit")
    .unwrap()
    .clone();
    assert_eq!(latest.promotion_id, id);
    assert_eq!(latest.last_sequence, 5);

    let unknown = PromotionId::from_uuid(uuid::Uuid::new_v4());
    assert!(matches!(
        seckill.watch_promotion(unknown).await,
        Err(SecKillError::NotFound(id)) if id == unknown
    ));
}

/// Each error names a stable code (the HTTP problem type's slug) and says
/// whether sending the same command again may succeed.
pub async fn errors_name_their_code_and_whether_a_retry_may_help(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let unknown = PromotionId::from_uuid(uuid::Uuid::new_v4());
    let not_found = seckill.grab(unknown, customer("ann")).await.unwrap_err();
    assert_eq!(
        (not_found.code(), not_found.is_retryable()),
        ("unknown-promotion", false)
    );

    let id = seckill.create_promotion(terms(1)).await.unwrap().id();
    let coupon = seckill.grab(id, customer("ann")).await.unwrap();
    let again = seckill.grab(id, customer("ann")).await.unwrap_err();
    assert_eq!(
        (again.code(), again.is_retryable()),
        ("already-grabbed", false)
    );
    assert!(matches!(
        &again,
        SecKillError::Rejected(PromotionError::AlreadyGrabbed(held)) if **held == coupon
    ));
    let late = seckill.grab(id, customer("bob")).await.unwrap_err();
    assert_eq!((late.code(), late.is_retryable()), ("sold-out", false));
    // Errors clone, so one failure can answer many callers.
    assert_eq!(late.clone().code(), late.code());

    seckill.shutdown().await;
    let stopped = seckill.grab(id, customer("cy")).await.unwrap_err();
    assert_eq!(
        (stopped.code(), stopped.is_retryable()),
        ("shutting-down", true)
    );
}
