//! A device's identity and credentials: its signing key (made at the first
//! open, kept, given to a device of an older build), its relay addresses,
//! its enrollment, and the warning before that expires.

mod common;

use common::*;
use tandem_engine::event::{ConnectionEvent, EventKind};
use tandem_engine::limits::{CREDENTIALS_EXPIRING_WARNING_MS, RELAYS_MAX, RELAY_ADDRESS_BYTES_MAX};
use tandem_engine::*;
use tandem_transport::auth::{verify_login_proof, ChallengeNonce};
use tandem_transport::frame::{Enrollment, Hello};
use tandem_transport::PROTOCOL_VERSION;

#[test]
fn the_first_open_draws_the_id_and_key_and_a_reopen_keeps_them() {
    let (mut device, path) = file_device(3);
    let identity = device.engine.device().clone();
    assert_eq!(identity.device_id, DeviceId([3; 16]));
    // Another seed, another key.
    let other = Device::memory(4);
    assert_ne!(other.engine.device().public_key, identity.public_key);
    device.reopen(&path);
    assert_eq!(device.engine.device(), &identity);
    // The session config signs with that key.
    let config = device.engine.session_config(Some("lt2.x".into())).unwrap();
    assert_eq!(config.key.public_key(), identity.public_key);
    assert_eq!(config.login_token.as_deref(), Some("lt2.x"));
    assert_eq!(config.device, identity.device_id);
    let hello = Hello {
        version: PROTOCOL_VERSION,
        account: identity.account.clone(),
        device: identity.device_id,
        device_name: identity.name.clone(),
        platform: identity.platform.clone(),
        login_token: None,
        resume_cursor: 0,
    };
    let nonce = ChallengeNonce([1; 32]);
    let signature = config.key.prove(&hello, &nonce);
    assert_eq!(
        verify_login_proof(&hello, &identity.public_key, &nonce, &signature),
        Ok(())
    );
}

#[test]
fn a_device_made_before_device_keys_keeps_its_data_and_gets_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let mut engine = Engine::open(file_config(&path), 0, entropy(5)).unwrap();
    engine
        .perform(1, incoming("m1", "u:bob", "bob", 1))
        .unwrap();
    let before = engine.state().unwrap();
    drop(engine);
    // What a build before device keys left: no key in the identity.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE identity SET signing_key = NULL", [])
        .unwrap();
    drop(conn);
    let engine = Engine::open(
        file_config(&path),
        0,
        Box::new(SeededEntropy::starting_with(&[0x42; 32], 1)),
    )
    .unwrap();
    assert_eq!(engine.device().device_id, DeviceId([5; 16]), "same id");
    assert_eq!(
        engine.device().public_key,
        tandem_transport::DeviceKey::from_seed(&[0x42; 32]).public_key()
    );
    assert_eq!(engine.state().unwrap(), before, "same data");
    drop(engine);
    // The key is kept from then on.
    let engine = Engine::open(file_config(&path), 0, Box::new(DrawsNothing)).unwrap();
    assert_eq!(
        engine.device().public_key,
        tandem_transport::DeviceKey::from_seed(&[0x42; 32]).public_key()
    );
}

#[test]
fn relay_addresses_are_kept_within_their_limits() {
    let mut device = Device::memory(1);
    assert!(device.engine.credentials().unwrap().relays.is_empty());
    let relays = vec!["127.0.0.1:7700".to_owned(), "relay.example:443".to_owned()];
    device.engine.set_relays(&relays).unwrap();
    assert_eq!(device.engine.credentials().unwrap().relays, relays);
    let at_max = "a".repeat(RELAY_ADDRESS_BYTES_MAX);
    device
        .engine
        .set_relays(std::slice::from_ref(&at_max))
        .unwrap();
    for bad in [
        String::new(),
        "a".repeat(RELAY_ADDRESS_BYTES_MAX + 1),
        "host :1".into(),
        "host:1\nother:2".into(),
    ] {
        assert!(matches!(
            device.engine.set_relays(&[bad]),
            Err(CredentialsError::BadRelay(_))
        ));
    }
    let many = |n: usize| (0..n).map(|i| format!("r{i}:1")).collect::<Vec<_>>();
    device.engine.set_relays(&many(RELAYS_MAX)).unwrap();
    assert!(matches!(
        device.engine.set_relays(&many(RELAYS_MAX + 1)),
        Err(CredentialsError::TooManyRelays { count }) if count == RELAYS_MAX + 1
    ));
    assert_eq!(
        device.engine.credentials().unwrap().relays,
        many(RELAYS_MAX)
    );
}

