//! `PgOwnership` against a real PostgreSQL: one owner per promotion whoever
//! asks, promotions spread over the live replicas, a lapsed or departed
//! owner's promotions claimed by the others with a new epoch.

use std::collections::HashMap;
use std::time::Duration;

use seckill_app::cluster::{Claim, Ownership, Replica, ReplicaId};
use seckill_domain::PromotionId;
use seckill_postgres::testing::{options, PgFixture};
use seckill_postgres::{PgOwnership, PgStore};

/// Long enough that no lease lapses by itself while a test runs.
const LONG: Duration = Duration::from_secs(60);

fn replica(fixture: &PgFixture, name: &str, lease: Duration) -> PgOwnership {
    replica_on(fixture.pg_store(), name, lease)
}

fn replica_on(store: &PgStore, name: &str, lease: Duration) -> PgOwnership {
    let replica = Replica {
        id: ReplicaId::random(),
        address: format!("http://{name}.invalid"),
    };
    PgOwnership::new(store, replica, lease)
}

/// Three replicas that have all joined.
async fn three_live_replicas(fixture: &PgFixture) -> Vec<PgOwnership> {
    let replicas: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| replica(fixture, name, LONG))
        .collect();
    for replica in &replicas {
        replica.heartbeat().await.unwrap();
    }
    replicas
}

fn new_promotion() -> PromotionId {
    PromotionId::from_uuid(uuid::Uuid::new_v4())
}

/// The owner a claim names, from any replica's point of view.
fn owner_id(asker: &PgOwnership, claim: &Claim) -> ReplicaId {
    match claim {
        Claim::Owned { .. } => asker.replica().id,
        Claim::OwnedBy { owner, .. } => owner.id,
        other => panic!("unexpected claim {other:?}"),
    }
}

/// This replica's claim in tenure `epoch`.
const fn owned(epoch: u64, taken_over: bool) -> Claim {
    Claim::Owned { epoch, taken_over }
}

fn epoch(claim: &Claim) -> u64 {
    match claim {
        Claim::Owned { epoch, .. } | Claim::OwnedBy { epoch, .. } => *epoch,
        other => panic!("unexpected claim {other:?}"),
    }
}

#[tokio::test]
async fn a_lone_replica_owns_what_it_claims() {
    let fixture = PgFixture::new().await;
    let alone = replica(&fixture, "alone", LONG);
    let live = alone.heartbeat().await.unwrap();
    assert_eq!(live, vec![alone.replica().clone()]);

    let promotion = new_promotion();
    assert_eq!(alone.claim(promotion).await.unwrap(), owned(1, false));
    // Claiming again changes nothing.
    assert_eq!(alone.claim(promotion).await.unwrap(), owned(1, false));
}

