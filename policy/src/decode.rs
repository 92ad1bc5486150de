//! TOML tree -> typed sections, with every key and type check.
//!
//! Decoding walks the spanned tree by hand instead of deriving
//! `Deserialize`: serde stops at the first error and loses positions, while
//! a policy check should list every mistake, each at its own line and
//! column, with a hint of what would be valid.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;
use toml::de::{DeInteger, DeString, DeTable, DeValue};

use crate::account::{self, Account};
use crate::budget::{DriverPref, Enforcement, Share};
use crate::builtin::MIN_SAMPLE_INTERVAL;
use crate::cpu::{EXPECTED_CPU, parse_cpu};
use crate::diag::{Diagnostic, closest, one_of};
use crate::duration::{EXPECTED_DURATION, parse_duration};
use crate::glob::Glob;
use crate::located::{LineIndex, Located, Location};
use crate::schema::{
    DEFAULTS_KEYS, Entry, GLOBAL_KEYS, GlobalKeys, LimitKeys, Opt, PolicyFile, SECTIONS, SERVER_KEYS, SESSION_KEYS,
    ServerKeys, SessionKeys, entry_label, sections_with_key,
};
use crate::size::{EXPECTED_SIZE, Percent, Size, WHOLE, parse_size, percent_ppm, split_number};

const EXPECTED_COUNT: &str = r#"expected a positive integer or "max""#;
const EXPECTED_THROTTLE: &str = r#"expected a duration like "60s", or "never""#;
const EXPECTED_PATH: &str = r#"expected an absolute path like "/sys/fs/cgroup/mcp-runner""#;
const EXPECTED_PATTERNS: &str = r#"expected a list of patterns like ["npx * @scope/server*"]"#;
const EXPECTED_PATTERN: &str = r#"expected a pattern like "npx * @scope/server*""#;
const EXPECTED_HEADROOM: &str = r#"expected a size like "64M" or "5%", or "0" to disable the check"#;
const EXPECTED_PRESSURE: &str = r#"expected a percentage like "40%", or "max" to disable the check"#;
const EXPECTED_FLOOR: &str = r#"expected a size like "512M" or "10%""#;
const EXPECTED_WEIGHT: &str = "expected a positive integer";
const EXPECTED_BOOL: &str = "expected true or false";
/// How much of an offending value to quote back.
const QUOTE_CHARS: usize = 40;

type Item<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>);

/// Decodes a whole document, or returns every problem found in it.
pub(crate) fn decode(text: &str, origin: &str) -> Result<PolicyFile, Vec<Diagnostic>> {
    let mut decoder = Decoder { text, lines: LineIndex::new(text.as_bytes()), origin, diags: Vec::new() };
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The recovered tree is a guess; checking it would report
        // consequences of the syntax error as if they were mistakes.
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            decoder.error(span, format!("invalid TOML: {}", e.message()));
        }
        return Err(decoder.diags);
    }
    let file = decoder.document(doc.get_ref());
    if decoder.diags.is_empty() { Ok(file) } else { Err(decoder.diags) }
}

/// Table entries in the order they were written: the parser keeps tables in
/// a sorted map, and both error order and `match` priority follow the file.
fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Item<'a, 'i>> {
    let mut items: Vec<Item<'a, 'i>> = table.iter().collect();
    items.sort_by_key(|(key, _)| key.span().start);
    items
}

struct Decoder<'t> {
    text: &'t str,
    lines: LineIndex<'t>,
    origin: &'t str,
    diags: Vec<Diagnostic>,
}

