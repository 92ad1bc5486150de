//! Memory shares: how the global memory_max is split between live sessions.
//!
//! Each session's memory_max is a ceiling, and with several sessions live
//! their ceilings together can exceed the global one; the kernel would then
//! reclaim from whichever session happens to allocate. Shares make the
//! split explicit: the global memory_max is divided in proportion to the
//! sessions' weights (the sum of their live servers' weights), no session
//! gets more than its memory_max nor less than its floor, and what a capped
//! session cannot use goes to the others.
//!
//! This is water-filling: find the level λ (bytes per unit of weight) at
//! which `Σ clamp(wᵢ·λ, floor, cap) = total`, and give each session
//! `clamp(wᵢ·λ, floor, cap)`, rounded down. Every share is a nondecreasing
//! function of its own weight and of one common λ, and λ can only fall when
//! a weight grows or a session arrives; so a session never loses by gaining
//! weight and never gains when another session arrives. λ is found exactly,
//! as a ratio of integers, by walking in order the points where sessions
//! leave the floor or reach the cap, between which the sum is linear in λ.

use std::cmp::Ordering;

use crate::budget::Limits;

/// Where a session's share stops being clamped, or starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Edge {
    /// At λ = floor / w. Ordered first, so that with floor = cap a session
    /// leaves the floor before it reaches the cap.
    LeavesFloor,
    /// At λ = cap / w.
    ReachesCap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Floor,
    Between,
    Cap,
}

/// `a.0 / a.1` against `b.0 / b.1`, denominators positive.
fn ratio_cmp(a: (u64, u64), b: (u64, u64)) -> Ordering {
    (u128::from(a.0) * u128::from(b.1)).cmp(&(u128::from(b.0) * u128::from(a.1)))
}

/// Memory shares of the live sessions: `total` (the global memory_max) split in proportion to
/// the sessions' weights, each clamped to [floor, cap] (cap = the session memory_max from the
/// policy), with what capped sessions cannot use handed on to the others (water-filling).
///
/// `result[i]` is the share of the session of `weights[i]`. A weight of 0
/// counts as a share of 0 before the floor applies. A floor above `cap` is
/// lowered to it. If the floors alone exceed `total`, every session gets
/// its floor and the shares add up to more than `total`: the global cgroup
/// still caps the sum in the kernel. Otherwise the shares add up to at most
/// `total`, and to within one byte per session of it unless every weighted
/// session is capped. Shares round down.
pub fn session_shares(total: u64, weights: &[u64], floor: u64, cap: u64) -> Vec<u64> {
    let floor = floor.min(cap);
    let n = weights.len();
    let total = u128::from(total);

    // Between two consecutive edges, Σ shares = fixed + λ·weight.
    let mut fixed = u128::from(floor) * n as u128;
    let mut weight: u128 = 0;
    if fixed >= total {
        return vec![floor; n];
    }

    let mut edges: Vec<(u64, u64, Edge, usize)> = Vec::with_capacity(2 * n);
    for (i, &w) in weights.iter().enumerate() {
        if w > 0 {
            edges.push((floor, w, Edge::LeavesFloor, i));
            edges.push((cap, w, Edge::ReachesCap, i));
        }
    }
    edges.sort_by(|a, b| ratio_cmp((a.0, a.1), (b.0, b.1)).then(a.2.cmp(&b.2)));

    // λ = level.0 / level.1, once the sum reaches `total`. The sum is
    // continuous in λ and below `total` at every edge walked past, so
    // `fixed < total` holds throughout.
    let mut state = vec![State::Floor; n];
    let mut level = None;
    for &(bound, w, edge, i) in &edges {
        // Does the sum reach `total` by this edge, λ = bound / w? That is
        // fixed + bound·weight / w >= total; a product too large for u128
        // is far above anything `total` can be.
        let need = (total - fixed) * u128::from(w);
        if weight > 0 && u128::from(bound).checked_mul(weight).is_none_or(|have| have >= need) {
            level = Some((total - fixed, weight));
            break;
        }
        match edge {
            Edge::LeavesFloor => {
                fixed -= u128::from(floor);
                weight += u128::from(w);
                state[i] = State::Between;
            }
            Edge::ReachesCap => {
                fixed += u128::from(cap);
                weight -= u128::from(w);
                state[i] = State::Cap;
            }
        }
    }

    weights
        .iter()
        .zip(state)
        .map(|(&w, state)| match (state, level) {
            (State::Floor, _) => floor,
            (State::Between, Some((num, den))) => {
                let share = u128::from(w) * num / den;
                u64::try_from(share).unwrap_or(cap).clamp(floor, cap)
            }
            // Past every edge, every weighted session is capped.
            (State::Cap | State::Between, _) => cap,
        })
        .collect()
}

