//! Failing fast while the server is unreachable.
//!
//! A call that cannot get a connection waits up to the pool's acquire timeout. During an
//! outage, calls that queue behind one another (a command waits for the one before it on
//! the same aggregate) would add those waits up. So once a call has found the server
//! unreachable, only one call at a time (the probe) tries the server again, for up to the
//! acquire timeout, and not sooner than [`COOL_DOWN`] after the last failure (so that the
//! call that waited behind a failed probe does not probe for as long again); every other
//! call fails at once with `Unavailable`. The first call to succeed (or to get any answer
//! from the server) closes the breaker, so work resumes as soon as a probe gets through:
//! within the cool-down, or the pool's connection back-off (a fifth of the acquire timeout),
//! of the server accepting connections.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use factum_core::Error;

/// The breaker's state, shared by every handle to the store.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    /// The last call that settled it found the server unreachable.
    unreachable: AtomicBool,
    /// A probe is under way.
    probing: AtomicBool,
    /// When a call last found the server unreachable.
    failed_at: Mutex<Option<Instant>>,
}

/// How long after a call found the server unreachable no call probes it again.
pub(crate) const COOL_DOWN: Duration = Duration::from_millis(500);

/// Clears `probing` however the probe ends, cancelled futures included.
struct Probe<'a>(&'a AtomicBool);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Breaker {
    /// Runs `call`, or fails at once while the server is known unreachable and another call
    /// is probing it.
    pub(crate) async fn call<T>(
        &self,
        call: impl Future<Output = factum_core::Result<T>>,
    ) -> factum_core::Result<T> {
        let _probe = if self.unreachable.load(Ordering::Acquire) {
            let recently = || {
                Error::Unavailable(
                    "the PostgreSQL server was unreachable a moment ago (being rechecked)".into(),
                )
            };
            if self.probing.swap(true, Ordering::AcqRel) {
                return Err(recently());
            }
            let probe = Probe(&self.probing);
            let failed_at = *self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
            if failed_at.is_some_and(|at| at.elapsed() < COOL_DOWN) {
                return Err(recently());
            }
            Some(probe)
        } else {
            None
        };
        let result = call.await;
        match &result {
            Err(Error::Unavailable(_)) => {
                *self.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                self.unreachable.store(true, Ordering::Release);
            }
            // The server answered (a conflict or a full disk are answers).
            Ok(_) | Err(Error::Conflict { .. } | Error::StoreFull(_)) => {
                self.unreachable.store(false, Ordering::Release);
            }
            // Other errors may be raised before the server is asked (a request refused as
            // invalid): they say nothing about it.
            Err(_) => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> factum_core::Result<()> {
        Err(Error::Unavailable("down".into()))
    }

    /// Makes one call through `breaker`; returns its result and whether it ran.
    async fn call_once(breaker: &Breaker) -> (factum_core::Result<()>, bool) {
        let mut ran = false;
        let result = breaker
            .call(async {
                ran = true;
                Ok(())
            })
            .await;
        (result, ran)
    }

    #[tokio::test]
    async fn only_one_call_probes_an_unreachable_server_and_a_success_closes_it() {
        let breaker = Breaker::default();
        assert!(breaker.call(async { down() }).await.is_err());
        // Right after a failure, no call probes.
        let (early, ran) = call_once(&breaker).await;
        assert!(matches!(early, Err(Error::Unavailable(_))) && !ran);
        tokio::time::sleep(COOL_DOWN).await;
        // While one call probes, another fails at once without running.
        let (probe_started, release_probe) =
            (tokio::sync::Notify::new(), tokio::sync::Notify::new());
        let probe = breaker.call(async {
            probe_started.notify_one();
            release_probe.notified().await;
            Ok(())
        });
        let other = async {
            probe_started.notified().await;
            let called = call_once(&breaker).await;
            release_probe.notify_one();
            called
        };
        let (probed, (other, ran)) = tokio::join!(probe, other);
        assert!(probed.is_ok());
        assert!(matches!(other, Err(Error::Unavailable(_))) && !ran);
        // The probe's success closed it: calls run again.
        assert!(breaker.call(async { Ok(()) }).await.is_ok());
    }

    #[tokio::test]
    async fn a_cancelled_probe_does_not_leave_the_breaker_stuck() {
        let breaker = Breaker::default();
        assert!(breaker.call(async { down() }).await.is_err());
        tokio::time::sleep(COOL_DOWN).await;
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            breaker.call(std::future::pending::<factum_core::Result<()>>()),
        )
        .await;
        assert!(cancelled.is_err());
        assert!(breaker.call(async { Ok(()) }).await.is_ok());
    }
}