fn expiring_events(device: &Device) -> Vec<i64> {
    device
        .engine
        .events_after(0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Connection(ConnectionEvent::CredentialsExpiring { expires_at_ms }) => {
                Some(expires_at_ms)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_enrollment_is_recorded_renewed_ended_and_warned_about_once_per_expiry() {
    let mut device = Device::memory(1);
    let day = 86_400_000;
    let enrollment = Enrollment {
        token_id: [7; 16],
        enrolled_at_ms: 1_000,
        expires_at_ms: 30 * day,
    };
    // Nothing to warn about before an enrollment.
    assert_eq!(
        device.engine.check_credentials(29 * day as i64).unwrap(),
        None
    );
    device.engine.record_enrollment(&enrollment).unwrap();
    assert!(device.engine.is_enrolled_with([7; 16]).unwrap());
    assert!(!device.engine.is_enrolled_with([8; 16]).unwrap());
    let warn_at = (30 * day) as i64 - CREDENTIALS_EXPIRING_WARNING_MS;
    // Just before the warning time: nothing; at it: one event, once.
    assert_eq!(device.engine.check_credentials(warn_at - 1).unwrap(), None);
    assert!(device.engine.check_credentials(warn_at).unwrap().is_some());
    assert_eq!(device.engine.check_credentials(warn_at + 5).unwrap(), None);
    assert_eq!(expiring_events(&device), vec![(30 * day) as i64]);
    // A renewal moves the expiry (never back); the next warning is new.
    device.engine.record_renewal(60 * day).unwrap();
    device.engine.record_renewal(40 * day).unwrap();
    let e = device.engine.credentials().unwrap().enrollment.unwrap();
    assert_eq!((e.expires_at_ms, e.active), (60 * day, true));
    assert_eq!(device.engine.check_credentials(warn_at + 5).unwrap(), None);
    let warn_again = (60 * day) as i64 - CREDENTIALS_EXPIRING_WARNING_MS;
    assert!(device
        .engine
        .check_credentials(warn_again)
        .unwrap()
        .is_some());
    assert_eq!(
        expiring_events(&device),
        vec![(30 * day) as i64, (60 * day) as i64]
    );
    // Once ended (kicked…), no warnings, no renewals, and its token is no
    // longer "the one it enrolled with".
    device.engine.record_enrollment_ended().unwrap();
    assert!(!device.engine.is_enrolled_with([7; 16]).unwrap());
    device.engine.record_renewal(90 * day).unwrap();
    let e = device.engine.credentials().unwrap().enrollment.unwrap();
    assert_eq!((e.expires_at_ms, e.active), (60 * day, false));
    assert_eq!(device.engine.check_credentials(i64::MAX).unwrap(), None);
}

#[test]
fn connection_events_have_a_flat_json_form() {
    let mut device = Device::memory(1);
    let kicker = DeviceId([2; 16]);
    device
        .engine
        .record_connection_event(
            5,
            kicker,
            ConnectionEvent::KickedByDevice {
                device: kicker.to_hex(),
                name: "laptop".into(),
                platform: "macos".into(),
            },
        )
        .unwrap();
    let event = device.engine.next_event().unwrap().unwrap();
    let json = event.to_json_value();
    assert_eq!(json["category"], "connection");
    assert_eq!(json["op"], "kicked_by_device");
    assert_eq!(json["device"], kicker.to_hex());
    assert_eq!(json["name"], "laptop");
    assert_eq!(json["platform"], "macos");
    assert_eq!(json["source_device"], kicker.to_hex());
}
