//! Open-loop arrivals for a fixed rate: start times `1/rate` apart, each handed to a virtual user
//! when it comes, so that a flow's latency is counted from when it should have started and a
//! slow server cannot hide its queue (coordinated omission).
//!
//! A thread of its own sleeps to each start time. tokio's timer has millisecond resolution: a
//! flow woken by it starts up to two milliseconds late, and that lateness, the generator's own,
//! would be counted into every flow's latency (docs/benchmarks.md, sixteenth run). The thread's
//! sleeps are precise to tens of microseconds.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

/// Hands out start times `1/rate` apart from its creation until an optional end.
pub struct Pacer {
    start: Instant,
    interval: Duration,
    /// Start times handed out so far.
    taken: AtomicU64,
    /// Start times from here on are not handed out.
    end: Option<Instant>,
    /// One permit per start time that has come and not been taken; at the end, permits for
    /// every taker to learn that it has come.
    due: Semaphore,
}

impl Pacer {
    /// A pacer for `rate` flows per second, handing out start times until `end` (for ever when
    /// `None`, until every handle to it is dropped).
    pub fn new(rate: f64, end: Option<Instant>) -> Arc<Pacer> {
        let pacer = Arc::new(Pacer {
            start: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / rate),
            taken: AtomicU64::new(0),
            end,
            due: Semaphore::new(0),
        });
        let weak = Arc::downgrade(&pacer);
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || release_when_due(&weak))
            .expect("a thread for the pacer");
        pacer
    }

    /// Waits for the next start time to come and returns it; `None` once the end has come.
    /// Under load the time may have come a while ago: the flow is late, and its latency says so.
    pub async fn next(&self) -> Option<Instant> {
        self.due.acquire().await.expect("the pacer never closes").forget();
        let at = self.time(self.taken.fetch_add(1, Ordering::Relaxed));
        self.end.is_none_or(|end| at < end).then_some(at)
    }

    /// The `n`th start time.
    fn time(&self, n: u64) -> Instant {
        self.start + self.interval.mul_f64(n as f64)
    }
}

/// The pacer's thread: releases each start time as it comes, one after another without sleeping
/// if the thread itself was late, until the end comes or the pacer is dropped (noticed at most
/// one start time later).
fn release_when_due(pacer: &Weak<Pacer>) {
    for n in 0u64.. {
        let Some(pacer) = pacer.upgrade() else { return };
        let next = pacer.time(n);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if pacer.end.is_some_and(|end| next >= end) {
            return pacer.due.add_permits(Semaphore::MAX_PERMITS / 2);
        }
        pacer.due.add_permits(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about(duration: Duration, millis: u64) -> bool {
        duration.abs_diff(Duration::from_millis(millis)) < Duration::from_micros(1)
    }

    #[tokio::test]
    async fn hands_out_times_in_order_never_before_they_come_and_then_ends() {
        let pacer = Pacer::new(500.0, Some(Instant::now() + Duration::from_millis(60)));
        let mut times = Vec::new();
        let all = async {
            while let Some(at) = pacer.next().await {
                assert!(Instant::now() >= at, "a start time was handed out before it came");
                times.push(at);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), all).await.expect("the pacer ends at its end");
        // 2 ms apart for 60 ms (from just after the end was set): 30 of them, the first at once.
        assert_eq!(times.len(), 30);
        assert!(times.windows(2).all(|pair| about(pair[1] - pair[0], 2)));
    }

    #[tokio::test]
    async fn a_late_taker_gets_the_times_that_came_meanwhile() {
        let pacer = Pacer::new(1000.0, None);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut times = Vec::new();
        for _ in 0..10 {
            times.push(pacer.next().await.unwrap());
        }
        // The first ten came while no one took them: each is 1 ms after the one before, and the
        // tenth (9 ms after the first) is long past.
        assert!(about(times[9] - times[0], 9));
        assert!(Instant::now() - times[9] >= Duration::from_millis(5));
    }
}
