//! The frames waiting to be written to one socket, and why that socket is being closed.
//!
//! Rooms and the hub hold [`Outbox`]es (cheap clones); the socket's writer holds the
//! [`Outgoing`] end. The queue is bounded in frames and in bytes: bytes are counted when a
//! frame is queued and released when it is written (or dropped with the socket), per socket
//! and in the server's `outbound_queued_bytes` gauge, so a peer that stops reading costs the
//! server at most `outbound_queue_bytes` (or one frame, if a single frame is larger) before
//! it is closed as a slow reader.
//!
//! A socket is closed for one reason, the first one given ([`Outbox::close`], which also
//! counts it in the metrics); the writer sends it as an `Error` frame and then as the close
//! frame's code and reason.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use tandem_protocol::wire::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Why the server closes a socket: sent as `ServerMessage::Error`, then as the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// What kind of problem; also gives the close code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

/// Where a room sends frames for one socket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Bytes>,
    kill: CancellationToken,
    shared: Arc<Shared>,
}

/// The writer's end of an [`Outbox`].
#[derive(Debug)]
pub struct Outgoing {
    frames: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// The bound on `queued` (a frame into an empty queue is always taken).
    max_bytes: usize,
    metrics: Arc<Metrics>,
    fatal: OnceLock<Fatal>,
}

impl Shared {
    /// Counts `len` bytes as queued, unless the queue already holds something and this would
    /// take it beyond its bound.
    fn reserve(&self, len: usize) -> bool {
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before.saturating_add(len) > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        let gauge = &self.metrics.outbound_queued_bytes;
        let now = gauge.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        self.metrics.outbound_queued_bytes_peak.fetch_max(now, Ordering::Relaxed);
        true
    }

    fn release(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
        self.metrics.outbound_queued_bytes.fetch_sub(len as u64, Ordering::Relaxed);
    }
}

/// A queue of at most `max_frames` frames and `max_bytes` bytes for one socket.
pub fn outbox(max_frames: usize, max_bytes: usize, metrics: Arc<Metrics>) -> (Outbox, Outgoing) {
    let (tx, rx) = mpsc::channel(max_frames.max(1));
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        max_bytes,
        metrics,
        fatal: OnceLock::new(),
    });
    let outbox = Outbox { frames: tx, kill: CancellationToken::new(), shared: shared.clone() };
    (outbox, Outgoing { frames: rx, shared })
}

impl Outbox {
    /// Queues a message; a full queue (a slow reader) closes the socket instead. False when
    /// the socket is being closed.
    pub fn send(&self, message: &ServerMessage) -> bool {
        self.send_frame(Bytes::from(message.encode()))
    }

    /// Queues an encoded message; a full queue (a slow reader) closes the socket instead.
    /// False when the socket is being closed.
    pub fn send_frame(&self, frame: Bytes) -> bool {
        if self.kill.is_cancelled() {
            return false;
        }
        let len = frame.len();
        if !self.shared.reserve(len) {
            self.slow_reader();
            return false;
        }
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.release(len);
                self.slow_reader();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.release(len);
                self.kill.cancel();
                false
            }
        }
    }

    fn slow_reader(&self) {
        self.close(ErrorCode::SlowReader, "You read too slowly and fell too far behind.");
    }

    /// Closes the socket for `code`: the writer sends what was queued (all of it unless the
    /// reason is a slow reader), then the error, then the close frame. The first reason given
    /// is the one sent.
    pub fn close(&self, code: ErrorCode, message: impl Into<String>) {
        if self.shared.fatal.set(Fatal { code, message: message.into() }).is_ok() {
            let metrics = &self.shared.metrics;
            match code {
                ErrorCode::SlowReader => metrics.slow_readers_closed.increment(1),
                ErrorCode::RateLimited => metrics.rate_limited_closed.increment(1),
                ErrorCode::HelloTimeout => metrics.handshake_timeouts.increment(1),
                _ => {}
            }
        }
        self.kill.cancel();
    }

    /// Closes the socket with no error to report (the client left or closed it).
    pub fn hang_up(&self) {
        self.kill.cancel();
    }

    /// Whether the socket is being closed.
    pub fn is_closing(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// Resolves once the socket is being closed.
    pub async fn closing(&self) {
        self.kill.cancelled().await;
    }

    /// Why the socket is being closed, once a reason was given.
    pub fn fatal(&self) -> Option<&Fatal> {
        self.shared.fatal.get()
    }
}

impl Outgoing {
    /// The next frame; its bytes stay counted until [`Outgoing::written`].
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.frames.recv().await
    }

    /// The next frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.frames.try_recv().ok()
    }

    /// A frame of `len` bytes was written (or given up): its bytes are no longer queued.
    pub fn written(&self, len: usize) {
        self.shared.release(len);
    }

    /// Why the socket is being closed, once a reason was given.
    pub fn fatal(&self) -> Option<&Fatal> {
        self.shared.fatal.get()
    }

    /// Refuses further frames and drops (and releases) those still queued.
    pub fn discard(&mut self) {
        self.frames.close();
        while let Ok(frame) = self.frames.try_recv() {
            self.shared.release(frame.len());
        }
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    #[test]
    fn bytes_are_counted_when_queued_and_released_when_written() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, mut outgoing) = outbox(100, 1000, metrics.clone());
        assert!(outbox.send_frame(frame(400)));
        assert!(outbox.send_frame(frame(400)));
        assert_eq!(load(&metrics.outbound_queued_bytes), 800);
        // 1,200 would pass the bound: a slow reader, closed.
        assert!(!outbox.send_frame(frame(400)));
        assert_eq!(outbox.fatal().map(|f| f.code), Some(ErrorCode::SlowReader));
        assert!(outbox.is_closing());
        assert!(!outbox.send_frame(frame(1)), "nothing more once closing");
        assert_eq!(load(&metrics.outbound_queued_bytes), 800);
        let first = outgoing.try_recv().unwrap();
        outgoing.written(first.len());
        assert_eq!(load(&metrics.outbound_queued_bytes), 400);
        drop(outgoing);
        assert_eq!(load(&metrics.outbound_queued_bytes), 0, "dropped frames are released");
        assert_eq!(load(&metrics.outbound_queued_bytes_peak), 800);
    }

    #[test]
    fn a_frame_larger_than_the_bound_goes_into_an_empty_queue_only() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, mut outgoing) = outbox(100, 1000, metrics);
        assert!(outbox.send_frame(frame(5000)));
        let big = outgoing.try_recv().unwrap();
        outgoing.written(big.len());
        assert!(outbox.send_frame(frame(10)));
        assert!(!outbox.send_frame(frame(5000)), "behind another frame it is too much");
    }

    #[test]
    fn the_frame_bound_still_holds_and_the_first_reason_wins() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, _outgoing) = outbox(2, 1 << 20, metrics);
        assert!(outbox.send_frame(frame(1)));
        assert!(outbox.send_frame(frame(1)));
        assert!(!outbox.send_frame(frame(1)));
        outbox.close(ErrorCode::ShuttingDown, "later reason");
        assert_eq!(outbox.fatal().map(|f| f.code), Some(ErrorCode::SlowReader));
    }
}