impl Decoder<'_> {
    fn loc(&self, offset: usize) -> Location {
        self.lines.locate(offset)
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        let location = Some(self.loc(span.start));
        self.diags.push(Diagnostic { origin: self.origin.to_owned(), location, message });
    }

    /// The offending value as the user wrote it, on one line and short.
    fn written(&self, span: Range<usize>) -> String {
        let raw = self.text.get(span).unwrap_or("");
        let first_line = raw.lines().next().unwrap_or("");
        if first_line.len() < raw.len() || first_line.chars().count() > QUOTE_CHARS {
            let short: String = first_line.chars().take(QUOTE_CHARS).collect();
            format!("{short}…")
        } else {
            first_line.to_owned()
        }
    }

    /// Parses one value; on failure records `invalid KEY VALUE: REASON` at
    /// the value.
    fn value<T>(
        &mut self,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        parse: impl FnOnce(&DeValue<'_>) -> Result<T, String>,
    ) -> Opt<T> {
        match parse(v.get_ref()) {
            Ok(value) => Some(Located::new(value, self.loc(v.span().start))),
            Err(reason) => {
                let message = format!("invalid {key} {}: {reason}", self.written(v.span()));
                self.error(v.span(), message);
                None
            }
        }
    }

    fn document(&mut self, doc: &DeTable<'_>) -> PolicyFile {
        let mut file = PolicyFile::default();
        for (key, value) in in_file_order(doc) {
            match key.get_ref().as_ref() {
                "global" => {
                    if let Some(t) = self.section(key, value, "[global]") {
                        file.global = self.global(t);
                    }
                }
                "session" => {
                    if let Some(t) = self.section(key, value, "[session]") {
                        file.session = self.session(t);
                    }
                }
                "defaults" => {
                    if let Some(t) = self.section(key, value, "[defaults]") {
                        file.defaults = self.server_keys(t, "[defaults]", DEFAULTS_KEYS).0;
                    }
                }
                "server" => file.entries = self.servers(key, value),
                _ => self.unknown_top_level(key, value),
            }
        }
        file
    }

    fn section<'a, 'i>(
        &mut self,
        key: &Spanned<DeString<'_>>,
        value: &'a Spanned<DeValue<'i>>,
        label: &str,
    ) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                let message = format!(
                    "\"{}\" must be a section: write {label} on a line of its own, then its keys",
                    key.get_ref()
                );
                self.error(key.span(), message);
                None
            }
        }
    }

    fn unknown_top_level(&mut self, key: &Spanned<DeString<'_>>, value: &Spanned<DeValue<'_>>) {
        let name = key.get_ref().as_ref();
        const VALID: &str = "[global], [session], [defaults] and [server.NAME]";
        let message = if value.get_ref().is_table() {
            match closest(name, SECTIONS) {
                Some("server") => {
                    format!("unknown section [{name}]; did you mean [server.NAME]?")
                }
                Some(near) => format!("unknown section [{name}]; did you mean [{near}]?"),
                None => format!("unknown section [{name}]; valid sections are {VALID}"),
            }
        } else {
            let valid_in = sections_with_key(name);
            if valid_in.is_empty() {
                format!("unknown key \"{name}\" outside any section; valid sections are {VALID}")
            } else {
                format!("key \"{name}\" must be inside a section: it is valid in {}", valid_in.join(", "))
            }
        };
        self.error(key.span(), message);
    }

    fn unknown_key(&mut self, key: &Spanned<DeString<'_>>, section: &str, valid: &[&str]) {
        let name = key.get_ref().as_ref();
        let valid_in = sections_with_key(name);
        let message = if !valid_in.is_empty() {
            format!("key \"{name}\" is not valid in {section}; it belongs in {}", valid_in.join(", "))
        } else if let Some(near) = closest(name, valid) {
            format!("unknown key \"{name}\" in {section}; did you mean \"{near}\"?")
        } else {
            format!("unknown key \"{name}\" in {section}; valid keys are {}", valid.join(", "))
        };
        self.error(key.span(), message);
    }

    fn global(&mut self, table: &DeTable<'_>) -> GlobalKeys {
        let mut g = GlobalKeys::default();
        for (k, v) in in_file_order(table) {
            let key = k.get_ref().as_ref();
            if self.limit_key(&mut g.limits, key, v) {
                continue;
            }
            match key {
                "max_servers" => g.max_servers = self.count(key, v),
                "max_sessions" => g.max_sessions = self.count(key, v),
                "driver" => g.driver = self.choice(key, v, DriverPref::NAMES, DriverPref::from_name),
                "cgroup_root" => g.cgroup_root = self.value(key, v, cgroup_root),
                "admission_wait" => g.admission_wait = self.value(key, v, |v| duration(v, EXPECTED_DURATION)),
                "min_headroom" => g.min_headroom = self.value(key, v, min_headroom),
                "max_pressure" => g.max_pressure = self.value(key, v, max_pressure),
                _ => self.unknown_key(k, "[global]", GLOBAL_KEYS),
            }
        }
        g
    }

    fn session(&mut self, table: &DeTable<'_>) -> SessionKeys {
        let mut s = SessionKeys::default();
        for (k, v) in in_file_order(table) {
            let key = k.get_ref().as_ref();
            if self.limit_key(&mut s.limits, key, v) {
                continue;
            }
            match key {
                "max_servers" => s.max_servers = self.count(key, v),
                "floor" => s.floor = self.value(key, v, floor),
                _ => self.unknown_key(k, "[session]", SESSION_KEYS),
            }
        }
        s
    }

    /// `[defaults]` or one `[server.NAME]`; the patterns are only accepted
    /// when `valid` includes `match`.
    fn server_keys(&mut self, table: &DeTable<'_>, label: &str, valid: &[&str]) -> (ServerKeys, Vec<Located<Glob>>) {
        let mut s = ServerKeys::default();
        let mut patterns = Vec::new();
        for (k, v) in in_file_order(table) {
            let key = k.get_ref().as_ref();
            if self.limit_key(&mut s.limits, key, v) {
                continue;
            }
            match key {
                "grace" => s.grace = self.value(key, v, |v| duration(v, EXPECTED_DURATION)),
                "kill_timeout" => s.kill_timeout = self.value(key, v, |v| duration(v, EXPECTED_DURATION)),
                "sample_interval" => s.sample_interval = self.value(key, v, sample_interval),
                "throttle_timeout" => s.throttle_timeout = self.value(key, v, throttle_timeout),
                "require" => s.require = self.choice(key, v, Enforcement::NAMES, Enforcement::from_name),
                "share" => s.share = self.choice(key, v, Share::NAMES, Share::from_name),
                "idle_timeout" => s.idle_timeout = self.value(key, v, |v| duration(v, EXPECTED_DURATION)),
                "max_instances" => s.max_instances = self.count(key, v),
                "weight" => s.weight = self.value(key, v, weight),
                "no_new_privs" => s.no_new_privs = self.value(key, v, boolean),
                "drop_capabilities" => s.drop_capabilities = self.value(key, v, boolean),
                "user" => s.user = self.value(key, v, |v| account(v, account::Kind::User)),
                "group" => s.group = self.value(key, v, |v| account(v, account::Kind::Group)),
                "match" if valid.contains(&"match") => patterns = self.patterns(v),
                _ => self.unknown_key(k, label, valid),
            }
        }
        (s, patterns)
    }

    fn servers(&mut self, key: &Spanned<DeString<'_>>, value: &Spanned<DeValue<'_>>) -> Vec<Entry> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(key.span(), "\"server\" must hold one section per server, like [server.github]".into());
            return Vec::new();
        };
        let mut entries = Vec::new();
        for (k, v) in in_file_order(table) {
            let name = k.get_ref().as_ref();
            let label = entry_label(name);
            match v.get_ref() {
                DeValue::Table(_) if name.is_empty() => {
                    self.error(k.span(), "a server name cannot be empty".into());
                }
                DeValue::Table(t) => {
                    let (keys, patterns) = self.server_keys(t, &label, SERVER_KEYS);
                    entries.push(Entry { name: name.to_owned(), at: self.loc(k.span().start), keys, patterns });
                }
                DeValue::Array(_) => {
                    let message = format!("expected one section {label} per server; write {label}, not [{label}]");
                    self.error(k.span(), message);
                }
                _ if SERVER_KEYS.contains(&name) => {
                    let message = format!(
                        "key \"{name}\" is not valid directly in [server]; put it in \
                         [server.NAME] for one server, or in [defaults] for every server"
                    );
                    self.error(k.span(), message);
                }
                _ => {
                    let message = format!("\"{name}\" in [server] must be a section like {label}");
                    self.error(k.span(), message);
                }
            }
        }
        entries
    }

    fn patterns(&mut self, v: &Spanned<DeValue<'_>>) -> Vec<Located<Glob>> {
        let DeValue::Array(items) = v.get_ref() else {
            let message = format!("invalid match {}: {EXPECTED_PATTERNS}", self.written(v.span()));
            self.error(v.span(), message);
            return Vec::new();
        };
        let mut patterns = Vec::new();
        for item in items.iter() {
            let parsed = self.value("match pattern", item, |value| match value {
                DeValue::String(s) if s.is_empty() => Err("an empty pattern only matches an empty command line".into()),
                DeValue::String(s) => Ok(Glob::new(s)),
                _ => Err(EXPECTED_PATTERN.into()),
            });
            patterns.extend(parsed);
        }
        patterns
    }

    /// Decodes the keys every level shares; false if `key` is not one of them.
    fn limit_key(&mut self, limits: &mut LimitKeys, key: &str, v: &Spanned<DeValue<'_>>) -> bool {
        match key {
            "memory_max" => limits.memory_max = self.value(key, v, |v| size(v, false)),
            "memory_high" => limits.memory_high = self.value(key, v, |v| size(v, false)),
            "swap_max" => limits.swap_max = self.value(key, v, |v| size(v, true)),
            "pids_max" => limits.pids_max = self.count(key, v),
            "cpu_max" => limits.cpu_max = self.value(key, v, cpu),
            _ => return false,
        }
        true
    }

    fn count<T: TryFrom<i128>>(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Opt<Option<T>> {
        self.value(key, v, |value| match value {
            DeValue::Integer(i) => match integer(i) {
                Some(n) if n > 0 => T::try_from(n).map(Some).map_err(|_| format!("too large; {EXPECTED_COUNT}")),
                _ => Err(EXPECTED_COUNT.into()),
            },
            DeValue::String(s) if s == "max" => Ok(None),
            DeValue::String(s) if s.parse::<u64>().is_ok_and(|n| n > 0) => {
                Err(format!("{EXPECTED_COUNT} (write {s} without quotes)"))
            }
            _ => Err(EXPECTED_COUNT.into()),
        })
    }

    fn choice<T>(
        &mut self,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        names: &[&str],
        parse: fn(&str) -> Option<T>,
    ) -> Opt<T> {
        self.value(key, v, |value| {
            let text = value.as_str();
            if let Some(parsed) = text.and_then(parse) {
                return Ok(parsed);
            }
            let mut reason = format!("expected {}", one_of(names));
            if let Some(near) = text.and_then(|t| closest(t, names)) {
                reason.push_str(&format!("; did you mean \"{near}\"?"));
            }
            Err(reason)
        })
    }
}

