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
    //
    // proptest generates the cases and shrinks a failure to a small one.
    // The generators aim at the edges: small totals exercise rounding, huge
    // ones overflow; floors and caps land below, around and above the total
    // and each other; weights are zero, small, large and huge.

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};

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

    fn weight() -> impl Strategy<Value = u64> {
        prop_oneof![0..3u64, 1..11u64, 1..100_001u64, (any::<u64>(), 0..64u32).prop_map(|(w, s)| w >> s)]
    }

    /// A value "below, around or above" `of`.
    fn relative_to(of: u64, around: u64) -> impl Strategy<Value = u64> {
        prop_oneof![Just(0), (1..21u64).prop_map(move |d| of / d), Just(around), 0..=of, any::<u64>()]
    }

    fn case() -> impl Strategy<Value = Case> {
        let total = prop_oneof![0..1_000u64, 0..64 * GIB, Just(8 * GIB), any::<u64>()];
        total.prop_flat_map(|total| {
            let cap = prop_oneof![
                Just(total),
                (1..9u64).prop_map(move |d| total / d),
                Just(u64::MAX),
                0..=total,
                any::<u64>()
            ];
            (prop::collection::vec(weight(), 0..9), relative_to(total, total / 10), cap)
                .prop_map(move |(weights, floor, cap)| Case { total, weights, floor, cap })
        })
    }

    const CASES: u32 = 2_000;

    fn config() -> Config {
        Config { cases: CASES, failure_persistence: None, ..Config::default() }
    }

    /// `count` cases from the same generator, for the checks that the
    /// generator reaches what the properties are about.
    fn sample(count: usize) -> Vec<Case> {
        let mut runner = TestRunner::deterministic();
        (0..count).map(|_| case().new_tree(&mut runner).expect("a case").current()).collect()
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn every_share_is_between_the_floor_and_the_cap(c in case()) {
            let shares = c.shares();
            prop_assert_eq!(shares.len(), c.weights.len());
            let floor = c.floor.min(c.cap);
            prop_assert!(shares.iter().all(|&s| floor <= s && s <= c.cap), "{:?}", shares);
            for (&w, &s) in c.weights.iter().zip(&shares) {
                if w == 0 {
                    prop_assert_eq!(s, floor);
                }
            }
        }

        #[test]
        fn shares_fit_the_total_and_use_it_unless_all_are_capped(c in case()) {
            let shares = c.shares();
            let n = shares.len() as u128;
            let floor = c.floor.min(c.cap);
            let sum: u128 = shares.iter().map(|&s| u128::from(s)).sum();
            let total = u128::from(c.total);
            if n * u128::from(floor) > total {
                prop_assert!(shares.iter().all(|&s| s == floor), "{:?}", shares);
            } else {
                prop_assert!(sum <= total, "{:?}", shares);
                let room_left = c.weights.iter().zip(&shares).any(|(&w, &s)| w > 0 && s < c.cap);
                if room_left {
                    // Rounding down loses less than a byte per session.
                    prop_assert!(total - sum < n, "{:?} sum to {}", shares, sum);
                }
            }
        }

        #[test]
        fn sessions_between_floor_and_cap_are_proportional_to_their_weights(c in case()) {
            let shares = c.shares();
            let floor = c.floor.min(c.cap);
            let between = |s: u64| floor < s && s < c.cap;
            let sessions: Vec<(u128, u128)> =
                c.weights.iter().zip(&shares).map(|(&w, &s)| (u128::from(w), u128::from(s))).collect();
            for (i, &(wi, si)) in sessions.iter().enumerate() {
                for &(wj, sj) in &sessions[i + 1..] {
                    // Heavier never gets less.
                    prop_assert!(wi < wj || si >= sj, "{:?}", shares);
                    prop_assert!(wj < wi || sj >= si, "{:?}", shares);
                }
                if !between(si as u64) {
                    continue;
                }
                // si = floor(wi·λ): wi·λ - 1 < si <= wi·λ.
                for &(wj, sj) in &sessions {
                    if between(sj as u64) {
                        prop_assert!(si * wj <= sj * wi + wi.max(wj), "{:?}", shares);
                    } else if wj > 0 && sj == u128::from(c.cap) {
                        // Capped: wj·λ >= cap, and λ < (si + 1) / wi.
                        prop_assert!(sj * wi < (si + 1) * wj, "{:?}", shares);
                    } else if wj > 0 && sj == u128::from(floor) {
                        // At the floor: wj·λ < floor + 1, and λ >= si / wi.
                        prop_assert!(si * wj < (sj + 1) * wi, "{:?}", shares);
                    }
                }
            }
        }

        #[test]
        fn more_weight_never_lowers_a_share_nor_raises_the_others(
            c in case().prop_filter("a session", |c| !c.weights.is_empty()),
            pick in any::<prop::sample::Index>(),
            extra in weight(),
        ) {
            let before = c.shares();
            let i = pick.index(c.weights.len());
            let mut heavier = c.clone();
            heavier.weights[i] = heavier.weights[i].saturating_add(extra.max(1));
            let after = heavier.shares();
            prop_assert!(after[i] >= before[i], "{:?} -> {:?}", before, after);
            for j in (0..before.len()).filter(|&j| j != i) {
                prop_assert!(after[j] <= before[j], "{:?} -> {:?}", before, after);
            }
        }

        #[test]
        fn a_new_session_never_raises_another_share(c in case(), at in any::<prop::sample::Index>(), w in weight()) {
            let before = c.shares();
            let at = at.index(c.weights.len() + 1);
            let mut more = c.clone();
            more.weights.insert(at, w);
            let mut after = more.shares();
            after.remove(at);
            prop_assert!(after.iter().zip(&before).all(|(a, b)| a <= b), "{:?} -> {:?}", before, after);
        }

        #[test]
        fn the_order_of_sessions_does_not_matter(c in case(), seed in any::<u64>()) {
            let shares = c.shares();
            // A permutation from the seed (Fisher-Yates over a simple LCG).
            let mut order: Vec<usize> = (0..c.weights.len()).collect();
            let mut x = seed;
            for k in (1..order.len()).rev() {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                order.swap(k, (x >> 33) as usize % (k + 1));
            }
            let shuffled = Case { weights: order.iter().map(|&k| c.weights[k]).collect(), ..c.clone() };
            let expected: Vec<u64> = order.iter().map(|&k| shares[k]).collect();
            prop_assert_eq!(shuffled.shares(), expected);
        }

        #[test]
        fn scaled_session_high_never_exceeds_the_share(
            (max, high) in (1..=u64::MAX).prop_flat_map(|max| (Just(max), 0..=max)),
            share in (any::<u64>(), 0..64u32).prop_map(|(s, k)| s >> k),
        ) {
            let limits = Limits { memory_max: Some(max), memory_high: Some(high), ..Limits::default() };
            let scaled = session_high(share, &limits).expect("a high");
            prop_assert!(scaled <= share);
            // The ratio is kept to within a byte.
            let lhs = u128::from(scaled) * u128::from(max);
            let exact = u128::from(share) * u128::from(high);
            prop_assert!(lhs <= exact && exact < lhs + u128::from(max), "{} {} {}", share, high, max);
        }
    }

    /// The properties above mean little unless the generator reaches the
    /// cases they are about: capped sessions handing their share on, and
    /// sessions strictly between floor and cap to compare.
    #[test]
    fn the_generator_reaches_capped_and_proportional_sessions() {
        let (mut handed_on, mut between) = (0, 0);
        for c in sample(5_000) {
            let shares = c.shares();
            let floor = c.floor.min(c.cap);
            let fits = (shares.len() as u128) * u128::from(floor) <= u128::from(c.total);
            let room_left = c.weights.iter().zip(&shares).any(|(&w, &s)| w > 0 && s < c.cap);
            if fits && room_left && shares.contains(&c.cap) {
                handed_on += 1;
            }
            between += shares.iter().filter(|&&s| floor < s && s < c.cap).count();
        }
        assert!(handed_on > 100, "only {handed_on} cases had a capped session handing on");
        assert!(between > 1_000, "only {between} sessions between floor and cap");
    }
}
