//! The Swift bindings generate: no Swift toolchain is on this machine, so this checks the generated files and that they declare what ffi/examples/swift/TwoDevices.swift uses.

mod common;

/// Declarations the Swift example (and any app) relies on, as uniffi-bindgen
/// writes them.
const SWIFT_HAS: &[&str] = &[
    "open class Engine",
    "open class OnlineDevice",
    "open class ListenerHandle",
    "public protocol EventListener",
    "func onEvent(event: Event) throws",
    "public static func `open`(config: Config, online: OnlineConfig)throws  -> OnlineDevice",
    "open func addListener(listener: EventListener)throws  -> ListenerHandle",
    "open func waitStatus(until: StatusCondition, timeoutMs: UInt64)async  -> Status?",
    "open func perform(op: Op)async throws  -> Performed",
    "open func ackEvents(seq: Int64)async throws",
    "open func conversation(id: String)async throws  -> ConversationRow?",
    "open func devices()async throws  -> [DeviceInfo]",
    "open func kickDevice(deviceId: String)async throws",
    "open func shutdown()async throws  -> Engine",
    "open func deviceId() -> String",
    "public struct Config",
    "public struct OnlineConfig",
    "public struct Event",
    "public enum EventKind",
    "public enum Op",
    "public enum ConversationOp",
    "case pin(conversation: String",
    "public enum MessageOp",
    "public enum StorePath",
    "case file(path: String",
    "public enum Platform",
    "public enum StatusCondition",
    "public enum StopReason",
    "public func limits() -> Limits",
];

/// Every error enum of the crate, each a Swift `Error` (internal: uniffi
/// 0.32 declares error enums without `public`; apps compile tandem.swift
/// into their own module).
const ERRORS: &[&str] = &[
    "ApplyError",
    "CommandError",
    "DeltaError",
    "DeviceError",
    "DocError",
    "InvalidOpError",
    "ListenerError",
    "LoadError",
    "OpError",
    "OpenError",
    "QueryError",
    "RefusedError",
    "StoreError",
    "StoreOpenError",
];

#[test]
fn swift_bindings_generate_with_the_examples_types() {
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let out = scratch.path().join("swift");
    common::generate("swift", &out);
    let read = |name: &str| {
        let text = std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|e| panic!("{name} was not generated: {e}"));
        assert!(!text.trim().is_empty(), "{name} is empty");
        text
    };
    let swift = read("tandem.swift");
    let header = read("tandemFFI.h");
    let modulemap = read("tandemFFI.modulemap");

    let missing: Vec<&str> = SWIFT_HAS
        .iter()
        .copied()
        .filter(|needle| !swift.contains(needle))
        .collect();
    assert!(missing.is_empty(), "tandem.swift lacks {missing:?}");
    for error in ERRORS {
        let declared = format!("enum {error}: Swift.Error");
        assert!(swift.contains(&declared), "tandem.swift lacks {declared:?}");
    }
    assert!(
        header.contains("uniffi_tandem_ffi_fn_constructor_onlinedevice_open"),
        "tandemFFI.h lacks the OnlineDevice constructor"
    );
    assert!(
        modulemap.contains("module tandemFFI") && modulemap.contains("tandemFFI.h"),
        "the module map does not name the header: {modulemap}"
    );

    // The example beside the bindings uses what the check above covers.
    let example = std::fs::read_to_string(
        common::crate_dir()
            .join("examples")
            .join("swift")
            .join("TwoDevices.swift"),
    )
    .expect("the Swift example");
    for call in [
        "OnlineDevice.open(",
        "addListener(listener:",
        "waitStatus(until:",
        "perform(op:",
        "ackEvents(seq:",
        "kickDevice(deviceId:",
        "shutdown()",
    ] {
        assert!(
            example.contains(call),
            "the Swift example no longer calls {call}"
        );
    }
}
