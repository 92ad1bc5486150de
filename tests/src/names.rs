//! Session names as the runner documents them (README, "Enforcement drivers"), computed here
//! independently of the runner's code: a test that reads a session's cgroup or slice checks
//! the documented name, not whatever the runner made.
//!
//! An id that is already a valid name is its own name; any other id becomes its first 32
//! characters with the rest of the alphabet mapped to `_`, a separator the kept alphabet does
//! not contain, and 16 hex digits of FNV-1a 64 of the raw id. For systemd (slice names): keep
//! `[A-Za-z0-9]`, up to 48 characters, separator `_`. For cgroupfs (cgroup names): keep
//! `[A-Za-z0-9_@-]`, up to 64 characters, separator `.`.

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn unique(raw: &str, keep: impl Fn(char) -> bool, max_plain: usize, separator: char) -> String {
    if !raw.is_empty() && raw.len() <= max_plain && raw.chars().all(&keep) {
        return raw.to_owned();
    }
    let prefix: String = raw.chars().map(|c| if keep(c) { c } else { '_' }).take(32).collect();
    format!("{prefix}{separator}{:016x}", fnv1a64(raw.as_bytes()))
}

/// The word a session id becomes in its slice name `mcp-runner-<word>.slice`.
pub fn slice_word(session: &str) -> String {
    unique(session, |c| c.is_ascii_alphanumeric(), 48, '_')
}

/// The name of a session's cgroup under the cgroupfs driver's global cgroup.
pub fn session_cgroup_name(session: &str) -> String {
    format!("s-{}", unique(session, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@'), 64, '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same values the runner's unit tests pin (runner/src/driver/systemd/units.rs,
    /// runner/src/driver/cgroupfs/hierarchy.rs).
    #[test]
    fn names_agree_with_the_runners_pinned_values() {
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(slice_word("work"), "work");
        assert_eq!(slice_word("client-12-345"), "client_12_345_7334c5247687dff1");
        assert_eq!(slice_word(""), "_cbf29ce484222325");
        assert_eq!(session_cgroup_name("client-12-345"), "s-client-12-345");
        assert_eq!(session_cgroup_name("team.a"), "s-team_a.de938b717d145fe5");
        assert_eq!(session_cgroup_name(""), "s-.cbf29ce484222325");
        assert_ne!(slice_word("team-a"), slice_word("team_a"));
    }
}
