//! Schema compatibility with postgres-es: its own repository reads what we
//! append, and we read what cqrs-es writes through it.

mod common;

use common::{created, new_id, opens, Writer};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateContext as _, CqrsFramework, EventStore as _};
use postgres_es::PostgresEventRepository;
use seckill_app::EventStore;
use seckill_domain::{CustomerId, Promotion, PromotionCommand};
use seckill_postgres::testing::PgFixture;

#[tokio::test]
async fn postgres_es_reads_the_events_we_append() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut writer = Writer::create(store, 10).await;
    let id = writer.id;
    writer.append_grabs(store, "a", 3).await;

    let repo = PostgresEventRepository::new(store.pool().clone());
    let theirs = PersistedEventStore::<_, Promotion>::new_event_store(repo)
        .with_upcasters(seckill_postgres::upcasters());
    let envelopes = theirs.load_events(&id.to_string()).await.unwrap();
    let ours = store.load_events(id, 0).await.unwrap();
    assert_eq!(envelopes.len(), 4);
    for (n, (envelope, event)) in envelopes.iter().zip(&ours).enumerate() {
        assert_eq!(envelope.sequence, n + 1);
        assert_eq!(envelope.aggregate_id, id.to_string());
        assert_eq!(&envelope.payload, event);
    }
    let mut context = theirs.load_aggregate(&id.to_string()).await.unwrap();
    assert_eq!(*context.aggregate(), writer.state);
}

#[tokio::test]
async fn we_read_and_continue_a_stream_that_cqrs_es_wrote_through_postgres_es() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let id = new_id();
    let cqrs = CqrsFramework::new(
        PersistedEventStore::<_, Promotion>::new_event_store(PostgresEventRepository::new(
            store.pool().clone(),
        )),
        vec![],
        (),
    );
    let created = created(id, 10);
    let seckill_domain::PromotionEvent::PromotionCreated { terms, .. } = created.clone() else {
        unreachable!()
    };
    cqrs.execute(
        &id.to_string(),
        PromotionCommand::CreatePromotion {
            promotion_id: id,
            at: terms.publish_time(),
            terms,
            seal: None,
        },
    )
    .await
    .unwrap();
    let alice = CustomerId::parse("alice").unwrap();
    cqrs.execute(
        &id.to_string(),
        PromotionCommand::GrabCoupon {
            customer_id: alice,
            at: opens(),
        },
    )
    .await
    .unwrap();

    let events = store.load_events(id, 0).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], created);
    // Our appends carry on after its sequence numbers.
    let mut writer = Writer::new(id);
    writer.commit(events);
    writer.append_grabs(store, "b", 1).await;
    assert_eq!(store.load_events(id, 2).await.unwrap().len(), 1);
}

#[tokio::test]
async fn migrating_adopts_a_database_that_postgres_es_created() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut writer = Writer::create(store, 10).await;
    let id = writer.id;
    // Back to what postgres-es's db/init.sql leaves: its two tables, no
    // migration history, no projections.
    sqlx::raw_sql(
        "DROP TABLE coupons, promotion_summaries, replicas, promotion_owners, subscriptions, \
         seckill_draw_key, _sqlx_migrations",
    )
    .execute(store.pool())
    .await
    .unwrap();

    let reopened = fixture.open().await; // connecting migrates
    assert_eq!(reopened.load_events(id, 0).await.unwrap().len(), 1);
    reopened
        .append(&writer.commit(writer.grabs("a", 1)))
        .await
        .unwrap();
}
