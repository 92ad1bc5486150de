//! `user` and `group`: who a server runs as.
//!
//! A policy names an account the way `chown` and systemd's `User=` do: a
//! name, looked up on the host when the server starts, or a number, used as
//! given. Only the spelling is checked here; whether the name exists is the
//! runner's question, asked on the host that runs the server.

use std::fmt;

/// A user or a group as written in the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Account {
    /// Looked up in the host's user or group database.
    Name(String),
    /// A uid or gid, used as given (it need not exist in any database).
    Id(u32),
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Name(name) => f.write_str(name),
            Account::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Which of the two a value names, for the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Group,
}

impl Kind {
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Kind::User => r#"expected a user name like "nobody" or a numeric uid like 65534"#,
            Kind::Group => r#"expected a group name like "nogroup" or a numeric gid like 65534"#,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Kind::User => "uid",
            Kind::Group => "gid",
        }
    }
}

/// The longest name accepted: the kernel has no limit, but `LOGIN_NAME_MAX`
/// is 256 with its NUL.
const MAX_NAME: usize = 255;

/// A number, as a TOML integer or a string of digits.
pub(crate) fn from_id(n: i128, kind: Kind) -> Result<Account, String> {
    let id = kind.id();
    match u32::try_from(n) {
        // (uid_t)-1 tells setresuid(2) and chown(2) to leave the id as it is.
        Ok(u32::MAX) => Err(format!("{} is (u32)-1, which the kernel reads as \"leave the {id} unchanged\"", u32::MAX)),
        Ok(id) => Ok(Account::Id(id)),
        Err(_) if n < 0 => Err(format!("a {id} cannot be negative")),
        Err(_) => Err(format!("too large: a {id} is at most {}", u32::MAX - 1)),
    }
}

/// A name, or a string of digits read as a number (as `chown` reads it).
pub(crate) fn from_text(text: &str, kind: Kind) -> Result<Account, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i128>() {
            Ok(n) => from_id(n, kind),
            Err(_) => from_id(i128::MAX, kind),
        };
    }
    if text.is_empty() {
        return Err(format!("an empty name; {}", kind.expected()));
    }
    if text.len() > MAX_NAME {
        return Err(format!("a name is at most {MAX_NAME} bytes long"));
    }
    let body = text.strip_suffix('$').unwrap_or(text);
    let portable = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if body.is_empty() || !body.chars().all(portable) {
        return Err(format!(
            "a name holds only letters, digits, \"_\", \"-\" and \".\" (and may end in \"$\"); {}",
            kind.expected()
        ));
    }
    if body.starts_with(['-', '.']) {
        return Err(format!("a name cannot start with \"-\" or \".\"; {}", kind.expected()));
    }
    Ok(Account::Name(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(from_text("nobody", Kind::User), Ok(Account::Name("nobody".into())));
        assert_eq!(from_text("www-data", Kind::User), Ok(Account::Name("www-data".into())));
        assert_eq!(from_text("Svc_1.x", Kind::User), Ok(Account::Name("Svc_1.x".into())));
        assert_eq!(from_text("host$", Kind::User), Ok(Account::Name("host$".into())));
        assert_eq!(from_text("1password", Kind::User), Ok(Account::Name("1password".into())));
        assert_eq!(from_text("65534", Kind::User), Ok(Account::Id(65534)));
        assert_eq!(from_text("0", Kind::Group), Ok(Account::Id(0)));
        assert_eq!(from_id(4_294_967_294, Kind::User), Ok(Account::Id(4_294_967_294)));
    }

    #[test]
    fn what_is_refused() {
        for bad in ["", "a b", "a:b", "a/b", "ümlaut", "$", "a$b", "\u{1b}[31m"] {
            assert!(from_text(bad, Kind::User).is_err(), "{bad:?}");
        }
        assert!(from_text("-rf", Kind::User).unwrap_err().contains("cannot start with"));
        assert!(from_text(".hidden", Kind::Group).unwrap_err().contains("cannot start with"));
        assert!(from_text(&"a".repeat(256), Kind::User).unwrap_err().contains("at most 255 bytes"));
        assert_eq!(from_id(-1, Kind::User).unwrap_err(), "a uid cannot be negative",);
        assert_eq!(
            from_id(4_294_967_295, Kind::Group).unwrap_err(),
            "4294967295 is (u32)-1, which the kernel reads as \"leave the gid unchanged\""
        );
        assert_eq!(from_text("4294967296", Kind::User).unwrap_err(), "too large: a uid is at most 4294967294");
        assert_eq!(
            from_text("99999999999999999999999999999999999999999", Kind::User).unwrap_err(),
            "too large: a uid is at most 4294967294"
        );
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(Account::Name("nobody".into()).to_string(), "nobody");
        assert_eq!(Account::Id(65534).to_string(), "65534");
    }
}
