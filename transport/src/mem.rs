//! A deterministic in-memory link between a [`ClientSession`] and a relay,
//! for tests and simulations that step everything by hand.
//!
//! Nothing here runs by itself: the simulation decides when bytes move, so
//! one seed reproduces one run. Each direction is an ordered queue of whole
//! frames (as `poll_transmit` produced them), so a simulation can also drop,
//! duplicate or hold back individual frames.

use std::collections::VecDeque;

use crate::client::ClientSession;

/// Two queues of frame buffers, one per direction, and whether the link is
/// up.
#[derive(Debug, Default)]
pub struct MemLink {
    /// Frames written by the client and not yet taken by the relay.
    pub to_relay: VecDeque<Vec<u8>>,
    /// Frames written by the relay and not yet delivered to the client.
    pub to_client: VecDeque<Vec<u8>>,
    severed: bool,
}

impl MemLink {
    /// An empty, connected link.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves everything the session wants to send into `to_relay`; returns
    /// how many frames moved.
    pub fn send_from_client(&mut self, session: &mut ClientSession) -> usize {
        let mut moved = 0;
        while let Some(bytes) = session.poll_transmit() {
            if !self.severed {
                self.to_relay.push_back(bytes);
            }
            moved += 1;
        }
        moved
    }

    /// Feeds every frame in `to_client` to the session at `now_ms`; tells it
    /// the connection ended if the link was severed. Returns how many frames
    /// were delivered.
    pub fn deliver_to_client(&mut self, session: &mut ClientSession, now_ms: u64) -> usize {
        let mut delivered = 0;
        while let Some(bytes) = self.to_client.pop_front() {
            session.handle_bytes(&bytes, now_ms);
            delivered += 1;
        }
        if self.severed {
            session.handle_transport_closed();
        }
        delivered
    }

    /// Takes the next frame the relay should read.
    pub fn take_for_relay(&mut self) -> Option<Vec<u8>> {
        self.to_relay.pop_front()
    }

    /// Queues bytes the relay wrote for the client.
    pub fn send_to_client(&mut self, bytes: Vec<u8>) {
        if !self.severed {
            self.to_client.push_back(bytes);
        }
    }

    /// Cuts the link: queued frames are lost, later ones vanish, and the
    /// client learns of it on its next delivery.
    pub fn sever(&mut self) {
        self.severed = true;
        self.to_relay.clear();
        self.to_client.clear();
    }

    /// Whether [`MemLink::sever`] was called.
    pub fn is_severed(&self) -> bool {
        self.severed
    }
}
