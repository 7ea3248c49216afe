//! The tests on a fresh machine: when no PostgreSQL answers where the tests
//! look for one, `PgFixture` starts a throwaway cluster from the installed
//! binaries, once per process, and the suite runs on it.

use std::time::Duration;

use seckill_postgres::testing::PgFixture;
use seckill_testkit::postgres::cluster::free_port;
use seckill_testkit::suite;

/// Starting a cluster takes seconds (initdb, pg_ctl); this bounds the test if
/// something hangs instead.
const BOUND: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throwaway_cluster_serves_when_no_server_answers() {
    let port = free_port();
    let nobody = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let run = async {
        let first = PgFixture::on_server(&nobody).await;
        let second = PgFixture::on_server(&nobody).await;
        assert!(
            !first.url().contains(&format!(":{port}/")),
            "the fixture fell back: {}",
            first.url()
        );
        let server = |url: &str| url.rsplit_once('/').map(|(server, _)| server.to_owned());
        assert_eq!(
            server(first.url()),
            server(second.url()),
            "one cluster per process, not one per fixture"
        );
        assert_ne!(
            first.url(),
            second.url(),
            "each fixture has its own database"
        );
        drop(second);
        suite::creates_updates_grabs_and_queries(first).await;
    };
    tokio::time::timeout(BOUND, run)
        .await
        .expect("the throwaway cluster served within the bound");
}
