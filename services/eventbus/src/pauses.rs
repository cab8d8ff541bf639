//! One retry policy for the loops that wait out an outage (the outbox relay, consumers,
//! the search index's follower): backon's exponential backoff with jitter.

use std::time::Duration;

/// The pauses between consecutive failures: exponential from 100 ms up to `max`, with
/// jitter (up to as long again) so replicas that failed together do not retry in step;
/// [`Pauses::reset`] after a success starts over.
#[derive(Debug)]
pub struct Pauses {
    policy: backon::ExponentialBuilder,
    current: backon::ExponentialBackoff,
}

impl Pauses {
    pub fn new(max: Duration) -> Self {
        let policy = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100).min(max))
            .with_max_delay(max)
            .with_jitter()
            .without_max_times();
        Self {
            policy,
            current: backon::BackoffBuilder::build(policy),
        }
    }

    /// How long to wait after this failure.
    pub fn pause(&mut self) -> Duration {
        // Without a limit on attempts, the policy always has a next pause.
        self.current.next().unwrap_or(Duration::from_secs(1))
    }

    /// After a success: the next failure waits the shortest pause again.
    pub fn reset(&mut self) {
        self.current = backon::BackoffBuilder::build(self.policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_with_jitter_and_start_over_after_a_success() {
        let max = Duration::from_secs(5);
        let mut pauses = Pauses::new(max);
        let first = pauses.pause();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        let later: Vec<Duration> = (0..20).map(|_| pauses.pause()).collect();
        // Jitter adds up to the pause again, never more.
        assert!(
            later
                .iter()
                .all(|pause| *pause >= first / 2 && *pause <= 2 * max)
        );
        assert!(later[10..].iter().all(|pause| *pause >= max), "{later:?}");
        pauses.reset();
        assert!(pauses.pause() <= Duration::from_millis(200));
    }
}
