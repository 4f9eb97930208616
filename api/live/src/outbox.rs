//! A session's outbox: everyone else's edits and awareness, queued by the room for the
//! session's own task to write, and the reason the room ends the session, if it does.
//!
//! One small allocation per socket, and nothing more while the socket is idle: the queue
//! grows only while something waits to be written and gives its room back once drained
//! (a tokio channel allocates a block of slots up front and keeps it for the socket's
//! life). One consumer (the session), many producers (the room, under its lock).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytes::Bytes;

use super::protocol::close;

/// A session with more than this many bytes of other people's edits waiting to be written
/// is too slow to keep up (or has stopped reading): it is dropped with 1013, and
/// resynchronises when it reconnects. Bytes, not messages: one 64 KiB paste weighs as much
/// as thousands of keystrokes.
pub const MAX_QUEUED_BYTES: usize = 8 << 20;

/// …and so is one with this many frames waiting, however small.
pub const MAX_QUEUED_FRAMES: usize = 4096;

/// The queue's room is given back when it drains, above this many slots.
const KEEP_SLOTS: usize = 16;

#[derive(Clone, Default)]
pub struct Outbox(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// Bytes of `frames`.
    bytes: usize,
    /// Set once: the close code and reason the session ends with.
    ended: Option<(u16, String)>,
    /// The session's task, while it waits for something here.
    waker: Option<Waker>,
}

impl State {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `frame`; false (and the session is ended with 1013) if the session is too far
    /// behind to take it.
    pub fn push(&self, frame: Bytes) -> bool {
        let mut state = self.lock();
        if state.ended.is_some() {
            return false;
        }
        if state.bytes + frame.len() > MAX_QUEUED_BYTES || state.frames.len() >= MAX_QUEUED_FRAMES {
            state.ended = Some((
                close::TRY_AGAIN,
                "connection could not keep up; reconnect".into(),
            ));
            state.frames = VecDeque::new();
            state.bytes = 0;
            state.wake();
            return false;
        }
        state.bytes += frame.len();
        state.frames.push_back(frame);
        state.wake();
        true
    }

    /// Ends the session with `code` and `reason` (the first reason given wins); what is
    /// still queued is not written.
    pub fn close(&self, code: u16, reason: &str) {
        let mut state = self.lock();
        if state.ended.is_none() {
            state.ended = Some((code, reason.to_owned()));
        }
        state.frames = VecDeque::new();
        state.bytes = 0;
        state.wake();
    }

    /// Waits until there is something to write or the session is ended.
    pub async fn ready(&self) {
        self.wait_until(|state| !state.frames.is_empty() || state.ended.is_some())
            .await
    }

    /// Waits until the session is ended (however much is queued meanwhile).
    pub async fn closed(&self) {
        self.wait_until(|state| state.ended.is_some()).await
    }

    async fn wait_until(&self, done: fn(&State) -> bool) {
        poll_fn(|cx| {
            let mut state = self.lock();
            if done(&state) {
                return Poll::Ready(());
            }
            if !state
                .waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Why the session was ended, if it was.
    pub fn ended(&self) -> Option<(u16, String)> {
        self.lock().ended.clone()
    }

    /// Takes up to `max` queued frames, oldest first.
    pub fn take(&self, max: usize) -> Vec<Bytes> {
        let mut state = self.lock();
        let n = state.frames.len().min(max);
        let taken: Vec<Bytes> = state.frames.drain(..n).collect();
        state.bytes -= taken.iter().map(Bytes::len).sum::<usize>();
        if state.frames.is_empty() && state.frames.capacity() > KEEP_SLOTS {
            state.frames = VecDeque::new();
        }
        taken
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn frames_wait_in_order_until_taken_and_an_idle_outbox_keeps_no_room() {
        let outbox = Outbox::new();
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        for n in 0..100u8 {
            assert!(outbox.push(Bytes::from(vec![n; 10])));
        }
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(outbox.queued_bytes(), 1000);
        let mut out = outbox.take(60);
        assert_eq!(out.len(), 60);
        out.extend(outbox.take(60));
        assert_eq!(out.len(), 100);
        assert!(out.iter().enumerate().all(|(n, f)| f[0] == n as u8));
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(outbox.lock().frames.capacity(), 0);
        assert_eq!(outbox.ended(), None);
    }

    #[test]
    fn a_session_too_far_behind_is_ended_and_takes_nothing_more() {
        let outbox = Outbox::new();
        assert!(outbox.push(Bytes::from(vec![0; MAX_QUEUED_BYTES - 1])));
        assert!(!outbox.push(Bytes::from_static(b"ab")));
        assert_eq!(outbox.ended().map(|(code, _)| code), Some(close::TRY_AGAIN));
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(!outbox.push(Bytes::from_static(b"a")));
        let outbox = Outbox::new();
        for _ in 0..MAX_QUEUED_FRAMES {
            assert!(outbox.push(Bytes::from_static(b"a")));
        }
        assert!(!outbox.push(Bytes::from_static(b"a")));
    }

    #[test]
    fn the_first_reason_to_end_wins() {
        let outbox = Outbox::new();
        outbox.push(Bytes::from_static(b"a"));
        outbox.close(close::GOING_AWAY, "server is shutting down");
        outbox.close(close::TRY_AGAIN, "later");
        assert_eq!(
            outbox.ended(),
            Some((close::GOING_AWAY, "server is shutting down".to_owned()))
        );
        assert_eq!(outbox.queued_bytes(), 0);
    }
}
