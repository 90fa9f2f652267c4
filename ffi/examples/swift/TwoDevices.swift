// Two devices of one account through a relay: what the phone does, the laptop hears.
//
// NOT BUILT HERE: this machine has no Swift toolchain. ffi/tests/swift.rs
// checks that the Swift bindings generate and hold every type and call
// this program uses; it has not been compiled or run. The same program as
// ffi/examples/python/two_devices.py and ffi/examples/kotlin/TwoDevices.kt.
//
// Build on macOS or Linux with Swift 5.9+ (see the README):
//     ffi/scripts/generate-bindings.sh target/bindings swift
//     swiftc -I target/bindings/swift -L target/debug -ltandem_ffi \
//         -Xcc -fmodule-map-file=target/bindings/swift/tandemFFI.modulemap \
//         target/bindings/swift/tandem.swift ffi/examples/swift/TwoDevices.swift -o two-devices
//     TANDEM_RELAY=127.0.0.1:7700 TANDEM_TOKEN=t1.… ./two-devices

import Foundation

let timeoutMs: UInt64 = 20_000

/// Hands each event on: listeners run on a thread of their own.
final class Forward: EventListener, @unchecked Sendable {
    let continuation: AsyncStream<Event>.Continuation
    init(_ continuation: AsyncStream<Event>.Continuation) { self.continuation = continuation }
    func onEvent(event: Event) throws { continuation.yield(event) }
}

func device(_ folder: String, _ name: String, _ platform: Platform, relay: String, loginToken: String) throws -> OnlineDevice {
    try OnlineDevice.open(
        config: Config(store: .file(path: "\(folder)/\(name).db"), account: "alice", deviceName: name, platform: platform),
        online: OnlineConfig(relay: relay, loginToken: loginToken))
}

// Each device logs in with a login token of its own (tokens are single use).
func run(relay: String, phoneToken: String, laptopToken: String, folder: String) async throws {
    let phone = try device(folder, "phone", .ios, relay: relay, loginToken: phoneToken)
    let laptop = try device(folder, "laptop", .linux, relay: relay, loginToken: laptopToken)
    let (heard, continuation) = AsyncStream<Event>.makeStream()
    let listener = try laptop.addListener(listener: Forward(continuation))
    for d in [phone, laptop] {
        guard await d.waitStatus(until: .connected, timeoutMs: timeoutMs) != nil else {
            throw NSError(domain: "tandem.example", code: 1, userInfo: [NSLocalizedDescriptionKey: "not connected"])
        }
    }

    _ = try await phone.perform(op: .conversation(op: .pin(conversation: "u:bob")))
    let sent = try await phone.perform(op: .message(op: .send(conversation: "u:bob", body: "hi bob")))
    print("phone: pinned u:bob, sent \(sent.messageId ?? "?")")

    var events = 0
    for await event in heard {
        try await laptop.ackEvents(seq: event.seq)
        if case .connection = event.kind { continue }
        print("laptop heard: \(event.json)")
        events += 1
        if events == 2 { break }
    }
    let pinned = try await laptop.conversation(id: "u:bob")?.settings.pinned ?? false
    print("laptop: u:bob pinned = \(pinned)")

    for d in try await phone.devices() {
        print("device \(d.id) \(d.name) \(d.platform) online=\(d.online)")
    }
    try await phone.kickDevice(deviceId: laptop.deviceId())
    let kicked = await laptop.waitStatus(until: .stopped, timeoutMs: timeoutMs)
    print("laptop: stopped, \(String(describing: kicked?.stopped))")

    listener.stop()
    _ = try await laptop.shutdown()
    _ = try await phone.shutdown()
}

let environment = ProcessInfo.processInfo.environment
guard let relay = environment["TANDEM_RELAY"], let phoneToken = environment["TANDEM_PHONE_TOKEN"],
      let laptopToken = environment["TANDEM_LAPTOP_TOKEN"] else {
    FileHandle.standardError.write("set TANDEM_RELAY (host:port), TANDEM_PHONE_TOKEN and TANDEM_LAPTOP_TOKEN (two login tokens for the account alice: `tandem token` twice)\n".data(using: .utf8)!)
    exit(2)
}
let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-example-\(UUID())").path
try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: folder) }
try await run(relay: relay, phoneToken: phoneToken, laptopToken: laptopToken, folder: folder)
