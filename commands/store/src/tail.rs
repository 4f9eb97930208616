//! Following the log as it grows: one reader per process that hands every newly committed
//! event, in position order, to any number of live subscribers (SSE tails), and the
//! wake-up it, the relay and the search indexer wait on (Postgres `NOTIFY` on every append,
//! heard by one listener per process, with a poll as the fallback).

use std::sync::Arc;
use std::time::Duration;

use collab_domain::RecordedEvent;
use futures::FutureExt;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::event_store::{EventLog, EVENTS_CHANNEL};

/// The process's one listener on the events channel: every append anywhere (any instance)
/// announces its new head there with `NOTIFY`. Each waiter (the relay, the log tail, the
/// search indexer) takes an [`AppendSignal`] from it instead of a Postgres connection of
/// its own (each listening connection costs Postgres a wake-up and a send per append).
/// Cheap to clone; the listener stops once every clone and signal is dropped.
#[derive(Clone)]
pub struct Appends {
    /// The highest head announced, or `None` when it cannot say (a payload that names no
    /// position, or the listener lost, possibly missing some): then only the log knows.
    announced: watch::Receiver<Option<i64>>,
}

impl Appends {
    /// Starts listening; returns once the listener is (or failed to get) connected, so an
    /// append committed after this returns is announced to the signals.
    pub async fn start(pool: PgPool) -> Self {
        let (sender, announced) = watch::channel(None);
        let listener = listen(&pool).await;
        tokio::spawn(announce(pool, listener, sender));
        Self { announced }
    }

    /// A waiter's signal: it wakes at the next append announced, or after `idle`.
    pub fn signal(&self, idle: Duration) -> AppendSignal {
        let mut announced = self.announced.clone();
        announced.mark_unchanged();
        AppendSignal { announced, idle }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(EVENTS_CHANNEL).await.ok()?;
    Some(listener)
}

/// The listener's task: publishes each wake-up's highest announced head (every
/// notification already received is taken at once: a burst of commits is one wake-up for
/// the waiters, not one each); reconnects after an error; ends when nobody waits any more.
async fn announce(
    pool: PgPool,
    mut listener: Option<PgListener>,
    sender: watch::Sender<Option<i64>>,
) {
    loop {
        let Some(connected) = listener.as_mut() else {
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_AFTER) => {}
                _ = sender.closed() => return,
            }
            listener = listen(&pool).await;
            if listener.is_some() {
                // Appends committed while it was gone announced themselves to nobody.
                sender.send_replace(None);
            }
            continue;
        };
        // `try_recv`, not `recv`: it tells when the connection was lost (and reconnects on
        // the next call), where `recv` would go on silently past the missed notifications.
        let first = tokio::select! {
            received = connected.try_recv() => received,
            _ = sender.closed() => return,
        };
        let (mut head, connected) = match first {
            Ok(Some(notification)) => (announced(&notification), connected),
            // Lost (it reconnects on the next call) or broken: only the log knows.
            Ok(None) => {
                sender.send_replace(None);
                continue;
            }
            Err(_) => {
                listener = None;
                sender.send_replace(None);
                continue;
            }
        };
        for _ in 0..MAX_DRAINED {
            match connected.try_recv().now_or_never() {
                Some(Ok(Some(next))) => {
                    head = head.zip(announced(&next)).map(|(a, b)| a.max(b));
                }
                None => break,
                // Lost (and possibly missed some): only the log knows.
                Some(Ok(None)) => {
                    head = None;
                    break;
                }
                Some(Err(_)) => {
                    listener = None;
                    head = None;
                    break;
                }
            }
        }
        sender.send_replace(head);
    }
}

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// One waiter's view of [`Appends`].
pub struct AppendSignal {
    announced: watch::Receiver<Option<i64>>,
    idle: Duration,
}

impl AppendSignal {
    /// Returns after an append was announced, `idle` passed, or `shutdown`. Every append
    /// announced meanwhile counts as one wake-up: returns the highest position announced
    /// since the last call — the log has reached it, and whatever commits later announces
    /// itself in turn — or `None` when it cannot say (idle, shut down, listener lost):
    /// then only the log knows.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> Option<i64> {
        tokio::select! {
            changed = self.announced.changed() => match changed {
                Ok(()) => *self.announced.borrow_and_update(),
                // The listener is gone (the runtime is stopping): poll.
                Err(_) => {
                    debug!("the append listener has stopped: polling the log");
                    tokio::select! {
                        _ = tokio::time::sleep(self.idle) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    None
                }
            },
            _ = tokio::time::sleep(self.idle) => None,
            _ = shutdown.cancelled() => None,
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
    pub fn start(
        pool: PgPool,
        appends: &Appends,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        let tail = Self { sender };
        let signal = appends.signal(Duration::from_secs(1));
        tokio::spawn(tail.clone().follow(pool, signal, shutdown));
        tail
    }

    /// Every event committed from now on (some before, too: dedupe by position).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.sender.subscribe()
    }

    async fn follow(self, pool: PgPool, mut signal: AppendSignal, shutdown: CancellationToken) {
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
