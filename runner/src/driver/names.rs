//! Names of the places a driver makes from client input: a session id (a
//! client process, `--session` or `MCP_RUNNER_SESSION`) becomes a cgroup
//! name or a systemd slice name, each with a narrower alphabet and a length
//! limit than the id.
//!
//! The mapping must be injective: two sessions that share a name share a
//! budget, and the systemd driver releasing one session's slice would stop
//! the other's servers. Mapping every other character to `_` and cutting
//! the length is not (`team-a`, `team_a` and `team.a` were one slice). So:
//!
//! - an id that is already a valid name (only kept characters, not empty,
//!   not too long) is its own name: `work` stays `work`;
//! - any other id becomes a cleaned, cut prefix (readable), a separator
//!   the kept alphabet does not contain, and 16 hex digits of FNV-1a 64 of
//!   the raw id's bytes: `team-a` becomes `team_a_` + hash for systemd.
//!
//! The two kinds never meet (only the second contains the separator), and
//! two hashed names are equal only if the 64-bit hashes are. FNV-1a is
//! written out here because the name must be the same for every runner
//! build that meets the same session: std's `DefaultHasher` is allowed to
//! change between Rust releases.

/// FNV-1a, 64 bits (the offset basis and prime of the FNV specification).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// How one kind of place may be named.
#[derive(Clone, Copy, Debug)]
pub struct Alphabet {
    /// The characters a name keeps as they are.
    pub keep: fn(char) -> bool,
    /// What every other character becomes in the readable prefix.
    pub replacement: char,
    /// Between the prefix and the hash: must not be a kept character.
    pub separator: char,
    /// The longest id that is its own name.
    pub max_plain: usize,
}

/// The readable part of a hashed name.
const PREFIX_MAX: usize = 32;

/// The name of `raw` in `alphabet` (see the module doc).
pub fn unique_name(raw: &str, alphabet: &Alphabet) -> String {
    debug_assert!(!(alphabet.keep)(alphabet.separator), "the separator must not be a kept character");
    let plain = !raw.is_empty() && raw.len() <= alphabet.max_plain && raw.chars().all(alphabet.keep);
    if plain {
        return raw.to_owned();
    }
    let prefix: String =
        raw.chars().map(|c| if (alphabet.keep)(c) { c } else { alphabet.replacement }).take(PREFIX_MAX).collect();
    format!("{prefix}{}{:016x}", alphabet.separator, fnv1a64(raw.as_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        // The FNV specification's test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Ids that a lossy mapping folds together: punctuation that maps to
    /// the same character, long ids with a common prefix, non-ASCII, the
    /// separator itself, ids that look like hashed names.
    pub(crate) fn tricky_ids() -> Vec<String> {
        let long = "x".repeat(300);
        let mut ids: Vec<String> = [
            "",
            "_",
            "-",
            ".",
            "@",
            "a",
            "team-a",
            "team_a",
            "team.a",
            "team a",
            "team/a",
            "team@a",
            "team\\a",
            "team\u{e9}a",
            "team\u{e8}a",
            "TEAM-A",
            "team-a ",
            " team-a",
            "team--a",
            "team__a",
            "..",
            "a/../b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        ids.push(long.clone());
        ids.push(format!("{long}y"));
        ids.push(format!("{}y", &long[..63]));
        ids.push(format!("{}z", &long[..63]));
        ids.push(format!("{}y", &long[..47]));
        ids.push(format!("{}z", &long[..47]));
        ids.push("x".repeat(48));
        ids.push("x".repeat(49));
        ids.push("x".repeat(64));
        ids.push("x".repeat(65));
        // What a hashed name of another id looks like, as an id.
        ids.push(format!("team_a_{:016x}", fnv1a64(b"team-a")));
        ids.push(format!("team-a.{:016x}", fnv1a64(b"team/a")));
        ids
    }

    /// Random ids over an alphabet heavy in the characters names fold.
    pub(crate) fn random_ids(n: usize) -> Vec<String> {
        const CHARS: &[char] = &['a', 'b', 'Z', '0', '9', '-', '_', '.', '@', ' ', '/', '\u{e9}', ':', '\\'];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        (0..n)
            .map(|_| {
                let len = (next() % 80) as usize;
                (0..len).map(|_| CHARS[(next() % CHARS.len() as u64) as usize]).collect()
            })
            .collect()
    }

    /// Distinct ids, distinct names, every name within `valid`.
    pub(crate) fn assert_injective(name: impl Fn(&str) -> String, valid: impl Fn(&str) -> Result<(), String>) {
        let mut ids = tricky_ids();
        ids.extend(random_ids(20_000));
        ids.sort();
        ids.dedup();
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for id in ids {
            let n = name(&id);
            if let Err(why) = valid(&n) {
                panic!("the name {n:?} of {id:?} is not valid: {why}");
            }
            if let Some(other) = seen.insert(n.clone(), id.clone()) {
                panic!("{other:?} and {id:?} both became {n:?}");
            }
        }
    }

    #[test]
    fn plain_ids_are_their_own_names_others_get_a_hash() {
        let a = Alphabet { keep: |c| c.is_ascii_alphanumeric(), replacement: '_', separator: '_', max_plain: 8 };
        assert_eq!(unique_name("work", &a), "work");
        assert_eq!(unique_name("team-a", &a), format!("team_a_{:016x}", fnv1a64(b"team-a")));
        assert_eq!(unique_name("", &a), format!("_{:016x}", fnv1a64(b"")));
        assert_eq!(unique_name("abcdefghi", &a), format!("abcdefghi_{:016x}", fnv1a64(b"abcdefghi")));
        let long = unique_name(&"y".repeat(100), &a);
        assert_eq!(long, format!("{}_{:016x}", "y".repeat(PREFIX_MAX), fnv1a64("y".repeat(100).as_bytes())));
        assert_injective(|id| unique_name(id, &a), |_| Ok(()));
    }
}
