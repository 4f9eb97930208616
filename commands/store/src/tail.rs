//! Following the log as it grows: one reader per process that hands every newly committed
//! event, in position order, to any number of live subscribers (SSE tails), and the
//! wake-up both it and the relay wait on (Postgres `NOTIFY` on every append, with a poll
//! as the fallback).

use std::sync::Arc;
use std::time::Duration;

use collab_domain::RecordedEvent;
use futures::FutureExt;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::event_store::{EventLog, EVENTS_CHANNEL};

/// Waits for the next append anywhere (any instance): a `NOTIFY` on the events channel,
/// or `idle` passing, whichever is first. Reconnects its listener after an error.
pub struct AppendSignal {
    pool: PgPool,
    idle: Duration,
    listener: Option<PgListener>,
}

impl AppendSignal {
    pub async fn new(pool: PgPool, idle: Duration) -> Self {
        let mut signal = Self {
            pool,
            idle,
            listener: None,
        };
        signal.listener = signal.listen().await;
        signal
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(EVENTS_CHANNEL).await.ok()?;
        Some(listener)
    }

    /// Returns after an append was signalled, `idle` passed, or `shutdown`. Every append
    /// signalled meanwhile counts as one wake-up (a burst of commits is one round for
    /// the caller, not one each): returns the highest position they announced — the log
    /// has reached it, and whatever commits later announces itself in turn — or `None`
    /// when it cannot say (idle, shut down, listener lost): then only the log knows.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> Option<i64> {
        let idle = tokio::time::sleep(self.idle);
        match &mut self.listener {
            Some(listener) => {
                let first = tokio::select! {
                    received = listener.recv() => match received {
                        Ok(notification) => notification,
                        Err(_) => {
                            self.listener = None;
                            return None;
                        }
                    },
                    _ = idle => return None,
                    _ = shutdown.cancelled() => return None,
                };
                // Any notification that names no position makes the head unknown. Those
                // already received are taken now (a socket not listened to for a while —
                // the caller was busy — holds one per append since).
                let mut head = announced(&first);
                for _ in 0..MAX_DRAINED {
                    match listener.try_recv().now_or_never() {
                        Some(Ok(Some(next))) => {
                            head = head.zip(announced(&next)).map(|(a, b)| a.max(b));
                        }
                        None => return head,
                        // Lost (and possibly missed some): only the log knows.
                        Some(Ok(None)) => return None,
                        Some(Err(_)) => {
                            self.listener = None;
                            return None;
                        }
                    }
                }
                head
            }
            None => {
                tokio::select! {
                    _ = idle => {}
                    _ = shutdown.cancelled() => {}
                }
                self.listener = self.listen().await;
                None
            }
        }
    }
}

/// Notifications taken at most per wake-up beyond the first.
const MAX_DRAINED: usize = 100_000;

/// The position an append's notification announces (its payload).
fn announced(notification: &sqlx::postgres::PgNotification) -> Option<i64> {
    notification.payload().parse().ok()
}

/// Events read from the log per query while following it.
const PAGE: i64 = 1000;

/// The process's follower of the log. Subscribers get every event committed after they
/// subscribed, in position order, through a bounded buffer: one that falls further
/// behind than the buffer holds sees [`broadcast::error::RecvError::Lagged`] (and decides
/// what to do; it is never buffered without limit). The log is read only while someone
/// subscribes.
#[derive(Clone)]
pub struct LogTail {
    sender: broadcast::Sender<Arc<RecordedEvent>>,
}

impl LogTail {
    /// Starts following from the current head; `capacity` events are buffered per
    /// subscriber at most.
    pub fn start(pool: PgPool, capacity: usize, shutdown: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        let tail = Self { sender };
        tokio::spawn(tail.clone().follow(pool, shutdown));
        tail
    }

    /// Every event committed from now on (some before, too: dedupe by position).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.sender.subscribe()
    }

    async fn follow(self, pool: PgPool, shutdown: CancellationToken) {
        let mut signal = AppendSignal::new(pool.clone(), Duration::from_secs(1)).await;
        let mut at: Option<i64> = None;
        let mut announced = None;
        while !shutdown.is_cancelled() {
            if let Err(error) = self.step(&pool, &mut at, announced).await {
                // Keep the position: subscribers must not see a skip because of an error.
                debug!(%error, "log tail: reading the log failed; retrying");
            }
            announced = signal.wait(&shutdown).await;
        }
    }

    /// `announced`: a head the appends signalled since the last step, if known.
    async fn step(
        &self,
        pool: &PgPool,
        at: &mut Option<i64>,
        announced: Option<i64>,
    ) -> Result<(), crate::StoreError> {
        if self.sender.receiver_count() == 0 {
            // Nobody listens: skip to the head, read *before* looking at the subscribers,
            // so one that subscribes meanwhile gets everything after it from here. (The
            // head an append announced will do: nothing above it is committed yet.)
            let head = match announced {
                Some(head) => head,
                None => EventLog::head(pool).await?,
            };
            if self.sender.receiver_count() == 0 {
                *at = Some(head);
                return Ok(());
            }
        }
        let mut after = match *at {
            Some(after) => after,
            None => EventLog::head(pool).await?,
        };
        loop {
            let events = EventLog::read_all(pool, after, PAGE).await?;
            let count = events.len() as i64;
            for event in events {
                after = event.position;
                // No await between sends: a burst overtakes a slow subscriber's buffer
                // and it learns that it lagged, instead of the reader slowing down.
                let _ = self.sender.send(Arc::new(event));
            }
            *at = Some(after);
            if count < PAGE {
                return Ok(());
            }
        }
    }
}
