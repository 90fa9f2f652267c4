//! `tandem relay --listen-ws` and devices that sync over it: one device
//! process on the relay's WebSocket listener, one on its TCP listener, the
//! same state in the end; the addresses a device cannot use are refused
//! with words that say why.

mod common;

use common::*;

#[test]
fn a_device_on_websocket_and_one_on_tcp_converge_through_a_relay_process() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, tcp, ws) = start_relay_ws(dir.path());
    assert!(ws.starts_with("ws://127.0.0.1:"), "{ws}");
    assert_ne!(ws.trim_start_matches("ws://"), tcp, "two listeners");
    let secret = dir.path().join("relay.secret");
    let secret = secret.to_str().unwrap();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    tandem(&[
        "--data",
        a,
        "--account",
        "alice",
        "--name",
        "phone",
        "pin",
        "u:bob",
    ]);
    tandem(&[
        "--data",
        b,
        "--account",
        "alice",
        "--name",
        "laptop",
        "contact",
        "block",
        "eve",
    ]);
    // A over WebSocket (with a path: any path is served), B over TCP.
    let ws_with_path = format!("{ws}/tandem");
    let token_a = login_token(secret, "alice");
    let token_b = login_token(secret, "alice");
    tandem(&[
        "--data",
        a,
        "--relay",
        &ws_with_path,
        "--token",
        &token_a,
        "sync",
    ]);
    tandem(&["--data", b, "--relay", &tcp, "--token", &token_b, "sync"]);
    // The file keeps the WebSocket address: the next sync needs no flag.
    tandem(&["--data", a, "sync"]);
    let state_a = tandem(&["--data", a, "state", "--json"]);
    let state_b = tandem(&["--data", b, "state", "--json"]);
    assert_eq!(state_a, state_b);
    let state: serde_json::Value = serde_json::from_str(&state_a).unwrap();
    assert_eq!(state["blocklist"][0]["user"], "eve");
    // The device list, over WebSocket.
    let devices = tandem(&["--data", a, "devices"]);
    assert_eq!(devices.lines().count(), 2, "{devices}");
}

#[test]
fn addresses_a_device_cannot_use_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.db");
    let a = a.to_str().unwrap();
    for (relay, says) in [
        (
            "wss://relay.example:443",
            "wss:// (WebSocket over TLS) is not supported",
        ),
        ("http://relay.example:80", "unknown scheme \"http\""),
        ("ws://relay.example:0", "needs a port"),
    ] {
        let error = tandem_fails(&["--data", a, "--account", "alice", "--relay", relay, "sync"]);
        assert!(error.contains(says), "{relay}: {error}");
    }
    // The operator's tool speaks TCP only, and says so.
    let error = tandem_fails(&[
        "--relay",
        "ws://127.0.0.1:7701",
        "--account",
        "alice",
        "admin",
        "--secret-file",
        "missing",
        "devices",
    ]);
    assert!(error.contains("TCP listener"), "{error}");
}