fn integer(i: &DeInteger<'_>) -> Option<i128> {
    i128::from_str_radix(i.as_str(), i.radix()).ok()
}

/// Only swap may be 0: a memory limit of 0 stops every process at once,
/// which is never what anyone means.
fn size(value: &DeValue<'_>, zero_ok: bool) -> Result<Size, String> {
    let size = match value {
        DeValue::Integer(i) => match integer(i) {
            Some(n) if n < 0 => return Err("a size cannot be negative".into()),
            Some(n) => u64::try_from(n).map(Size::Bytes).map_err(|_| "too large".to_owned())?,
            None => return Err(EXPECTED_SIZE.into()),
        },
        DeValue::String(s) => parse_size(s)?,
        _ => return Err(EXPECTED_SIZE.into()),
    };
    if size == Size::Bytes(0) && !zero_ok {
        return Err(
            r#"a memory limit of 0 would stop every process at once; expected a size above 0 like "512M", or "max""#
                .into(),
        );
    }
    Ok(size)
}

/// Free memory a new server needs; `"0"` turns the check off, and `"max"`
/// would refuse every server, so it is not a size here.
fn min_headroom(value: &DeValue<'_>) -> Result<Size, String> {
    match size(value, true) {
        Ok(Size::Max) => Err(format!("\"max\" would refuse every server; {EXPECTED_HEADROOM}")),
        Ok(size) => Ok(size),
        Err(reason) if reason == EXPECTED_SIZE => Err(EXPECTED_HEADROOM.into()),
        Err(reason) => Err(reason),
    }
}