#[tokio::test]
async fn every_replica_names_the_same_owner_with_its_address() {
    let fixture = PgFixture::new().await;
    let replicas = three_live_replicas(&fixture).await;
    for _ in 0..20 {
        let promotion = new_promotion();
        // All three claim at once.
        let claims = futures::future::join_all(replicas.iter().map(|r| r.claim(promotion))).await;
        let owners: Vec<_> = replicas
            .iter()
            .zip(&claims)
            .map(|(asker, claim)| owner_id(asker, claim.as_ref().unwrap()))
            .collect();
        assert!(owners.iter().all(|o| *o == owners[0]), "{owners:?}");
        let owner = replicas
            .iter()
            .find(|r| r.replica().id == owners[0])
            .unwrap();
        for (asker, claim) in replicas.iter().zip(&claims) {
            match claim.as_ref().unwrap() {
                Claim::Owned { epoch, .. } => {
                    assert_eq!(asker.replica().id, owner.replica().id);
                    assert_eq!(*epoch, 1);
                }
                Claim::OwnedBy {
                    owner: named,
                    epoch,
                } => {
                    assert_eq!(named, owner.replica());
                    assert_eq!(*epoch, 1);
                }
                other => panic!("unexpected claim {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn promotions_spread_over_the_live_replicas() {
    let fixture = PgFixture::new().await;
    let replicas = three_live_replicas(&fixture).await;
    let mut owned: HashMap<ReplicaId, usize> = HashMap::new();
    // Always asked through the first replica, as a client stuck to one
    // replica would: the choice must not favour the asker.
    let asker = &replicas[0];
    for _ in 0..300 {
        let claim = asker.claim(new_promotion()).await.unwrap();
        *owned.entry(owner_id(asker, &claim)).or_default() += 1;
    }
    for replica in &replicas {
        let share = owned
            .get(&replica.replica().id)
            .copied()
            .unwrap_or_default();
        // 100 expected each; 60 is over five standard deviations below.
        assert!(share >= 60, "{owned:?}");
    }
}

#[tokio::test]
async fn a_lapsed_owner_is_replaced_and_the_epoch_grows() {
    let fixture = PgFixture::new().await;
    // Alive on a long lease while the test sets up, however slow the
    // machine: a 300 ms one could lapse before `short` owns anything.
    let short = replica(&fixture, "short", LONG);
    let survivor = replica(&fixture, "survivor", LONG);
    short.heartbeat().await.unwrap();
    survivor.heartbeat().await.unwrap();

    // A promotion the short-lived replica owns.
    let promotion = loop {
        let promotion = new_promotion();
        if short.claim(promotion).await.unwrap()
            == (Claim::Owned {
                epoch: 1,
                taken_over: false,
            })
        {
            break promotion;
        }
    };
    let claim = survivor.claim(promotion).await.unwrap();
    assert_eq!(owner_id(&survivor, &claim), short.replica().id);

    // Its last heartbeat asks for 1 s, then it stops renewing (a kill -9, a
    // hung process): once that lease lapses the promotion goes to the live
    // replica, in a new tenure. The heartbeat's pool waits a third of the
    // lease for a connection, which a stalled machine can miss: nothing is
    // written then, so it is simply sent again.
    let lapsing = Duration::from_secs(1);
    let last_heartbeat = PgOwnership::new(fixture.pg_store(), short.replica().clone(), lapsing);
    let mut tries = 0;
    while let Err(error) = last_heartbeat.heartbeat().await {
        tries += 1;
        assert!(tries < 20, "{error}");
    }
    tokio::time::sleep(lapsing * 2).await;
    assert_eq!(survivor.claim(promotion).await.unwrap(), owned(2, true));
    // Asking again is no second takeover.
    assert_eq!(survivor.claim(promotion).await.unwrap(), owned(2, false));
    let live = survivor.heartbeat().await.unwrap();
    assert_eq!(live, vec![survivor.replica().clone()]);

    // Back from the dead, the old owner learns it lost the promotion.
    short.heartbeat().await.unwrap();
    let claim = short.claim(promotion).await.unwrap();
    assert_eq!(owner_id(&short, &claim), survivor.replica().id);
    assert_eq!(epoch(&claim), 2);
}

#[tokio::test]
async fn a_leaving_replica_hands_its_promotions_over_at_once() {
    let fixture = PgFixture::new().await;
    let leaving = replica(&fixture, "leaving", LONG);
    let staying = replica(&fixture, "staying", LONG);
    leaving.heartbeat().await.unwrap();
    staying.heartbeat().await.unwrap();
    let mine: Vec<_> = {
        let mut mine = Vec::new();
        while mine.len() < 5 {
            let promotion = new_promotion();
            if let Claim::Owned { .. } = leaving.claim(promotion).await.unwrap() {
                mine.push(promotion);
            }
        }
        mine
    };

    leaving.leave().await.unwrap();
    // No waiting for the 60 s lease: the next claim finds no live owner.
    for promotion in mine {
        assert!(matches!(
            staying.claim(promotion).await.unwrap(),
            Claim::Owned { .. }
        ));
    }
    assert_eq!(
        staying.heartbeat().await.unwrap(),
        vec![staying.replica().clone()]
    );
}

/// An embedder that forwards nothing itself gets a typed answer naming the
/// owner, and the owner sells.
#[tokio::test]
async fn a_replica_without_forwarding_answers_not_owner_naming_the_owner() {
    use std::sync::Arc;

    use seckill_app::testing::FixedClock;
    use seckill_app::{SecKill, SecKillError};
    use seckill_domain::testing::{customer, opens, terms};

    let fixture = PgFixture::new().await;
    let services: Vec<(SecKill, Replica)> = ["a", "b"]
        .iter()
        .map(|name| {
            let ownership = replica(&fixture, name, LONG);
            let me = ownership.replica().clone();
            let store = Arc::new(fixture.pg_store().clone());
            // A minute into the test promotions' sale.
            let clock = Arc::new(FixedClock::new(opens() + chrono::Duration::minutes(1)));
            let seckill = SecKill::builder(store)
                .clock(clock)
                .replicated(Arc::new(ownership), None)
                .build()
                .expect("a replicated service inside a runtime");
            (seckill, me)
        })
        .collect();
    // Both join before the first claim, so the promotion goes to its
    // preferred replica, whichever is asked.
    for (seckill, _) in &services {
        let _ = seckill.ready().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let promotion = new_promotion();
    let (first, _) = &services[0];
    let owner = match first.create_promotion_with_id(promotion, terms(5)).await {
        Ok(_) => 0,
        Err(SecKillError::NotOwner {
            owner,
            promotion_id,
        }) => {
            assert_eq!(promotion_id, promotion);
            assert_eq!(owner, services[1].1);
            services[1]
                .0
                .create_promotion_with_id(promotion, terms(5))
                .await
                .expect("the owner creates it");
            1
        }
        Err(other) => panic!("unexpected {other}"),
    };
    let (other, _) = &services[1 - owner];
    match other.grab(promotion, customer("alice")).await {
        Err(SecKillError::NotOwner { owner: named, .. }) => assert_eq!(named, services[owner].1),
        answer => panic!("the non-owner answered {answer:?}"),
    }
    let coupon = services[owner]
        .0
        .grab(promotion, customer("alice"))
        .await
        .expect("the owner sells");
    assert_eq!(coupon.number, 1);
}

/// Among replicas only a promotion's owner records its expiry: both
/// replicas' timers see every promotion come due (the owner from its own
/// commits, the other from the announcements), and each promotion is
/// expired once, by the replica that owns it.
#[tokio::test]
async fn only_the_owner_records_an_expiry() {
    use std::sync::Arc;

    use seckill_app::testing::FixedClock;
    use seckill_app::{SecKill, SecKillError};
    use seckill_domain::testing::{closes, opens, terms};
    use seckill_domain::{FinishReason, PromotionEvent};

    let fixture = PgFixture::new().await;
    let clock = Arc::new(FixedClock::new(opens() + chrono::Duration::minutes(1)));
    let services: Vec<(SecKill, Replica)> = ["a", "b"]
        .iter()
        .map(|name| {
            let ownership = replica(&fixture, name, LONG);
            let me = ownership.replica().clone();
            let seckill = SecKill::builder(Arc::new(fixture.pg_store().clone()))
                .clock(clock.clone())
                .replicated(Arc::new(ownership), None)
                .build()
                .expect("a replicated service inside a runtime");
            (seckill, me)
        })
        .collect();
    for (seckill, _) in &services {
        let _ = seckill.ready().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Each promotion created by its owner; `owned[i]` counts replica i's.
    let mut owned = [0u64; 2];
    let mut promotions = Vec::new();
    for _ in 0..8 {
        let promotion = new_promotion();
        let owner = match services[0]
            .0
            .create_promotion_with_id(promotion, terms(5))
            .await
        {
            Ok(_) => 0,
            Err(SecKillError::NotOwner { .. }) => {
                services[1]
                    .0
                    .create_promotion_with_id(promotion, terms(5))
                    .await
                    .expect("the owner creates it");
                1
            }
            Err(other) => panic!("unexpected {other}"),
        };
        owned[owner] += 1;
        promotions.push(promotion);
    }

    clock.set(closes());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reader = &services[0].0;
    for &promotion in &promotions {
        while reader
            .promotion(promotion)
            .await
            .unwrap()
            .summary
            .finish_reason
            .is_none()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{promotion} not expired"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Read the feed until every expiry is in it.
    let expiries = loop {
        let feed = reader.events_after(0, 1_000).await.unwrap();
        let expiries: Vec<usize> = promotions
            .iter()
            .map(|&promotion| {
                feed.iter()
                    .filter(|e| {
                        e.promotion_id == promotion
                            && matches!(
                                e.event,
                                PromotionEvent::PromotionFinished {
                                    reason: FinishReason::Expired,
                                    ..
                                }
                            )
                    })
                    .count()
            })
            .collect();
        if expiries.iter().all(|&n| n >= 1) {
            break expiries;
        }
        assert!(std::time::Instant::now() < deadline, "feed: {expiries:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(expiries, vec![1; promotions.len()], "each expired once");
    // A replica counts an expiry once its command has returned, a moment
    // after the event is in the store: wait for the counts to add up.
    let recorded = loop {
        let recorded: Vec<u64> = services
            .iter()
            .map(|(seckill, _)| seckill.stats().expired_promotions)
            .collect();
        if recorded.iter().sum::<u64>() >= promotions.len() as u64
            || std::time::Instant::now() > deadline
        {
            break recorded;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(recorded, owned, "each replica expired exactly what it owns");
}

/// NOTIFY channels are per database: a SecKill in another schema of it hears
/// our announcements, and must drop them (ADR 0014), or its live feeds would
/// show our promotions.
#[tokio::test]
async fn announcements_reach_only_replicas_of_the_same_schema() {
    use cqrs_es::Aggregate;
    use seckill_app::PromotionSummary;
    use seckill_domain::testing::created;
    use seckill_domain::Promotion;

    let summary = || {
        let id = new_promotion();
        let mut promotion = Promotion::default();
        promotion.apply(created(id, 5));
        PromotionSummary::of(&promotion, 1).unwrap()
    };
    let fixture = PgFixture::new().await;
    let elsewhere = PgStore::connect_with(fixture.url(), options().with_schema("elsewhere"))
        .await
        .unwrap();
    let listener = replica(&fixture, "listener", LONG);
    let mut heard = listener.listen().await.unwrap().unwrap();
    let (foreign, ours) = (summary(), summary());
    replica_on(&elsewhere, "neighbour", LONG)
        .announce(std::slice::from_ref(&foreign))
        .await
        .unwrap();
    replica(&fixture, "colleague", LONG)
        .announce(std::slice::from_ref(&ours))
        .await
        .unwrap();
    // Notifications arrive in commit order: had the foreign one got
    // through, it would be first.
    let first = heard.recv().await.unwrap();
    assert_eq!(first.promotion_id, ours.promotion_id);
}
