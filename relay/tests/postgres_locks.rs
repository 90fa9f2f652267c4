//! Two relay nodes on one PostgreSQL database take account locks in one
//! order: a wave of first logins, every account with devices on both
//! nodes, connects every device without a single deadlock (each would
//! stall both nodes for PostgreSQL's `deadlock_timeout` and fail a login).

mod common;

use std::sync::Arc;

use common::*;
use tandem_relay::StoreLocation;
use tandem_storage::pg_test::TestDb;

const ACCOUNTS: u8 = 40;
const DEVICES: u8 = 4;

/// The database's deadlock count, from its statistics.
async fn deadlocks(db: &Arc<TestDb>) -> i64 {
    on_admin(db, |db| {
        let mut admin = db.admin();
        // Statistics are sent by backends when they go idle; make sure
        // this one reads the latest.
        admin
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .expect("clearing the snapshot");
        admin
            .query_one(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = $1",
                &[&db.name()],
            )
            .expect("the database's statistics")
            .get(0)
    })
    .await
}

#[test]
fn first_logins_across_two_nodes_at_once_never_deadlock() {
    with_test_db(|db| async move {
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let mut config = config(StoreLocation::Postgres(db.url().to_owned()));
            // Every device of the wave comes from 127.0.0.1.
            config.handshakes_per_address_max = config.handshakes_max;
            nodes.push(Arc::new(start(config).await));
        }
        let before = deadlocks(&db).await;
        let mut logins = Vec::new();
        for a in 0..ACCOUNTS {
            for d in 1..=DEVICES {
                // Device d of account a on node (a + d) % 2: every account
                // is new and has devices on both nodes.
                let node = nodes[usize::from((a + d) % 2)].clone();
                logins.push(tokio::spawn(async move {
                    let name = format!("acct{a}");
                    let token = node.token(&account(&name));
                    login_with(&node, client_config(&name, d, token)).await
                }));
            }
        }
        let mut conns = Vec::new();
        for login in logins {
            conns.push(login.await.expect("every login connects"));
        }
        assert_eq!(conns.len(), usize::from(ACCOUNTS) * usize::from(DEVICES));
        // Each device is served: a round trip on each.
        for conn in &mut conns {
            round_trip(conn).await;
        }
        assert_eq!(
            deadlocks(&db).await - before,
            0,
            "deadlocks between the nodes"
        );
        drop(conns);
        for node in nodes {
            Arc::into_inner(node)
                .expect("no other handle")
                .stop()
                .await
                .expect("the node stops");
        }
    });
}
