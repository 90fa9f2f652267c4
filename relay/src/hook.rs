//! The offline-push hook: where a deployment sends push notifications.

use tandem_transport::{AccountId, DeviceId};

/// New deltas landed in an account's log while one of its devices was
/// offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineDelta<'a> {
    /// The account.
    pub account: &'a AccountId,
    /// The offline device.
    pub device: DeviceId,
    /// The device that pushed the deltas.
    pub origin: DeviceId,
    /// How many new deltas landed.
    pub deltas_new: usize,
    /// The account's log head after them.
    pub head_seq: u64,
}

/// Called once per offline device each time a push stores new deltas.
///
/// It runs on the relay's store thread, between requests: it must return
/// quickly (hand the work to a queue of your own) or it delays every
/// account.
pub trait OfflinePushHook: Send + 'static {
    /// A delta landed for an offline device.
    fn delta_for_offline_device(&mut self, event: &OfflineDelta<'_>);

    /// Whether the hook would do anything with an event now. When it says
    /// no, the relay skips working out which devices are offline (a store
    /// read per push, two across nodes). Asked once per push; the default
    /// says yes.
    fn enabled(&self) -> bool {
        true
    }
}

/// The default hook: logs each event with `tracing` at `info` and does
/// nothing else, so it is enabled only while `info` is logged here.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOfflinePush;

impl OfflinePushHook for LogOfflinePush {
    fn enabled(&self) -> bool {
        tracing::enabled!(tracing::Level::INFO)
    }

    fn delta_for_offline_device(&mut self, event: &OfflineDelta<'_>) {
        tracing::info!(
            account = %event.account,
            device = %event.device,
            origin = %event.origin,
            deltas_new = event.deltas_new,
            head_seq = event.head_seq,
            "delta for offline device"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logging_hook_is_enabled_only_while_info_is_logged() {
        // No subscriber: nothing would be logged.
        assert!(!LogOfflinePush.enabled());
        let at = |level| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(level)
                .with_writer(std::io::sink)
                .finish();
            tracing::subscriber::with_default(subscriber, || LogOfflinePush.enabled())
        };
        assert!(at(tracing::Level::INFO));
        assert!(at(tracing::Level::DEBUG));
        assert!(!at(tracing::Level::WARN));
    }
}
