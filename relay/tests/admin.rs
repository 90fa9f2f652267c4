//! The operator's commands against a running relay, over its normal
//! listener: devices, kick, revoke-all, ban, unban, remove.

mod common;

use common::*;
use tandem_relay::admin::{AdminClient, AdminError};
use tandem_relay::secret::Secret;
use tandem_relay::StoreLocation;
use tandem_transport::frame::{AdminReply, AdminRequest};
use tandem_transport::{EnrollmentState, ErrorCode, OfflineReason, SessionEvent};

async fn kicked(conn: &mut Conn) -> OfflineReason {
    expect(conn, |e| match e {
        SessionEvent::Kicked(reason) => Some(reason.clone()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_kicks_and_revokes_everything_while_devices_are_online() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut a = login(&relay, "alice", 1).await;
    let mut b = login(&relay, "alice", 2).await;
    let mut c = login(&relay, "alice", 3).await;
    let mut bob = login(&relay, "bob", 1).await;
    let mut admin = relay.admin().await.expect("an operator's connection");
    let AdminReply::Devices { devices } = admin
        .request(AdminRequest::Devices {
            account: account("alice"),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(devices.iter().filter(|d| d.online).count(), 3);
    // One device: revoked by the operator, told at once.
    let reply = admin
        .request(AdminRequest::Kick {
            account: account("alice"),
            device: device(3),
        })
        .await
        .unwrap();
    assert_eq!(
        reply,
        AdminReply::Done {
            devices_revoked: 1,
            connections_closed: 1
        }
    );
    assert_eq!(kicked(&mut c).await, OfflineReason::RevokedByOperator);
    expect(&mut a, |e| {
        matches!(e, SessionEvent::DeviceListChanged).then_some(())
    })
    .await;
    // An unknown device is refused, and the connection goes on.
    match admin
        .request(AdminRequest::Kick {
            account: account("alice"),
            device: device(77),
        })
        .await
    {
        Err(AdminError::Refused {
            code: ErrorCode::NotFound,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Every credential of the account (a password change), while online.
    let reply = admin
        .request(AdminRequest::RevokeAll {
            account: account("alice"),
        })
        .await
        .unwrap();
    assert_eq!(
        reply,
        AdminReply::Done {
            devices_revoked: 2,
            connections_closed: 2
        }
    );
    for device in [&mut a, &mut b] {
        assert_eq!(kicked(device).await, OfflineReason::AllCredentialsRevoked);
    }
    for n in [1, 2] {
        let refusal = refusal(&relay, device_config("alice", n)).await;
        assert_eq!(
            (refusal.code, refusal.reason),
            (
                ErrorCode::CredentialsRevoked,
                Some(OfflineReason::AllCredentialsRevoked)
            )
        );
    }
    let AdminReply::Devices { devices } = admin
        .request(AdminRequest::Devices {
            account: account("alice"),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(devices
        .iter()
        .all(|d| !d.online && matches!(d.enrollment, EnrollmentState::Revoked { .. })));
    // Bob was never touched; alice's devices log in with new tokens.
    round_trip(&mut bob).await;
    drop(login(&relay, "alice", 1).await);
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_needs_the_relays_secret() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut good = login(&relay, "alice", 1).await;
    match AdminClient::connect(relay.addr, &Secret::from_bytes([0; 32])).await {
        Err(AdminError::Refused {
            code: ErrorCode::BadProof,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    round_trip(&mut good).await;
    // Removing an account the relay never saw works, and refuses it since.
    let mut admin = relay.admin().await.unwrap();
    admin
        .request(AdminRequest::Remove {
            account: account("carol"),
        })
        .await
        .unwrap();
    match admin
        .request(AdminRequest::Unban {
            account: account("carol"),
        })
        .await
    {
        Err(AdminError::Refused {
            code: ErrorCode::InvalidRequest,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refused(
            &relay,
            client_config("carol", 1, relay.token(&account("carol")))
        )
        .await,
        ErrorCode::AccountRemoved
    );
    relay.stop().await.expect("the relay stops");
}