/// PSI reports the share of time stalled, so only `0% < P <= 100%` means
/// anything; `None` is `"max"`.
fn max_pressure(value: &DeValue<'_>) -> Result<Option<Percent>, String> {
    match value {
        DeValue::String(s) if s == "max" => Ok(None),
        DeValue::String(s) => {
            let n = split_number(s).filter(|n| n.unit == "%").ok_or(EXPECTED_PRESSURE)?;
            match u32::try_from(percent_ppm(&n)?) {
                Ok(ppm) if ppm > 0 && ppm <= WHOLE => Ok(Some(Percent::from_ppm(ppm))),
                _ => Err(r#"a pressure must be above 0% and at most 100%; use "max" to disable the check"#.into()),
            }
        }
        DeValue::Integer(i) => match integer(i) {
            Some(n) if (1..=100).contains(&n) => Err(format!("{EXPECTED_PRESSURE} (write \"{n}%\")")),
            _ => Err(EXPECTED_PRESSURE.into()),
        },
        _ => Err(EXPECTED_PRESSURE.into()),
    }
}

/// The least a session's share may shrink to: a real amount, neither
/// unlimited nor nothing.
fn floor(value: &DeValue<'_>) -> Result<Size, String> {
    match size(value, true) {
        Ok(Size::Max) => Err(format!("a floor cannot be \"max\"; {EXPECTED_FLOOR}")),
        Ok(Size::Bytes(0)) => {
            Err(format!("a floor of 0 would let a session's share shrink to nothing; {EXPECTED_FLOOR}"))
        }
        Ok(size) => Ok(size),
        Err(reason) if reason == EXPECTED_SIZE => Err(EXPECTED_FLOOR.into()),
        Err(reason) => Err(reason),
    }
}

fn weight(value: &DeValue<'_>) -> Result<u32, String> {
    match value {
        DeValue::Integer(i) => match integer(i) {
            Some(n) if n > 0 => u32::try_from(n).map_err(|_| format!("too large; {EXPECTED_WEIGHT}")),
            _ => Err(EXPECTED_WEIGHT.into()),
        },
        DeValue::String(s) if s.parse::<u64>().is_ok_and(|n| n > 0) => {
            Err(format!("{EXPECTED_WEIGHT} (write {s} without quotes)"))
        }
        _ => Err(EXPECTED_WEIGHT.into()),
    }
}

fn boolean(value: &DeValue<'_>) -> Result<bool, String> {
    match value {
        DeValue::Boolean(b) => Ok(*b),
        DeValue::String(s) if s == "true" || s == "false" => Err(format!("{EXPECTED_BOOL} (write {s} without quotes)")),
        _ => Err(EXPECTED_BOOL.into()),
    }
}

/// `user` or `group`: a name, or a uid/gid as an integer or a string of digits.
fn account(value: &DeValue<'_>, kind: account::Kind) -> Result<Account, String> {
    match value {
        DeValue::Integer(i) => match integer(i) {
            Some(n) => account::from_id(n, kind),
            None => Err(kind.expected().into()),
        },
        DeValue::String(s) => account::from_text(s, kind),
        _ => Err(kind.expected().into()),
    }
}

fn cpu(value: &DeValue<'_>) -> Result<Option<crate::cpu::CpuMax>, String> {
    match value {
        DeValue::String(s) => parse_cpu(s),
        _ => Err(EXPECTED_CPU.into()),
    }
}

fn duration(value: &DeValue<'_>, expected: &str) -> Result<std::time::Duration, String> {
    match value {
        DeValue::String(s) => {
            parse_duration(s).map_err(|reason| if reason == EXPECTED_DURATION { expected.to_owned() } else { reason })
        }
        _ => Err(expected.into()),
    }
}

fn sample_interval(value: &DeValue<'_>) -> Result<std::time::Duration, String> {
    let d = duration(value, EXPECTED_DURATION)?;
    if d < MIN_SAMPLE_INTERVAL {
        return Err("must be at least \"10ms\"".into());
    }
    Ok(d)
}

fn throttle_timeout(value: &DeValue<'_>) -> Result<Option<std::time::Duration>, String> {
    if value.as_str() == Some("never") {
        return Ok(None);
    }
    let d = duration(value, EXPECTED_THROTTLE)?;
    if d.is_zero() {
        return Err(r#"0 would kill a server the moment it reaches memory_high; use "never" to disable"#.into());
    }
    Ok(Some(d))
}

/// The runner creates and removes directories under this root, so it must
/// say exactly where, with no relative or `..` parts to reinterpret.
fn cgroup_root(value: &DeValue<'_>) -> Result<PathBuf, String> {
    let Some(s) = value.as_str() else {
        return Err(EXPECTED_PATH.into());
    };
    if !s.starts_with('/') {
        return Err(EXPECTED_PATH.into());
    }
    if s.split('/').any(|part| part == "." || part == "..") {
        return Err("the path must not contain \".\" or \"..\"".into());
    }
    if s.contains('\0') {
        return Err("the path must not contain a NUL character".into());
    }
    if s.split('/').all(str::is_empty) {
        return Err("the root directory itself cannot be the cgroup root".into());
    }
    Ok(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match decode(text, "p.toml") {
            Ok(_) => Vec::new(),
            Err(diags) => crate::PolicyError::new(diags).diagnostics().iter().map(ToString::to_string).collect(),
        }
    }

    fn one_error(text: &str) -> String {
        let errors = errors(text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors[0].clone()
    }

    #[test]
    fn syntax_errors_carry_the_parser_position() {
        assert_eq!(
            one_error("[global]\nmemory_max = 50%\n"),
            "p.toml:2:14: invalid TOML: string values must be quoted, expected literal string"
        );
    }

    #[test]
    fn duplicate_keys_are_syntax_errors_at_the_second_key() {
        assert_eq!(one_error("[global]\npids_max = 1\npids_max = 2\n"), "p.toml:3:1: invalid TOML: duplicate key");
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let errors = errors("[global]\nmemory_max = 50%\npids_max = 1\ncpu_max = 2%\n");
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("p.toml:2:14: "));
        assert!(errors[1].starts_with("p.toml:4:11: "));
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        assert_eq!(
            one_error("[defaults]\nmemroy_max = \"1G\"\n"),
            "p.toml:2:1: unknown key \"memroy_max\" in [defaults]; did you mean \"memory_max\"?"
        );
    }

    #[test]
    fn unknown_key_lists_valid_keys_when_nothing_is_close() {
        assert_eq!(
            one_error("[session]\n  colour = 1\n"),
            "p.toml:2:3: unknown key \"colour\" in [session]; valid keys are memory_max, \
             memory_high, swap_max, pids_max, cpu_max, max_servers, floor"
        );
    }

    #[test]
    fn key_of_another_section_says_where_it_belongs() {
        assert_eq!(
            one_error("[session]\nmax_sessions = 3\n"),
            "p.toml:2:1: key \"max_sessions\" is not valid in [session]; it belongs in [global]"
        );
        assert_eq!(
            one_error("[defaults]\nmatch = [\"x\"]\n"),
            "p.toml:2:1: key \"match\" is not valid in [defaults]; it belongs in [server.NAME]"
        );
    }

    #[test]
    fn unknown_section_suggests_the_nearest() {
        assert_eq!(one_error("[sesion]\n"), "p.toml:1:2: unknown section [sesion]; did you mean [session]?");
        assert_eq!(
            one_error("[servers.github]\n"),
            "p.toml:1:2: unknown section [servers]; did you mean [server.NAME]?"
        );
        assert_eq!(
            one_error("[limits]\n"),
            "p.toml:1:2: unknown section [limits]; valid sections are [global], [session], \
             [defaults] and [server.NAME]"
        );
    }

    #[test]
    fn keys_outside_sections_are_errors() {
        assert_eq!(
            one_error("driver = \"auto\"\n"),
            "p.toml:1:1: key \"driver\" must be inside a section: it is valid in [global]"
        );
        assert_eq!(
            one_error("\nfoo = 1\n"),
            "p.toml:2:1: unknown key \"foo\" outside any section; valid sections are \
             [global], [session], [defaults] and [server.NAME]"
        );
    }

    #[test]
    fn sections_must_be_tables() {
        assert_eq!(
            one_error("global = 1\n"),
            "p.toml:1:1: \"global\" must be a section: write [global] on a line of its own, \
             then its keys"
        );
        assert_eq!(
            one_error("[[defaults]]\n"),
            "p.toml:1:3: \"defaults\" must be a section: write [defaults] on a line of its \
             own, then its keys"
        );
    }

    #[test]
    fn wrong_type_for_a_count() {
        assert_eq!(
            one_error("[global]\npids_max = \"lots\"\n"),
            "p.toml:2:12: invalid pids_max \"lots\": expected a positive integer or \"max\""
        );
    }

    #[test]
    fn quoted_count_gets_a_hint() {
        assert_eq!(
            one_error("[global]\nmax_sessions = \"16\"\n"),
            "p.toml:2:16: invalid max_sessions \"16\": expected a positive integer or \"max\" \
             (write 16 without quotes)"
        );
    }

    #[test]
    fn counts_are_positive_and_fit() {
        for bad in ["0", "-3", "1.5", "true", "[1]"] {
            assert_eq!(
                one_error(&format!("[defaults]\npids_max = {bad}\n")),
                format!("p.toml:2:12: invalid pids_max {bad}: expected a positive integer or \"max\"")
            );
        }
        assert_eq!(
            one_error("[global]\nmax_servers = 4294967296\n"),
            "p.toml:2:15: invalid max_servers 4294967296: too large; expected a positive \
             integer or \"max\""
        );
        assert!(errors("[global]\nmax_servers = 4294967295\npids_max = \"max\"\n").is_empty());
    }

    #[test]
    fn bad_size() {
        assert_eq!(
            one_error("[defaults]\nmemory_max = \"12Q\"\n"),
            "p.toml:2:14: invalid memory_max \"12Q\": expected a size like \"512M\", \"2G\", \
             \"25%\" or \"max\""
        );
        assert_eq!(
            one_error("[global]\nmemory_max = 1.5\n"),
            "p.toml:2:14: invalid memory_max 1.5: expected a size like \"512M\", \"2G\", \
             \"25%\" or \"max\""
        );
    }

    #[test]
    fn bad_percentage() {
        assert_eq!(
            one_error("[session]\nmemory_high = \"120%\"\n"),
            "p.toml:2:15: invalid memory_high \"120%\": a percentage must be above 0% and at \
             most 100%"
        );
    }

    #[test]
    fn negative_integer_size() {
        assert_eq!(
            one_error("[defaults]\nswap_max = -1\n"),
            "p.toml:2:12: invalid swap_max -1: a size cannot be negative"
        );
    }

    #[test]
    fn only_swap_may_be_zero() {
        assert!(errors("[defaults]\nswap_max = \"0\"\n[global]\nswap_max = 0\n").is_empty());
        assert_eq!(
            one_error("[defaults]\nmemory_max = 0\n"),
            "p.toml:2:14: invalid memory_max 0: a memory limit of 0 would stop every process \
             at once; expected a size above 0 like \"512M\", or \"max\""
        );
        assert!(one_error("[defaults]\nmemory_high = \"0K\"\n").starts_with("p.toml:2:15: "));
    }

    #[test]
    fn bad_durations() {
        assert_eq!(
            one_error("[defaults]\ngrace = 3\n"),
            "p.toml:2:9: invalid grace 3: expected a duration like \"500ms\", \"30s\", \"10m\" \
             or \"1h\""
        );
        assert_eq!(
            one_error("[defaults]\nkill_timeout = \"1.5s\"\n"),
            "p.toml:2:16: invalid kill_timeout \"1.5s\": use a whole number with a smaller \
             unit, like \"1500ms\""
        );
        assert_eq!(
            one_error("[defaults]\nsample_interval = \"5ms\"\n"),
            "p.toml:2:19: invalid sample_interval \"5ms\": must be at least \"10ms\""
        );
    }

    #[test]
    fn zero_grace_and_kill_timeout_are_valid() {
        assert!(errors("[defaults]\ngrace = \"0s\"\nkill_timeout = \"0ms\"\n").is_empty());
    }

    #[test]
    fn throttle_timeout_is_positive_or_never() {
        assert!(errors("[defaults]\nthrottle_timeout = \"never\"\n").is_empty());
        assert_eq!(
            one_error("[defaults]\nthrottle_timeout = \"0s\"\n"),
            "p.toml:2:20: invalid throttle_timeout \"0s\": 0 would kill a server the moment it \
             reaches memory_high; use \"never\" to disable"
        );
        assert_eq!(
            one_error("[defaults]\nthrottle_timeout = \"off\"\n"),
            "p.toml:2:20: invalid throttle_timeout \"off\": expected a duration like \"60s\", \
             or \"never\""
        );
        assert!(one_error("[defaults]\ngrace = \"never\"\n").contains("expected a duration"));
    }

    #[test]
    fn bad_cpu() {
        assert_eq!(
            one_error("[defaults]\ncpu_max = 2\n"),
            "p.toml:2:11: invalid cpu_max 2: expected a CPU limit like \"50%\" (half a CPU), \
             \"200%\" (two CPUs) or \"max\""
        );
        assert!(one_error("[defaults]\ncpu_max = \"0.5%\"\n").contains("\"1%\""));
    }

    #[test]
    fn choices_suggest_the_nearest_name() {
        assert_eq!(
            one_error("[global]\ndriver = \"sytemd\"\n"),
            "p.toml:2:10: invalid driver \"sytemd\": expected \"auto\", \"systemd\", \
             \"cgroupfs\" or \"userland\"; did you mean \"systemd\"?"
        );
        assert_eq!(
            one_error("[defaults]\nrequire = true\n"),
            "p.toml:2:11: invalid require true: expected \"any\" or \"kernel\""
        );
        assert_eq!(
            one_error("[defaults]\nshare = \"sometimes\"\n"),
            "p.toml:2:9: invalid share \"sometimes\": expected \"never\", \"auto\" or \"always\""
        );
    }

    #[test]
    fn admission_keys_decode() {
        let text = "[global]\nadmission_wait = \"5s\"\nmin_headroom = \"5%\"\nmax_pressure = \"12.5%\"\n\
                    [session]\nfloor = \"1G\"\n[defaults]\nweight = 2\n[server.a]\nweight = 3\n";
        let file = decode(text, "p").unwrap();
        let g = &file.global;
        assert_eq!(g.admission_wait.as_ref().map(|l| l.value), Some(std::time::Duration::from_secs(5)));
        assert_eq!(g.min_headroom.as_ref().map(|l| l.value), Some(Size::Percent(Percent::from_ppm(50_000))));
        assert_eq!(g.max_pressure.as_ref().map(|l| l.value), Some(Some(Percent::from_ppm(125_000))));
        assert_eq!(file.session.floor.map(|l| l.value), Some(Size::Bytes(1 << 30)));
        assert_eq!(file.defaults.weight.map(|l| l.value), Some(2));
        assert_eq!(
            file.entries[0].keys.weight.as_ref().map(|l| (l.value, l.at)),
            Some((3, Some(Location { line: 10, column: 10 })))
        );
    }

    #[test]
    fn admission_wait_is_a_duration() {
        assert!(errors("[global]\nadmission_wait = \"0s\"\n").is_empty());
        assert_eq!(
            one_error("[global]\nadmission_wait = 5\n"),
            "p.toml:2:18: invalid admission_wait 5: expected a duration like \"500ms\", \"30s\", \
             \"10m\" or \"1h\""
        );
        assert!(one_error("[global]\nadmission_wait = \"never\"\n").contains("expected a duration"));
    }

    #[test]
    fn min_headroom_is_a_size_or_zero() {
        for ok in ["0", "\"0\"", "\"64M\"", "\"5%\"", "67108864"] {
            assert!(errors(&format!("[global]\nmin_headroom = {ok}\n")).is_empty(), "{ok}");
        }
        let e = |v: &str| one_error(&format!("[global]\nmin_headroom = {v}\n"));
        assert_eq!(
            e("\"max\""),
            "p.toml:2:16: invalid min_headroom \"max\": \"max\" would refuse every server; expected \
             a size like \"64M\" or \"5%\", or \"0\" to disable the check"
        );
        assert_eq!(
            e("\"lots\""),
            "p.toml:2:16: invalid min_headroom \"lots\": expected a size like \"64M\" or \"5%\", or \
             \"0\" to disable the check"
        );
        assert!(e("true").ends_with("or \"0\" to disable the check"));
        assert!(e("-1").ends_with("a size cannot be negative"));
        assert!(e("\"150%\"").ends_with("a percentage must be above 0% and at most 100%"));
    }

    #[test]
    fn max_pressure_is_a_percentage_or_max() {
        for ok in ["\"max\"", "\"40%\"", "\"100%\"", "\"0.5%\""] {
            assert!(errors(&format!("[global]\nmax_pressure = {ok}\n")).is_empty(), "{ok}");
        }
        let e = |v: &str| one_error(&format!("[global]\nmax_pressure = {v}\n"));
        assert_eq!(
            e("40"),
            "p.toml:2:16: invalid max_pressure 40: expected a percentage like \"40%\", or \"max\" to \
             disable the check (write \"40%\")"
        );
        for bad in ["\"0%\"", "\"100.5%\""] {
            assert_eq!(
                e(bad),
                format!(
                    "p.toml:2:16: invalid max_pressure {bad}: a pressure must be above 0% and at most \
                     100%; use \"max\" to disable the check"
                )
            );
        }
        for bad in ["\"40\"", "\"4G\"", "0", "101", "0.4", "\"off\""] {
            assert!(e(bad).ends_with("expected a percentage like \"40%\", or \"max\" to disable the check"), "{bad}");
        }
        assert!(e("\"1.00001%\"").ends_with("a percentage has at most 4 decimal places"));
    }

    #[test]
    fn floor_is_a_size_above_zero() {
        for ok in ["\"10%\"", "\"512M\"", "1"] {
            assert!(errors(&format!("[session]\nfloor = {ok}\n")).is_empty(), "{ok}");
        }
        let e = |v: &str| one_error(&format!("[session]\nfloor = {v}\n"));
        assert_eq!(
            e("\"max\""),
            "p.toml:2:9: invalid floor \"max\": a floor cannot be \"max\"; expected a size like \
             \"512M\" or \"10%\""
        );
        for zero in ["0", "\"0\"", "\"0K\""] {
            assert_eq!(
                e(zero),
                format!(
                    "p.toml:2:9: invalid floor {zero}: a floor of 0 would let a session's share \
                     shrink to nothing; expected a size like \"512M\" or \"10%\""
                )
            );
        }
        assert_eq!(e("\"big\""), "p.toml:2:9: invalid floor \"big\": expected a size like \"512M\" or \"10%\"");
        assert!(e("\"0%\"").ends_with("a percentage must be above 0% and at most 100%"));
    }

    #[test]
    fn weight_is_a_positive_integer() {
        assert!(errors("[defaults]\nweight = 1\n[server.a]\nweight = 4294967295\n").is_empty());
        for bad in ["0", "-1", "1.5", "\"max\"", "true"] {
            assert_eq!(
                one_error(&format!("[defaults]\nweight = {bad}\n")),
                format!("p.toml:2:10: invalid weight {bad}: expected a positive integer")
            );
        }
        assert_eq!(
            one_error("[server.a]\nweight = \"2\"\n"),
            "p.toml:2:10: invalid weight \"2\": expected a positive integer (write 2 without quotes)"
        );
        assert_eq!(
            one_error("[defaults]\nweight = 4294967296\n"),
            "p.toml:2:10: invalid weight 4294967296: too large; expected a positive integer"
        );
    }

    #[test]
    fn issue_9_privilege_keys_decode() {
        // See: issue 9, finding 6
        let text = "[defaults]\nno_new_privs = true\ndrop_capabilities = false\nuser = \"nobody\"\n\
                    group = 65534\n[server.a]\nuser = \"1000\"\ngroup = \"staff\"\nno_new_privs = false\n";
        let file = decode(text, "p").unwrap();
        let d = &file.defaults;
        assert_eq!(
            d.no_new_privs.as_ref().map(|l| (l.value, l.at)),
            Some((true, Some(Location { line: 2, column: 16 })))
        );
        assert_eq!(d.drop_capabilities.as_ref().map(|l| l.value), Some(false));
        assert_eq!(d.user.as_ref().map(|l| l.value.clone()), Some(Account::Name("nobody".into())));
        assert_eq!(d.group.as_ref().map(|l| l.value.clone()), Some(Account::Id(65534)));
        let a = &file.entries[0].keys;
        assert_eq!(a.user.as_ref().map(|l| l.value.clone()), Some(Account::Id(1000)));
        assert_eq!(a.group.as_ref().map(|l| l.value.clone()), Some(Account::Name("staff".into())));
        assert_eq!(a.no_new_privs.as_ref().map(|l| l.value), Some(false));
    }

    #[test]
    fn issue_9_privilege_keys_are_checked_at_load() {
        // See: issue 9, finding 6
        let e = |text: &str| one_error(&format!("[defaults]\n{text}\n"));
        assert_eq!(e("no_new_privs = 1"), "p.toml:2:16: invalid no_new_privs 1: expected true or false");
        assert_eq!(
            e("drop_capabilities = \"true\""),
            "p.toml:2:21: invalid drop_capabilities \"true\": expected true or false (write true without quotes)"
        );
        assert_eq!(
            e("user = \"no body\""),
            "p.toml:2:8: invalid user \"no body\": a name holds only letters, digits, \"_\", \"-\" and \".\" \
             (and may end in \"$\"); expected a user name like \"nobody\" or a numeric uid like 65534"
        );
        assert_eq!(e("user = -1"), "p.toml:2:8: invalid user -1: a uid cannot be negative");
        assert_eq!(
            e("group = 4294967295"),
            "p.toml:2:9: invalid group 4294967295: 4294967295 is (u32)-1, which the kernel reads as \"leave the \
             gid unchanged\""
        );
        assert_eq!(
            e("group = [\"wheel\"]"),
            "p.toml:2:9: invalid group [\"wheel\"]: expected a group name like \"nogroup\" or a numeric gid like 65534"
        );
        assert_eq!(
            e("user = \"\""),
            "p.toml:2:8: invalid user \"\": an empty name; expected a user name like \"nobody\" or a numeric uid like 65534"
        );
        assert_eq!(
            one_error("[global]\nuser = \"nobody\"\n"),
            "p.toml:2:1: key \"user\" is not valid in [global]; it belongs in [defaults], [server.NAME]"
        );
        assert_eq!(
            one_error("[server.a]\nno_new_priv = true\n"),
            "p.toml:2:1: unknown key \"no_new_priv\" in [server.a]; did you mean \"no_new_privs\"?"
        );
    }

    #[test]
    fn admission_keys_elsewhere_say_where_they_belong() {
        let cases = [
            ("[session]\nmin_headroom = 0\n", "key \"min_headroom\" is not valid in [session]; it belongs in [global]"),
            (
                "[defaults]\nadmission_wait = \"1s\"\n",
                "key \"admission_wait\" is not valid in [defaults]; it belongs in [global]",
            ),
            (
                "[server.a]\nmax_pressure = \"max\"\n",
                "key \"max_pressure\" is not valid in [server.a]; it belongs in [global]",
            ),
            ("[defaults]\nfloor = \"1G\"\n", "key \"floor\" is not valid in [defaults]; it belongs in [session]"),
            (
                "[global]\nweight = 2\n",
                "key \"weight\" is not valid in [global]; it belongs in [defaults], [server.NAME]",
            ),
            (
                "[session]\nweight = 2\n",
                "key \"weight\" is not valid in [session]; it belongs in [defaults], [server.NAME]",
            ),
            (
                "[global]\nmax_presure = \"40%\"\n",
                "unknown key \"max_presure\" in [global]; did you mean \"max_pressure\"?",
            ),
            ("[global]\nmin_headrom = 0\n", "unknown key \"min_headrom\" in [global]; did you mean \"min_headroom\"?"),
            (
                "[global]\nadmision_wait = \"1s\"\n",
                "unknown key \"admision_wait\" in [global]; did you mean \"admission_wait\"?",
            ),
            ("[session]\nflor = \"1G\"\n", "unknown key \"flor\" in [session]; did you mean \"floor\"?"),
            ("[server.a]\nwieght = 2\n", "unknown key \"wieght\" in [server.a]; did you mean \"weight\"?"),
        ];
        for (text, message) in cases {
            assert_eq!(one_error(text), format!("p.toml:2:1: {message}"), "{text}");
        }
        assert_eq!(
            one_error("weight = 1\n"),
            "p.toml:1:1: key \"weight\" must be inside a section: it is valid in [defaults], [server.NAME]"
        );
        assert_eq!(
            one_error("[server]\nweight = 1\n"),
            "p.toml:2:1: key \"weight\" is not valid directly in [server]; put it in \
             [server.NAME] for one server, or in [defaults] for every server"
        );
    }

    #[test]
    fn cgroup_root_is_a_clean_absolute_path() {
        let e = |v: &str| one_error(&format!("[global]\ncgroup_root = {v}\n"));
        assert_eq!(
            e("\"relative/dir\""),
            "p.toml:2:15: invalid cgroup_root \"relative/dir\": expected an absolute path like \
             \"/sys/fs/cgroup/mcp-runner\""
        );
        assert!(e("\"/sys/fs/cgroup/../x\"").contains("\"..\""));
        assert!(e("\"/a/./b\"").contains("\".\""));
        assert!(e("\"//\"").contains("root directory"));
        assert!(e("\"/a\\u0000b\"").contains("NUL"));
        assert!(e("5").contains("absolute path"));
        assert!(errors("[global]\ncgroup_root = \"/sys/fs/cgroup/mcp.slice/\"\n").is_empty());
    }

    #[test]
    fn match_is_a_list_of_non_empty_strings() {
        assert_eq!(
            one_error("[server.a]\nmatch = \"npx *\"\n"),
            "p.toml:2:9: invalid match \"npx *\": expected a list of patterns like \
             [\"npx * @scope/server*\"]"
        );
        assert_eq!(
            one_error("[server.a]\nmatch = [\"ok\", 3]\n"),
            "p.toml:2:16: invalid match pattern 3: expected a pattern like \
             \"npx * @scope/server*\""
        );
        assert_eq!(
            one_error("[server.a]\nmatch = [\"\"]\n"),
            "p.toml:2:10: invalid match pattern \"\": an empty pattern only matches an empty \
             command line"
        );
    }

    #[test]
    fn server_holds_only_entries() {
        assert_eq!(
            one_error("[server]\nmemory_max = \"1G\"\n"),
            "p.toml:2:1: key \"memory_max\" is not valid directly in [server]; put it in \
             [server.NAME] for one server, or in [defaults] for every server"
        );
        assert_eq!(
            one_error("[server]\ngithub = 1\n"),
            "p.toml:2:1: \"github\" in [server] must be a section like [server.github]"
        );
        assert_eq!(
            one_error("[[server.x]]\n"),
            "p.toml:1:10: expected one section [server.x] per server; write [server.x], not \
             [[server.x]]"
        );
        assert_eq!(one_error("[server.\"\"]\n"), "p.toml:1:9: a server name cannot be empty");
        assert_eq!(
            one_error("server = 1\n"),
            "p.toml:1:1: \"server\" must hold one section per server, like [server.github]"
        );
    }

    #[test]
    fn entry_keys_are_checked_with_the_entry_label() {
        assert_eq!(
            one_error("[server.\"my srv\"]\nmtch = []\n"),
            "p.toml:2:1: unknown key \"mtch\" in [server.\"my srv\"]; did you mean \"match\"?"
        );
    }

    #[test]
    fn long_values_are_quoted_short() {
        let long = format!("\"{}\"", "x".repeat(100));
        let e = one_error(&format!("[global]\nmemory_max = {long}\n"));
        assert!(e.contains(&format!("\"{}…:", "x".repeat(39))), "{e}");
        let e = one_error("[global]\nmemory_max = [\n  1,\n]\n");
        assert!(e.starts_with("p.toml:2:14: invalid memory_max […: "), "{e}");
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(
            one_error("[server.\"é\"]\npids_max = \"é\"\n"),
            "p.toml:2:12: invalid pids_max \"é\": expected a positive integer or \"max\""
        );
        assert!(one_error("[global]\n\"日本\" = 1\n").starts_with("p.toml:2:1: "));
        assert!(
            one_error("server.\"日本\" = { pids_max = 0 }\n").starts_with("p.toml:1:28: "),
            "columns must count characters, not bytes"
        );
    }

    #[test]
    fn all_errors_of_a_file_are_reported_in_order() {
        let text = "\
[defaults]
memroy_max = \"1G\"
pids_max = \"lots\"

[global]
driver = \"sytemd\"

[server.a]
grace = 3
";
        let lines: Vec<usize> =
            errors(text).iter().map(|e| e.split(':').nth(1).and_then(|l| l.parse().ok()).unwrap_or(0)).collect();
        assert_eq!(lines, [2, 3, 6, 9]);
    }

    #[test]
    fn entries_are_kept_in_file_order() {
        let file = decode("[server.zeta]\n[server.alpha]\n[server.mid]\n", "p").unwrap();
        let names: Vec<&str> = file.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn values_keep_their_positions() {
        let file = decode("[session]\n\nmemory_max = \"25%\"\n", "p").unwrap();
        let at = file.session.limits.memory_max.and_then(|l| l.at);
        assert_eq!(at, Some(Location { line: 3, column: 14 }));
    }

    #[test]
    fn inline_tables_and_dotted_keys_are_sections_too() {
        let text = "server.a = { memory_max = \"1G\" }\n[server.b]\nmatch = [\"x\"]\n";
        let file = decode(text, "p").unwrap();
        assert_eq!(file.entries.len(), 2);
        assert_eq!(file.entries[0].keys.limits.memory_max.as_ref().map(|l| l.value), Some(Size::Bytes(1 << 30)));
    }

    #[test]
    fn the_documented_example_decodes() {
        let file = decode(crate::tests::EXAMPLE, "p").unwrap();
        assert_eq!(file.entries.len(), 1);
        assert_eq!(file.global.driver.map(|d| d.value), Some(DriverPref::Auto));
    }
}
