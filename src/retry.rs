//! Asking again after a failure that may pass, with the numbers written down in one place.
//!
//! Modelled on afterburn's `retry`: a small [`Retry`] value (how many retries, the first wait,
//! how the wait grows and where it stops) and one async driver, [`Retry::run`]. Whether an error
//! is worth another attempt is the caller's knowledge (a 503 is, a 404 is not), so the driver
//! asks a predicate instead of retrying everything.
//!
//! Every call site keeps its own numbers (the `retry()` of the metadata, image, package and S3
//! options; a task's `attempts` and `retry_delay_s` from the catalog): they were chosen for what
//! each one talks to, and tests hold them.
use std::future::Future;
use std::time::Duration;

/// How often and how patiently to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    retries: u32,
    initial_delay: Duration,
    factor: u32,
    max_delay: Duration,
}

/// Handed to the predicate when another attempt is allowed, so it can log what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// The attempt that just failed (1 = the first).
    pub failed: u32,
    /// How long the driver will wait before the next attempt.
    pub wait: Duration,
}

/// The last attempt's result and how many attempts were made in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T, E> {
    pub result: Result<T, E>,
    pub attempts: u32,
}

impl Retry {
    /// `retries` retries after the first attempt, the first after `initial_delay`, each next wait
    /// twice the one before, without bound (see [`Retry::max_delay`]).
    pub const fn new(retries: u32, initial_delay: Duration) -> Retry {
        Retry {
            retries,
            initial_delay,
            factor: 2,
            max_delay: Duration::MAX,
        }
    }

    /// The same wait before every retry.
    pub const fn fixed(retries: u32, delay: Duration) -> Retry {
        Retry::new(retries, delay).factor(1)
    }

    /// Multiply the wait by `factor` after each retry (1 keeps it constant).
    pub const fn factor(mut self, factor: u32) -> Retry {
        self.factor = factor;
        self
    }

    /// No wait is longer than `max_delay`.
    pub const fn max_delay(mut self, max_delay: Duration) -> Retry {
        self.max_delay = max_delay;
        self
    }

    /// Attempts in all, the first included.
    pub const fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The wait before retry number `retry` (1 = the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let mut wait = self.initial_delay;
        for _ in 1..retry {
            if wait >= self.max_delay {
                break;
            }
            wait = wait.saturating_mul(self.factor);
        }
        wait.min(self.max_delay)
    }

    /// The wait after attempt `failed` failed, or `None` when that was the last one allowed. For
    /// loops that recover from several kinds of failure and cannot hand one closure to [`Retry::run`].
    pub fn delay_after(&self, failed: u32) -> Option<Duration> {
        (failed <= self.retries).then(|| self.delay(failed))
    }

    /// Run `attempt(n)` (n = 1, 2, …) until it succeeds, fails with an error `retry_on` does not
    /// want retried, or the retries are used up. `retry_on` is asked only when another attempt is
    /// allowed.
    pub async fn run<T, E, F, Fut, P>(&self, mut attempt: F, mut retry_on: P) -> Outcome<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: FnMut(&E, Next) -> bool,
    {
        let mut n = 1;
        loop {
            let result = attempt(n).await;
            let next = match &result {
                Ok(_) => None,
                Err(e) => self
                    .delay_after(n)
                    .map(|wait| Next { failed: n, wait })
                    .filter(|next| retry_on(e, *next)),
            };
            let Some(next) = next else {
                return Outcome {
                    result,
                    attempts: n,
                };
            };
            tokio::time::sleep(next.wait).await;
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use tokio::time::Instant;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_up_to_the_cap() {
        let r = Retry::new(10, 2 * S).max_delay(30 * S);
        let waits: Vec<u64> = (1..=7).map(|n| r.delay(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(r.delay(u32::MAX), 30 * S);
        assert_eq!(Retry::new(3, S).delay(200), Duration::MAX);
        assert_eq!(Retry::fixed(3, 5 * S).delay(3), 5 * S);
        assert_eq!(Retry::new(1, 40 * S).max_delay(30 * S).delay(1), 30 * S);
    }

    #[test]
    fn delay_after_stops_at_the_last_attempt() {
        let r = Retry::new(2, S);
        assert_eq!(r.attempts(), 3);
        assert_eq!(r.delay_after(1), Some(S));
        assert_eq!(r.delay_after(2), Some(2 * S));
        assert_eq!(r.delay_after(3), None);
        assert_eq!(Retry::new(0, S).delay_after(1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_the_waits_then_given_up() {
        let start = Instant::now();
        let seen = RefCell::new(Vec::new());
        let out: Outcome<(), &str> = Retry::new(3, S)
            .run(
                |n| {
                    seen.borrow_mut().push((n, start.elapsed().as_secs()));
                    async { Err("busy") }
                },
                |_, _| true,
            )
            .await;
        assert_eq!(out.result, Err("busy"));
        assert_eq!(out.attempts, 4);
        assert_eq!(*seen.borrow(), [(1, 0), (2, 1), (3, 3), (4, 7)]);
    }

    #[tokio::test(start_paused = true)]
    async fn success_ends_early_and_a_final_error_is_not_retried() {
        let ok: Outcome<u32, &str> = Retry::new(5, S)
            .run(
                |n| async move {
                    if n < 3 {
                        Err("busy")
                    } else {
                        Ok(n)
                    }
                },
                |_, _| true,
            )
            .await;
        assert_eq!((ok.result, ok.attempts), (Ok(3), 3));

        let start = Instant::now();
        let mut asked = Vec::new();
        let gone: Outcome<(), &str> = Retry::new(5, S)
            .run(
                |n| async move { Err(if n == 1 { "busy" } else { "gone" }) },
                |e, next| {
                    asked.push(next);
                    *e == "busy"
                },
            )
            .await;
        assert_eq!((gone.result, gone.attempts), (Err("gone"), 2));
        assert_eq!(start.elapsed(), S, "no wait after a final error");
        assert_eq!(
            asked,
            [
                Next { failed: 1, wait: S },
                Next {
                    failed: 2,
                    wait: 2 * S
                }
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_retries_means_one_attempt_and_no_question() {
        let out: Outcome<(), &str> = Retry::new(0, S)
            .run(
                |_| async { Err("busy") },
                |_, _| panic!("nothing to decide"),
            )
            .await;
        assert_eq!(out.attempts, 1);
    }
}
