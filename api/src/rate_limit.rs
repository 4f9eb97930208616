//! Rate limits per principal and per workspace on HTTP (429 + Retry-After), and per
//! socket on sync messages (backpressure: a socket over its rate is simply read slower,
//! so nothing a client sent is lost). GCRA limiters from the `governor` crate.

use std::num::NonZeroU32;
use std::time::Duration;

use collab_domain::{UserId, WorkspaceId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Requests (or messages) per second and burst; a rate of 0 means unlimited.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub per_second: u32,
    pub burst: u32,
}

impl Limit {
    /// The GCRA quota (None: unlimited).
    pub fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst.max(self.per_second)).unwrap_or(rate);
        Some(Quota::per_second(rate).allow_burst(burst))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    pub per_user: Limit,
    pub per_workspace: Limit,
    pub socket_messages: Limit,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_user: Limit {
                per_second: 50,
                burst: 200,
            },
            per_workspace: Limit {
                per_second: 500,
                burst: 2000,
            },
            socket_messages: Limit {
                per_second: 500,
                burst: 5000,
            },
        }
    }
}

impl RateLimitSettings {
    pub fn unlimited() -> Self {
        let none = Limit {
            per_second: 0,
            burst: 0,
        };
        Self {
            per_user: none,
            per_workspace: none,
            socket_messages: none,
        }
    }
}

pub struct RateLimits {
    users: Option<DefaultKeyedRateLimiter<String>>,
    workspaces: Option<DefaultKeyedRateLimiter<WorkspaceId>>,
}

fn refusal(scope: &'static str, wait: Duration) -> ApiError {
    metrics::counter!("collab_rate_limited_total", "scope" => scope).increment(1);
    ApiError::RateLimited {
        scope,
        retry_after_seconds: wait.as_secs().max(1),
    }
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            users: settings.per_user.quota().map(RateLimiter::keyed),
            workspaces: settings.per_workspace.quota().map(RateLimiter::keyed),
        }
    }

    pub fn check_user(&self, user: &UserId) -> Result<(), ApiError> {
        let Some(limiter) = &self.users else {
            return Ok(());
        };
        limiter.check_key(&user.to_string()).map_err(|not_until| {
            refusal(
                "user",
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    pub fn check_workspace(&self, workspace: WorkspaceId) -> Result<(), ApiError> {
        let Some(limiter) = &self.workspaces else {
            return Ok(());
        };
        limiter.check_key(&workspace).map_err(|not_until| {
            refusal(
                "workspace",
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    /// Forgets idle keys (call now and then; keyed limiters otherwise only grow).
    pub fn forget_idle(&self) {
        if let Some(users) = &self.users {
            users.retain_recent();
        }
        if let Some(workspaces) = &self.workspaces {
            workspaces.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_with_a_retry_hint() {
        let limits = RateLimits::new(&RateLimitSettings {
            per_user: Limit {
                per_second: 1,
                burst: 3,
            },
            ..RateLimitSettings::unlimited()
        });
        let alice = UserId::parse("alice").unwrap();
        for _ in 0..3 {
            assert!(limits.check_user(&alice).is_ok());
        }
        match limits.check_user(&alice) {
            Err(ApiError::RateLimited {
                retry_after_seconds,
                ..
            }) => assert!(retry_after_seconds >= 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            limits.check_user(&UserId::parse("bob").unwrap()).is_ok(),
            "per user"
        );
        assert!(
            limits.check_workspace(WorkspaceId::new()).is_ok(),
            "unlimited"
        );
    }
}