/// The session's memory_high scaled to `share` with the ratio the policy
/// gives (session memory_high / session memory_max), rounded down; `None`
/// if the policy's session memory_high is unlimited. A session with no
/// memory_max of its own has no ratio: its memory_high is kept as written,
/// but never above the share.
pub fn session_high(share: u64, session: &Limits) -> Option<u64> {
    let high = session.memory_high?;
    match session.memory_max {
        Some(max) if max > 0 => {
            let scaled = u128::from(share) * u128::from(high.min(max)) / u128::from(max);
            Some(u64::try_from(scaled).unwrap_or(share))
        }
        _ => Some(high.min(share)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn no_sessions_no_shares() {
        assert_eq!(session_shares(8 * GIB, &[], GIB, 4 * GIB), Vec::<u64>::new());
        assert_eq!(session_shares(0, &[], 0, 0), Vec::<u64>::new());
    }

    #[test]
    fn one_session_gets_everything_up_to_its_cap() {
        assert_eq!(session_shares(8 * GIB, &[1], 819 * MIB, 4 * GIB), [4 * GIB]);
        assert_eq!(session_shares(8 * GIB, &[3], 819 * MIB, 16 * GIB), [8 * GIB]);
        assert_eq!(session_shares(8 * GIB, &[u64::MAX], 0, u64::MAX), [8 * GIB]);
    }

    #[test]
    fn equal_weights_split_equally_rounding_down() {
        assert_eq!(session_shares(9 * GIB, &[1, 1, 1], 900 * MIB, 4 * GIB), [3 * GIB; 3]);
        assert_eq!(session_shares(9 * GIB, &[5, 5, 5], 0, 9 * GIB), [3 * GIB; 3]);
        assert_eq!(session_shares(10, &[1, 1, 1], 0, 10), [3, 3, 3]);
    }

    #[test]
    fn a_capped_session_hands_its_excess_on() {
        // Proportionally 6G, 1G, 1G; the first is capped at 4G and the
        // other 4G is split 1:1.
        assert_eq!(session_shares(8 * GIB, &[6, 1, 1], 0, 4 * GIB), [4 * GIB, 2 * GIB, 2 * GIB]);
        // Twice: capped ones hand on to the ones the first handing-on capped.
        assert_eq!(session_shares(10 * GIB, &[8, 4, 1, 1], 0, 4 * GIB), [4 * GIB, 4 * GIB, GIB, GIB]);
    }

    #[test]
    fn the_floor_raises_light_sessions_at_the_others_expense() {
        // Proportionally 7G, 0.5G, 0.5G; the light two are raised to 1G.
        assert_eq!(session_shares(8 * GIB, &[14, 1, 1], GIB, 8 * GIB), [6 * GIB, GIB, GIB]);
        // A weight of 0 is a share of 0 before the floor.
        assert_eq!(session_shares(8 * GIB, &[0, 1], GIB, 8 * GIB), [GIB, 7 * GIB]);
        assert_eq!(session_shares(8 * GIB, &[0, 0], 0, 8 * GIB), [0, 0]);
    }

    #[test]
    fn floors_beyond_the_total_give_everyone_the_floor() {
        // Twelve sessions with the built-in floor (10% of 8G): 9.6G in all.
        // Allowed: the global cgroup still caps the total in the kernel.
        let floor = 8 * GIB / 10;
        let shares = session_shares(8 * GIB, &[5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], floor, 4 * GIB);
        assert_eq!(shares, [floor; 12]);
        assert!(shares.iter().sum::<u64>() > 8 * GIB);
    }

    #[test]
    fn a_floor_above_the_cap_is_the_cap() {
        assert_eq!(session_shares(GIB, &[1, 1, 1], 5 * GIB, 4 * GIB), [4 * GIB; 3]);
        assert_eq!(session_shares(100, &[1, 2, 3], 50, 50), [50; 3]);
    }

    #[test]
    fn when_every_session_is_capped_the_rest_stays_unused() {
        assert_eq!(session_shares(16 * GIB, &[1, 3], 0, 4 * GIB), [4 * GIB; 2]);
        assert_eq!(session_shares(16 * GIB, &[0, 3], GIB, 4 * GIB), [GIB, 4 * GIB]);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let max = u64::MAX;
        assert_eq!(session_shares(max, &[max, max], 0, max), [max / 2; 2]);
        assert_eq!(session_shares(max, &[max, 1], 0, max), [max - 1, 0]);
        assert_eq!(session_shares(max, &[max; 3], max, max), [max; 3]);
        assert_eq!(session_shares(0, &[max, 1], 0, max), [0, 0]);
        assert_eq!(session_shares(max, &[1, 1], 0, 0), [0, 0]);
    }

    #[test]
    fn session_high_keeps_the_policy_ratio() {
        let limits = Limits { memory_max: Some(4 * GIB), memory_high: Some(4 * GIB * 9 / 10), ..Limits::default() };
        assert_eq!(session_high(2 * GIB, &limits), Some(2 * GIB * 9 / 10));
        assert_eq!(session_high(4 * GIB, &limits), limits.memory_high);
        assert_eq!(session_high(0, &limits), Some(0));
        let ratio = |share: u64| (u128::from(share) * u128::from(4 * GIB * 9 / 10) / u128::from(4 * GIB)) as u64;
        assert_eq!(session_high(u64::MAX, &limits), Some(ratio(u64::MAX)));
        let unlimited_high = Limits { memory_max: Some(4 * GIB), ..Limits::default() };
        assert_eq!(session_high(2 * GIB, &unlimited_high), None);
        let no_max = Limits { memory_high: Some(3 * GIB), ..Limits::default() };
        assert_eq!(session_high(2 * GIB, &no_max), Some(2 * GIB));
        assert_eq!(session_high(4 * GIB, &no_max), Some(3 * GIB));
    }

    #[test]
    fn session_high_of_the_builtin_policy() {
        let args: Vec<String> = Vec::new();
        let req = crate::ServerRequest { name: None, argv: &args };
        let e = crate::builtin().resolve(&req, &crate::tests::HOST_16G).unwrap();
        let shares = session_shares(e.global.limits.memory_max.unwrap(), &[1, 1, 1, 1, 1], e.session.floor, 4 * GIB);
        assert_eq!(shares, [8 * GIB / 5; 5]);
        let high = session_high(shares[0], &e.session.limits).unwrap();
        assert_eq!(
            high,
            (u128::from(8 * GIB / 5) * u128::from(e.session.limits.memory_high.unwrap()) / u128::from(4 * GIB)) as u64
        );
    }

    // ---- property tests ---------------------------------------------------

    use crate::test_rng::Rng;

    #[derive(Clone, Debug)]
    struct Case {
        total: u64,
        weights: Vec<u64>,
        floor: u64,
        cap: u64,
    }

    impl Case {
        fn shares(&self) -> Vec<u64> {
            session_shares(self.total, &self.weights, self.floor, self.cap)
        }
    }

    fn weight(rng: &mut Rng) -> u64 {
        match rng.below(5) {
            0 => rng.below(3),
            1 | 2 => 1 + rng.below(10),
            3 => 1 + rng.below(100_000),
            _ => rng.next() >> rng.below(64),
        }
    }

    /// Small totals exercise rounding, huge ones overflow; floors and caps
    /// land below, around and above the total and each other.
    fn generate(rng: &mut Rng) -> Case {
        let total = match rng.below(4) {
            0 => rng.below(1_000),
            1 => rng.below(64 * GIB),
            2 => 8 * GIB,
            _ => rng.next(),
        };
        let n = rng.below(9) as usize;
        let weights = (0..n).map(|_| weight(rng)).collect();
        let floor = match rng.below(5) {
            0 => 0,
            1 => total / (1 + rng.below(20)),
            2 => total / 10,
            3 => rng.below(total.saturating_add(1)),
            _ => rng.next(),
        };
        let cap = match rng.below(5) {
            0 => total,
            1 => total / (1 + rng.below(8)),
            2 => u64::MAX,
            3 => rng.below(total.saturating_add(1)),
            _ => rng.next(),
        };
        Case { total, weights, floor, cap }
    }

    fn cases(seed: u64, count: usize) -> impl Iterator<Item = Case> {
        let mut rng = Rng(seed);
        (0..count).map(move |_| generate(&mut rng))
    }

    const CASES: usize = 5_000;

    #[test]
    fn every_share_is_between_the_floor_and_the_cap() {
        for c in cases(1, CASES) {
            let shares = c.shares();
            assert_eq!(shares.len(), c.weights.len(), "{c:?}");
            let floor = c.floor.min(c.cap);
            assert!(shares.iter().all(|&s| floor <= s && s <= c.cap), "{c:?}: {shares:?}");
            for (&w, &s) in c.weights.iter().zip(&shares) {
                if w == 0 {
                    assert_eq!(s, floor, "{c:?}: {shares:?}");
                }
            }
        }
    }

    #[test]
    fn shares_fit_the_total_and_use_it_unless_all_are_capped() {
        let mut handed_on = 0;
        for c in cases(2, CASES) {
            let shares = c.shares();
            let n = shares.len() as u128;
            let floor = c.floor.min(c.cap);
            let sum: u128 = shares.iter().map(|&s| u128::from(s)).sum();
            let total = u128::from(c.total);
            if n * u128::from(floor) > total {
                assert!(shares.iter().all(|&s| s == floor), "{c:?}: {shares:?}");
                continue;
            }
            assert!(sum <= total, "{c:?}: {shares:?}");
            let room_left = c.weights.iter().zip(&shares).any(|(&w, &s)| w > 0 && s < c.cap);
            if room_left {
                // Rounding down loses less than a byte per session.
                assert!(total - sum < n, "{c:?}: {shares:?} sum to {sum}");
                handed_on += usize::from(shares.contains(&c.cap));
            }
        }
        assert!(handed_on > 200, "only {handed_on} cases had a capped session handing on");
    }

    #[test]
    fn sessions_between_floor_and_cap_are_proportional_to_their_weights() {
        let mut compared = 0;
        for c in cases(3, CASES) {
            let shares = c.shares();
            let floor = c.floor.min(c.cap);
            let between = |s: u64| floor < s && s < c.cap;
            let sessions: Vec<(u128, u128)> =
                c.weights.iter().zip(&shares).map(|(&w, &s)| (u128::from(w), u128::from(s))).collect();
            for (i, &(wi, si)) in sessions.iter().enumerate() {
                for &(wj, sj) in &sessions[i + 1..] {
                    // Heavier never gets less.
                    if wi >= wj {
                        assert!(si >= sj, "{c:?}: {shares:?}");
                    }
                    if wj >= wi {
                        assert!(sj >= si, "{c:?}: {shares:?}");
                    }
                }
                if !between(si as u64) {
                    continue;
                }
                // si = floor(wi·λ): wi·λ - 1 < si <= wi·λ.
                for &(wj, sj) in &sessions {
                    if between(sj as u64) {
                        compared += 1;
                        assert!(si * wj <= sj * wi + wi.max(wj), "{c:?}: {shares:?}");
                    } else if wj > 0 && sj == u128::from(c.cap) {
                        // Capped: wj·λ >= cap, and λ < (si + 1) / wi.
                        assert!(sj * wi < (si + 1) * wj, "{c:?}: {shares:?}");
                    } else if wj > 0 && sj == u128::from(floor) {
                        // At the floor: wj·λ < floor + 1, and λ >= si / wi.
                        assert!(si * wj < (sj + 1) * wi, "{c:?}: {shares:?}");
                    }
                }
            }
        }
        assert!(compared > 1_000, "only {compared} comparisons");
    }

    #[test]
    fn more_weight_never_lowers_a_share_nor_raises_the_others() {
        let mut rng = Rng(4);
        for c in cases(5, CASES).filter(|c| !c.weights.is_empty()) {
            let before = c.shares();
            let i = rng.below(c.weights.len() as u64) as usize;
            let mut heavier = c.clone();
            let step = weight(&mut rng).max(1);
            heavier.weights[i] = heavier.weights[i].saturating_add(1 + rng.below(step));
            let after = heavier.shares();
            assert!(after[i] >= before[i], "{c:?} -> {heavier:?}: {before:?} -> {after:?}");
            for j in (0..before.len()).filter(|&j| j != i) {
                assert!(after[j] <= before[j], "{c:?} -> {heavier:?}: {before:?} -> {after:?}");
            }
        }
    }

    #[test]
    fn a_new_session_never_raises_another_share() {
        let mut rng = Rng(6);
        for c in cases(7, CASES) {
            let before = c.shares();
            let at = rng.below(c.weights.len() as u64 + 1) as usize;
            let mut more = c.clone();
            more.weights.insert(at, weight(&mut rng));
            let mut after = more.shares();
            after.remove(at);
            assert!(after.iter().zip(&before).all(|(a, b)| a <= b), "{c:?} + {more:?}: {before:?} -> {after:?}");
        }
    }

    #[test]
    fn the_order_of_sessions_does_not_matter() {
        let mut rng = Rng(8);
        for c in cases(9, CASES) {
            let shares = c.shares();
            let mut order: Vec<usize> = (0..c.weights.len()).collect();
            for k in (1..order.len()).rev() {
                order.swap(k, rng.below(k as u64 + 1) as usize);
            }
            let shuffled = Case { weights: order.iter().map(|&k| c.weights[k]).collect(), ..c.clone() };
            let expected: Vec<u64> = order.iter().map(|&k| shares[k]).collect();
            assert_eq!(shuffled.shares(), expected, "{c:?}");
        }
    }

    #[test]
    fn scaled_session_high_never_exceeds_the_share() {
        let mut rng = Rng(10);
        for _ in 0..CASES {
            let max = 1 + rng.below(u64::MAX);
            let high = rng.below(max.saturating_add(1));
            let share = rng.next() >> rng.below(64);
            let limits = Limits { memory_max: Some(max), memory_high: Some(high), ..Limits::default() };
            let scaled = session_high(share, &limits).unwrap();
            assert!(scaled <= share);
            // The ratio is kept to within a byte.
            let lhs = u128::from(scaled) * u128::from(max);
            let exact = u128::from(share) * u128::from(high);
            assert!(lhs <= exact && exact < lhs + u128::from(max), "{share} {high} {max}");
        }
    }
}
