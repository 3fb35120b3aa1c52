//! Crash-restart policy as pure functions (DESIGN decision 8): 100 ms doubling to 8 s, reset after 30 s healthy.

use std::time::Duration;

pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// A process that ran this long before crashing starts over at the first delay.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Consecutive quick crashes after which a process is shown as `failed` (a crash loop). It keeps being retried at
/// the capped delay, and its crashes are logged once on entering the state rather than on every retry.
pub const CRASH_LOOP_AFTER: u32 = 5;

/// Whether `attempt` consecutive quick crashes make a crash loop.
pub fn in_crash_loop(attempt: u32) -> bool {
    attempt >= CRASH_LOOP_AFTER
}

/// The delay before restart number `attempt` (0-based) of a crash loop.
pub fn delay(attempt: u32) -> Duration {
    FIRST_DELAY.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(MAX_DELAY)
}

/// The count of consecutive crashes after a crash of a process that ran for `ran`: a healthy run starts a new count.
pub fn next_attempt(previous: u32, ran: Duration) -> u32 {
    if ran >= HEALTHY_AFTER {
        1
    } else {
        previous.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap() {
        let delays: Vec<u64> = (0..9).map(|a| delay(a).as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 3200, 6400, 8000, 8000]);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn resets_after_a_healthy_run() {
        assert_eq!(next_attempt(5, Duration::from_secs(31)), 1);
        assert_eq!(delay(next_attempt(5, Duration::from_secs(31)) - 1), FIRST_DELAY);
        assert_eq!(next_attempt(5, Duration::from_secs(1)), 6);
    }

    #[test]
    fn five_quick_crashes_make_a_crash_loop_and_a_healthy_run_ends_it() {
        let mut attempt = 0;
        for _ in 0..4 {
            attempt = next_attempt(attempt, Duration::from_millis(50));
        }
        assert!(!in_crash_loop(attempt));
        attempt = next_attempt(attempt, Duration::from_millis(50));
        assert!(in_crash_loop(attempt));
        assert!(!in_crash_loop(next_attempt(attempt, HEALTHY_AFTER)));
    }
}
