//! The memory pressure admission judges: the present, not an average that
//! still carries a stall whose cause is gone.
//!
//! PSI's `some avg10` decays over 10 s and more. Read alone it refused a
//! server started a moment after a leaking server had been OOM-killed: the
//! pressure came from the dead server. The present is the stall time over
//! a short window, from the `total` counter (microseconds stalled) read at
//! both ends. Making every start wait a window would slow every client, so:
//!
//! 1. read the PSI file once; `avg10` at or under `max_pressure` admits at
//!    once (nothing was pressed lately, so nothing is now: the average can
//!    lag a stall that just began, which the kernel's limits and the
//!    headroom check still meet);
//! 2. above it, read `total` again [`WINDOW`] later and judge the share of
//!    that window stalled.
//!
//! This runs before the admission lock is taken: runners started together
//! while the average is high wait their windows side by side, not one
//! after the other. A waiting runner (`admission_wait`) judges again on
//! every try.
//!
//! Not chosen: a PSI trigger (`some 150000 1000000` written to
//! memory.pressure, then POLLPRI) says "pressure now" only by an event, so
//! concluding "no pressure" still takes the whole window; windows under
//! 2 s need CAP_SYS_RESOURCE (Linux 6.5+ refuses them to a normal user
//! with EINVAL), and one file holds one trigger. Keeping the last reading
//! in the state directory would spare the wait only when another runner
//! read moments before, for a file format and a clock shared between
//! processes. Two reads of one file work for every user on every kernel
//! with PSI (4.20+).

use std::time::{Duration, Instant};

use super::decide::Pressure;
use crate::driver::levels::{Levels, PsiReading};

/// The present, for a judgement of pressure (a window PSI itself updates
/// its averages over every 2 s).
pub const WINDOW: Duration = Duration::from_secs(1);

/// The global level's pressure as admission judges it against `limit`
/// (percent; `None` is "max": nothing is read). `None` also when the
/// driver has no PSI file (macOS fills its level in `Levels::measure`).
pub fn judge(levels: &dyn Levels, limit: Option<f64>) -> Option<Pressure> {
    judge_with(|| levels.pressure(), limit, WINDOW)
}

/// [`judge`] over any reader and window.
fn judge_with(mut read: impl FnMut() -> Option<PsiReading>, limit: Option<f64>, window: Duration) -> Option<Pressure> {
    let limit = limit?;
    let first = read()?;
    let started = Instant::now();
    if first.some.avg10 <= limit {
        return Some(average(&first));
    }
    std::thread::sleep(window);
    match read() {
        Some(second) => Some(present(&first, &second, started.elapsed())),
        // The file went away (the global cgroup was removed): keep what
        // was read, as before this judgement existed.
        None => Some(average(&first)),
    }
}

fn average(r: &PsiReading) -> Pressure {
    Pressure { percent: r.some.avg10, source: format!("PSI some avg10 of {}", r.place) }
}

/// The share of `elapsed` stalled between two readings, in percent.
fn present(first: &PsiReading, second: &PsiReading, elapsed: Duration) -> Pressure {
    Pressure {
        percent: stalled_percent(first.some.total_us, second.some.total_us, elapsed),
        source: format!("PSI some over the last {:.1} s of {}", elapsed.as_secs_f64(), second.place),
    }
}

/// `total` went from `before` to `after` (microseconds) in `elapsed`. A
/// counter that went back belongs to a cgroup made in between: all of its
/// total is within the window.
fn stalled_percent(before: u64, after: u64, elapsed: Duration) -> f64 {
    let stalled = if after >= before { after - before } else { after };
    let elapsed = elapsed.as_micros().max(1) as f64;
    (stalled as f64 / elapsed * 100.0).min(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::memory::PsiSome;
    use std::cell::RefCell;

    fn reading(avg10: f64, total_us: u64) -> PsiReading {
        PsiReading { some: PsiSome { avg10, total_us }, place: "/g".into() }
    }

    /// Runs the judgement over scripted readings; returns it and how many
    /// readings it took.
    fn judged(readings: Vec<Option<PsiReading>>, limit: Option<f64>) -> (Option<Pressure>, usize) {
        let script = RefCell::new(readings.into_iter());
        let taken = RefCell::new(0);
        let p = judge_with(
            || {
                *taken.borrow_mut() += 1;
                script.borrow_mut().next().flatten()
            },
            limit,
            Duration::from_millis(20),
        );
        (p, taken.into_inner())
    }

    #[test]
    fn stall_shares() {
        let s = Duration::from_secs(1);
        assert_eq!(stalled_percent(1_000_000, 1_500_000, s), 50.0);
        assert_eq!(stalled_percent(5, 5, s), 0.0);
        assert_eq!(stalled_percent(0, 3_000_000, s), 100.0, "capped");
        assert_eq!(stalled_percent(9_000_000, 200_000, s), 20.0, "a new cgroup: its whole total");
        assert_eq!(stalled_percent(0, 10, Duration::ZERO), 100.0, "no division by zero");
    }

    /// An average above the limit from a stall that has ended: the window
    /// sees no new stall, and the server is admitted.
    // See: issue 9, finding 9.
    #[test]
    fn issue_9_a_past_stall_in_the_average_is_not_pressure_now() {
        let (p, reads) = judged(vec![Some(reading(41.0, 7_000_000)), Some(reading(40.0, 7_000_000))], Some(40.0));
        let p = p.expect("judged");
        assert_eq!((p.percent, reads), (0.0, 2));
        assert!(p.source.starts_with("PSI some over the last ") && p.source.ends_with(" s of /g"), "{}", p.source);
    }

    #[test]
    fn a_stall_going_on_is_pressure_now() {
        // Stalled through the whole window (the window is 20 ms here).
        let (p, _) = judged(vec![Some(reading(41.0, 0)), Some(reading(45.0, 10_000_000))], Some(40.0));
        assert_eq!(p.expect("judged").percent, 100.0);
    }

    #[test]
    fn a_calm_average_admits_without_waiting() {
        let (p, reads) = judged(vec![Some(reading(12.5, 7_000_000))], Some(40.0));
        let p = p.expect("judged");
        assert_eq!((p.percent, p.source.as_str(), reads), (12.5, "PSI some avg10 of /g", 1));
    }

    #[test]
    fn nothing_to_judge() {
        assert_eq!(judged(vec![Some(reading(99.0, 0))], None), (None, 0), "max_pressure \"max\": nothing read");
        assert_eq!(judged(vec![None], Some(40.0)), (None, 1), "no PSI file");
        let (p, reads) = judged(vec![Some(reading(50.0, 0)), None], Some(40.0));
        assert_eq!((p.expect("judged").percent, reads), (50.0, 2), "gone in the window: the average stands");
    }
}
