//! Resolution: percentages become bytes, levels are checked against each other.
//!
//! The same code runs twice. `from_str` runs it without knowing the host's
//! memory, so every conflict between absolute values is reported when the
//! file is loaded; `resolve` runs it again with the host's memory and finds
//! what depends on it. Anything that would need the unknown size is
//! `Amount::Unknown` in the first run and simply not compared.
//!
//! A conflict involving a value written in the file is an error, never a
//! silent clamp: the user asked for something that cannot hold. A built-in
//! default that exceeds a limit the user wrote above it (`pids_max = 500`
//! in `[global]` under the built-in 4096 of `[session]`) is lowered to that
//! limit instead, since the user never asked for the default.

use crate::budget::{Effective, GlobalBudget, Limits, Privileges, ServerBudget, SessionBudget, Setting};
use crate::builtin::{self, LimitDefaults};
use crate::cpu::CpuMax;
use crate::diag::Diagnostic;
use crate::located::Location;
use crate::schema::{Entry, LimitKeys, Opt, PolicyFile, ServerKeys};
use crate::size::{Size, WHOLE, format_bytes};

/// A memory amount during resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Amount {
    Unlimited,
    Bytes(u64),
    /// A percentage whose base depends on the host's memory, not known yet.
    Unknown,
}

impl Amount {
    fn of(size: Size, base: Amount) -> Amount {
        match (size, base) {
            (Size::Max, _) => Amount::Unlimited,
            (Size::Bytes(b), _) => Amount::Bytes(b),
            (Size::Percent(p), Amount::Bytes(b)) => Amount::Bytes(p.of(b)),
            (Size::Percent(_), _) => Amount::Unknown,
        }
    }

    fn is_limited(self) -> bool {
        self != Amount::Unlimited
    }

    fn bytes(self) -> Option<u64> {
        match self {
            Amount::Bytes(b) => Some(b),
            Amount::Unlimited | Amount::Unknown => None,
        }
    }
}

/// Something a child's value can be compared with and shown in a message.
trait Quantity: Copy {
    /// `None` when the answer depends on what is not known yet.
    fn above(self, other: Self) -> Option<bool>;
    fn show(self) -> String;
    /// Shown when `show` rounds two different values to the same text.
    fn exact(self) -> String {
        self.show()
    }
}

impl Quantity for Amount {
    fn above(self, other: Self) -> Option<bool> {
        Some(self.bytes()? > other.bytes()?)
    }
    fn show(self) -> String {
        match self {
            Amount::Bytes(b) => format_bytes(b),
            Amount::Unlimited => "max".into(),
            Amount::Unknown => "(depends on physical memory)".into(),
        }
    }
    fn exact(self) -> String {
        match self {
            Amount::Bytes(b) => format!("{b} bytes"),
            other => other.show(),
        }
    }
}

impl Quantity for u64 {
    fn above(self, other: Self) -> Option<bool> {
        Some(self > other)
    }
    fn show(self) -> String {
        self.to_string()
    }
}

impl Quantity for u32 {
    fn above(self, other: Self) -> Option<bool> {
        Some(self > other)
    }
    fn show(self) -> String {
        self.to_string()
    }
}

impl Quantity for CpuMax {
    fn above(self, other: Self) -> Option<bool> {
        Some(self.exceeds(other))
    }
    fn show(self) -> String {
        self.to_string()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Global,
    Session,
    Server,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Global => "global",
            Level::Session => "session",
            Level::Server => "server",
        }
    }
}

/// A value chosen for one level, and where it came from.
#[derive(Clone, Debug)]
struct Src<T> {
    value: T,
    at: Option<Location>,
    /// The section it was written in; `None` for a built-in default.
    section: Option<String>,
    /// How specific the source is: an entry's own value (2) beats one
    /// inherited from `[defaults]` (1), which beats a built-in default (0).
    rank: u8,
}

impl<T> Src<T> {
    fn is_builtin(&self) -> bool {
        self.at.is_none()
    }

    fn section(&self) -> &str {
        self.section.as_deref().unwrap_or("built-in default")
    }

    /// Where the value came from, for a message about a value of `blamed`'s
    /// section: "set at 3:14", "inherited from [defaults], set at 3:14",
    /// "built-in default". `raw` is the percentage it was written as, if any.
    fn provenance(&self, blamed: Option<&str>, raw: Option<String>) -> String {
        let raw = raw.map(|r| format!("{r} ")).unwrap_or_default();
        match (self.at, self.section.as_deref()) {
            (Some(at), Some(section)) if blamed.is_some_and(|b| b != section) => {
                format!("{raw}inherited from {section}, set at {at}")
            }
            (Some(at), _) => format!("{raw}set at {at}"),
            (None, _) => format!("built-in default {raw}").trim_end().to_owned(),
        }
    }
}

/// Picks the most specific of `sources` that sets the key, else the built-in.
fn pick<T: Clone>(sources: &[(&Opt<T>, &str, u8)], builtin: T) -> Src<T> {
    sources
        .iter()
        .find_map(|(opt, section, rank)| {
            opt.as_ref().map(|l| Src {
                value: l.value.clone(),
                at: l.at,
                section: Some((*section).to_owned()),
                rank: *rank,
            })
        })
        .unwrap_or(Src { value: builtin, at: None, section: None, rank: 0 })
}

/// The raw percentage of a size, for messages.
fn percent_text(size: Size) -> Option<String> {
    match size {
        Size::Percent(p) => Some(format!("\"{p}\"")),
        Size::Bytes(_) | Size::Max => None,
    }
}

struct LevelKeys {
    memory_max: Src<Size>,
    memory_high: Src<Size>,
    swap_max: Src<Size>,
    pids_max: Src<Option<u64>>,
    cpu_max: Src<Option<CpuMax>>,
}

fn level_keys(sources: &[(&LimitKeys, &str, u8)], builtin: &LimitDefaults) -> LevelKeys {
    let of = |get: fn(&LimitKeys) -> &Opt<Size>| -> Vec<(&Opt<Size>, &str, u8)> {
        sources.iter().map(|(k, s, r)| (get(k), *s, *r)).collect()
    };
    let pids: Vec<_> = sources.iter().map(|(k, s, r)| (&k.pids_max, *s, *r)).collect();
    let cpu: Vec<_> = sources.iter().map(|(k, s, r)| (&k.cpu_max, *s, *r)).collect();
    LevelKeys {
        memory_max: pick(&of(|k| &k.memory_max), builtin.memory_max),
        memory_high: pick(&of(|k| &k.memory_high), builtin.memory_high),
        swap_max: pick(&of(|k| &k.swap_max), builtin.swap_max),
        pids_max: pick(&pids, builtin.pids_max),
        cpu_max: pick(&cpu, builtin.cpu_max),
    }
}

/// The nearest limit above a level: its value, which level set it, and
/// where that level got it (for messages).
#[derive(Clone, Debug)]
struct Ceiling<Q> {
    value: Q,
    level: Level,
    provenance: String,
}

/// What a level hands down to its children.
#[derive(Clone, Debug)]
struct Node {
    memory: Option<Ceiling<Amount>>,
    swap: Option<Ceiling<Amount>>,
    pids: Option<Ceiling<u64>>,
    cpu: Option<Ceiling<CpuMax>>,
    /// What a child's memory percentage is of: the nearest limited
    /// memory_max above it, else physical memory.
    base: Amount,
}

/// A level's limits before unknown amounts are ruled out.
struct Resolved {
    memory_max: Amount,
    memory_high: Amount,
    swap_max: Amount,
    pids_max: Option<u64>,
    cpu_max: Option<CpuMax>,
}

impl Resolved {
    fn limits(&self) -> Limits {
        Limits {
            memory_high: self.memory_high.bytes(),
            memory_max: self.memory_max.bytes(),
            swap_max: self.swap_max.bytes(),
            pids_max: self.pids_max,
            cpu_max: self.cpu_max,
        }
    }
}

/// One child value checked against its ceiling.
struct Child<'a, T, Q> {
    level: Level,
    key: &'a str,
    src: &'a Src<T>,
    value: Q,
    raw: Option<String>,
}

/// The ceiling a level hands down for one key: its own value if it has
/// one, else its parent's. A built-in lowered to its parent's value names
/// that parent's value as its origin, since that is what the user wrote.
fn hand_down<Q: Copy, T>(
    value: Option<Q>,
    capped: bool,
    parent: &Option<Ceiling<Q>>,
    (level, key): (Level, &str),
    src: &Src<T>,
    raw: Option<String>,
) -> Option<Ceiling<Q>> {
    match (value, parent) {
        (Some(value), Some(p)) if capped => Some(Ceiling {
            value,
            level,
            provenance: format!("built-in default, lowered to the {} {key} {}", p.level.name(), p.provenance),
        }),
        (Some(value), _) => Some(Ceiling { value, level, provenance: src.provenance(None, raw) }),
        (None, _) => parent.clone(),
    }
}

pub(crate) struct Resolver<'p> {
    file: &'p PolicyFile,
    origin: &'p str,
    diags: Vec<Diagnostic>,
    root: Node,
}

impl<'p> Resolver<'p> {
    /// `physical_bytes` is `None` when checking a file before any host is
    /// known.
    pub(crate) fn new(file: &'p PolicyFile, origin: &'p str, physical_bytes: Option<u64>) -> Self {
        let mut diags = Vec::new();
        if physical_bytes == Some(0) {
            // Every percentage would resolve to 0 and stop every server: a
            // host probe failure must not turn into that.
            diags.push(Diagnostic {
                origin: origin.to_owned(),
                location: None,
                message: "cannot resolve the policy: the host's physical memory size is \
                          unknown (0 bytes)"
                    .into(),
            });
        }
        Resolver {
            file,
            origin,
            diags,
            root: Node {
                memory: None,
                swap: None,
                pids: None,
                cpu: None,
                base: physical_bytes.map_or(Amount::Unknown, Amount::Bytes),
            },
        }
    }

    pub(crate) fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diags
    }

    fn error(&mut self, at: Option<Location>, message: String) {
        self.diags.push(Diagnostic { origin: self.origin.to_owned(), location: at, message });
    }

    /// Checks one value against the nearest limit above it. Returns the value
    /// to use and whether it was a built-in lowered to that limit.
    fn fit<T, Q: Quantity>(&mut self, child: Child<'_, T, Q>, ceiling: Option<&Ceiling<Q>>) -> (Q, bool) {
        let Some(ceiling) = ceiling else {
            return (child.value, false);
        };
        if child.value.above(ceiling.value) != Some(true) {
            return (child.value, false);
        }
        if child.src.is_builtin() {
            return (ceiling.value, true);
        }
        let (mine, theirs) = if child.value.show() == ceiling.value.show() {
            (child.value.exact(), ceiling.value.exact())
        } else {
            (child.value.show(), ceiling.value.show())
        };
        let raw = child.raw.map(|r| format!(" ({r})")).unwrap_or_default();
        let via = match (child.level, ceiling.level) {
            (Level::Server, Level::Global) => ", which applies because the session sets none",
            _ => "",
        };
        let rule = match ceiling.level {
            Level::Global => "the global one",
            Level::Session | Level::Server => "its session's",
        };
        let message = format!(
            "{section} {key} {mine}{raw} is above the {parent} {key} {theirs} ({from}){via}; \
             a {level} budget cannot be above {rule}",
            section = child.src.section(),
            key = child.key,
            parent = ceiling.level.name(),
            from = ceiling.provenance,
            level = child.level.name(),
        );
        self.error(child.src.at, message);
        (child.value, false)
    }

    /// Checks memory_high against memory_max of the same level. Blames
    /// whichever of the two was set most specifically, so an entry that
    /// lowers memory_max under an inherited memory_high is told so.
    fn high_under_max(&mut self, keys: &LevelKeys, high: Amount, max: Amount) -> Amount {
        let (Amount::Bytes(h), Amount::Bytes(m)) = (high, max) else {
            return high;
        };
        if h <= m {
            return high;
        }
        let (hs, ms) = (&keys.memory_high, &keys.memory_max);
        if hs.is_builtin() && ms.is_builtin() {
            return max;
        }
        let (h_text, m_text) =
            if format_bytes(h) == format_bytes(m) { (high.exact(), max.exact()) } else { (high.show(), max.show()) };
        let h_raw = percent_text(hs.value);
        let m_raw = percent_text(ms.value);
        const RULE: &str = "memory_high must not exceed memory_max";
        let message = if ms.rank > hs.rank {
            format!(
                "{} memory_max {m_text} is below memory_high {h_text} ({}); {RULE}",
                ms.section(),
                hs.provenance(Some(ms.section()), h_raw),
            )
        } else {
            let same_section = ms.section.is_none() || hs.section == ms.section;
            let whose = if same_section { "its" } else { "the" };
            format!(
                "{} memory_high {h_text} is above {whose} memory_max {m_text} ({}); {RULE}",
                hs.section(),
                ms.provenance(Some(hs.section()), m_raw),
            )
        };
        let at = if ms.rank > hs.rank { ms.at } else { hs.at };
        self.error(at, message);
        high
    }

    fn level(&mut self, level: Level, keys: &LevelKeys, parent: &Node) -> (Resolved, Node) {
        let base = parent.base;

        let max = Amount::of(keys.memory_max.value, base);
        let max_raw = percent_text(keys.memory_max.value);
        let child = Child { level, key: "memory_max", src: &keys.memory_max, value: max, raw: max_raw.clone() };
        let (memory_max, max_capped) = self.fit(child, parent.memory.as_ref());

        let high_base = if memory_max.is_limited() { memory_max } else { base };
        let high = Amount::of(keys.memory_high.value, high_base);
        let memory_high = self.high_under_max(keys, high, memory_max);

        let swap = Amount::of(keys.swap_max.value, base);
        let swap_raw = percent_text(keys.swap_max.value);
        let child = Child { level, key: "swap_max", src: &keys.swap_max, value: swap, raw: swap_raw.clone() };
        let (swap_max, swap_capped) = self.fit(child, parent.swap.as_ref());

        let (pids_max, pids_capped) = match keys.pids_max.value {
            Some(n) => {
                let child = Child { level, key: "pids_max", src: &keys.pids_max, value: n, raw: None };
                let (n, capped) = self.fit(child, parent.pids.as_ref());
                (Some(n), capped)
            }
            None => (None, false),
        };

        let (cpu_max, cpu_capped) = match keys.cpu_max.value {
            Some(c) => {
                let child = Child { level, key: "cpu_max", src: &keys.cpu_max, value: c, raw: None };
                let (c, capped) = self.fit(child, parent.cpu.as_ref());
                (Some(c), capped)
            }
            None => (None, false),
        };

        let limited = |a: Amount| a.is_limited().then_some(a);
        let node = Node {
            memory: hand_down(
                limited(memory_max),
                max_capped,
                &parent.memory,
                (level, "memory_max"),
                &keys.memory_max,
                max_raw,
            ),
            swap: hand_down(
                limited(swap_max),
                swap_capped,
                &parent.swap,
                (level, "swap_max"),
                &keys.swap_max,
                swap_raw,
            ),
            pids: hand_down(pids_max, pids_capped, &parent.pids, (level, "pids_max"), &keys.pids_max, None),
            cpu: hand_down(cpu_max, cpu_capped, &parent.cpu, (level, "cpu_max"), &keys.cpu_max, None),
            base: if memory_max.is_limited() { memory_max } else { base },
        };
        let resolved = Resolved { memory_max, memory_high, swap_max, pids_max, cpu_max };
        (resolved, node)
    }

    fn global(&mut self) -> (GlobalBudget, Node) {
        let g = &self.file.global;
        let keys = level_keys(&[(&g.limits, "[global]", 1)], &builtin::GLOBAL);
        let root = self.root.clone();
        let (resolved, node) = self.level(Level::Global, &keys, &root);
        let g = &self.file.global;
        let budget = GlobalBudget {
            limits: resolved.limits(),
            max_servers: pick(&[(&g.max_servers, "[global]", 1)], builtin::GLOBAL_MAX_SERVERS).value,
            max_sessions: pick(&[(&g.max_sessions, "[global]", 1)], builtin::GLOBAL_MAX_SESSIONS).value,
            driver: pick(&[(&g.driver, "[global]", 1)], builtin::DRIVER).value,
            cgroup_root: g.cgroup_root.as_ref().map(|l| l.value.clone()),
            admission_wait: pick(&[(&g.admission_wait, "[global]", 1)], builtin::ADMISSION_WAIT).value,
            // Checked against the session's memory_max once that is known: see `upper`.
            min_headroom: 0,
            max_pressure: pick(&[(&g.max_pressure, "[global]", 1)], builtin::MAX_PRESSURE)
                .value
                .map(|p| f64::from(p.ppm()) / f64::from(WHOLE / 100)),
        };
        (budget, node)
    }

    /// A memory amount that must fit under the nearest memory_max at or
    /// below its own level (`ceiling`): written above it is an error, a
    /// built-in above it is lowered to it.
    fn under_memory(
        &mut self,
        (level, key): (Level, &str),
        src: &Src<Size>,
        value: Amount,
        ceiling: Option<&Ceiling<Amount>>,
        rule: &str,
    ) -> Amount {
        let Some(ceiling) = ceiling else {
            return value;
        };
        if value.above(ceiling.value) != Some(true) {
            return value;
        }
        if src.is_builtin() {
            return ceiling.value;
        }
        let (mine, theirs) = if value.show() == ceiling.value.show() {
            (value.exact(), ceiling.value.exact())
        } else {
            (value.show(), ceiling.value.show())
        };
        let raw = percent_text(src.value).map(|r| format!(" ({r})")).unwrap_or_default();
        let whose = if ceiling.level == level { "its".to_owned() } else { format!("the {}", ceiling.level.name()) };
        let via = match (level, ceiling.level) {
            (Level::Session, Level::Global) => ", which applies because the session sets none",
            _ => "",
        };
        let message = format!(
            "{section} {key} {mine}{raw} is above {whose} memory_max {theirs} ({from}){via}; {rule}",
            section = src.section(),
            from = ceiling.provenance,
        );
        self.error(src.at, message);
        value
    }

    fn session(&mut self, global: &GlobalBudget, parent: &Node) -> (SessionBudget, Node) {
        let s = &self.file.session;
        let keys = level_keys(&[(&s.limits, "[session]", 1)], &builtin::SESSION);
        let (resolved, node) = self.level(Level::Session, &keys, parent);

        let s = &self.file.session;
        let servers = pick(&[(&s.max_servers, "[session]", 1)], builtin::SESSION_MAX_SERVERS);
        let mut max_servers = servers.value;
        if let (Some(n), Some(cap)) = (servers.value, global.max_servers) {
            let g = &self.file.global;
            let cap_src = pick(&[(&g.max_servers, "[global]", 1)], builtin::GLOBAL_MAX_SERVERS);
            let ceiling = Ceiling { value: cap, level: Level::Global, provenance: cap_src.provenance(None, None) };
            let child = Child { level: Level::Session, key: "max_servers", src: &servers, value: n, raw: None };
            max_servers = Some(self.fit(child, Some(&ceiling)).0);
        }

        // A percentage is of the same base as the session's memory_max.
        let floor = pick(&[(&self.file.session.floor, "[session]", 1)], builtin::SESSION_FLOOR);
        let amount = Amount::of(floor.value, parent.base);
        const RULE: &str = "a session's share never exceeds that memory_max, so its floor cannot either";
        let floor = self.under_memory((Level::Session, "floor"), &floor, amount, node.memory.as_ref(), RULE);

        let budget = SessionBudget { limits: resolved.limits(), max_servers, floor: floor.bytes().unwrap_or(0) };
        (budget, node)
    }

    /// `min_headroom`, a percentage of the global memory_max, must fit
    /// under the session's: a new server needs that much free in both.
    fn min_headroom(&mut self, global: &Node, session: &Node) -> u64 {
        let headroom = pick(&[(&self.file.global.min_headroom, "[global]", 1)], builtin::MIN_HEADROOM);
        let amount = Amount::of(headroom.value, global.base);
        let key = (Level::Global, "min_headroom");
        const RULE: &str = "no server could ever be admitted";
        self.under_memory(key, &headroom, amount, session.memory.as_ref(), RULE).bytes().unwrap_or(0)
    }

    /// The global and session budgets, and what the session hands down.
    fn upper(&mut self) -> (GlobalBudget, SessionBudget, Node) {
        let (mut global, gnode) = self.global();
        let (session, snode) = self.session(&global, &gnode);
        global.min_headroom = self.min_headroom(&gnode, &snode);
        (global, session, snode)
    }

    /// The budget of a server matched to `entry`, or of `[defaults]`.
    fn server(&mut self, entry: Option<&Entry>, parent: &Node) -> ServerBudget {
        let d = &self.file.defaults;
        let label = entry.map(Entry::label);
        let mut sources: Vec<(&LimitKeys, &str, u8)> = Vec::new();
        if let (Some(e), Some(label)) = (entry, label.as_deref()) {
            sources.push((&e.keys.limits, label, 2));
        }
        sources.push((&d.limits, "[defaults]", 1));
        let keys = level_keys(&sources, &builtin::SERVER);
        let (resolved, _) = self.level(Level::Server, &keys, parent);

        let own = entry.map(|e| &e.keys);
        // Non-limit keys have no rule between levels: only the value matters.
        macro_rules! value {
            ($field:ident, $builtin:expr) => {
                own.and_then(|k| k.$field.as_ref()).or(d.$field.as_ref()).map_or($builtin, |l| l.value.clone())
            };
        }
        ServerBudget {
            entry: entry.map(|e| e.name.clone()),
            limits: resolved.limits(),
            grace: value!(grace, builtin::GRACE),
            kill_timeout: value!(kill_timeout, builtin::KILL_TIMEOUT),
            sample_interval: value!(sample_interval, builtin::SAMPLE_INTERVAL),
            throttle_timeout: value!(throttle_timeout, builtin::THROTTLE_TIMEOUT),
            require: value!(require, builtin::REQUIRE),
            share: value!(share, builtin::SHARE),
            idle_timeout: value!(idle_timeout, builtin::IDLE_TIMEOUT),
            max_instances: value!(max_instances, builtin::MAX_INSTANCES),
            weight: value!(weight, builtin::WEIGHT),
            privileges: self.privileges(own, d),
        }
    }

    /// The privilege keys, each from the entry or else `[defaults]`, with
    /// where it was written. They have no built-in value: not written, the
    /// runner decides by whether it is root.
    fn privileges(&self, own: Option<&ServerKeys>, d: &ServerKeys) -> Privileges {
        let origin = self.origin;
        fn setting<T: Clone>(origin: &str, own: Option<&Opt<T>>, defaults: &Opt<T>) -> Option<Setting<T>> {
            own.and_then(Option::as_ref).or(defaults.as_ref()).map(|l| Setting {
                value: l.value.clone(),
                origin: origin.to_owned(),
                location: l.at,
            })
        }
        Privileges {
            no_new_privs: setting(origin, own.map(|k| &k.no_new_privs), &d.no_new_privs),
            drop_capabilities: setting(origin, own.map(|k| &k.drop_capabilities), &d.drop_capabilities),
            user: setting(origin, own.map(|k| &k.user), &d.user),
            group: setting(origin, own.map(|k| &k.group), &d.group),
        }
    }

    /// The budget of one server matched to `entry` (`None`: `[defaults]`).
    pub(crate) fn one(&mut self, entry: Option<&Entry>) -> Effective {
        let (global, session, snode) = self.upper();
        let server = self.server(entry, &snode);
        Effective { global, session, server }
    }

    /// Every budget the file can produce: the global and session ones,
    /// `[defaults]`, then each entry in file order.
    pub(crate) fn everything(&mut self) -> (GlobalBudget, SessionBudget, Vec<ServerBudget>) {
        let (global, session, snode) = self.upper();
        let file = self.file;
        let mut servers = vec![self.server(None, &snode)];
        for entry in &file.entries {
            servers.push(self.server(Some(entry), &snode));
        }
        (global, session, servers)
    }
}

/// The load-time check: every conflict that does not depend on the host.
pub(crate) fn check(file: &PolicyFile, origin: &str) -> Vec<Diagnostic> {
    let mut resolver = Resolver::new(file, origin, None);
    resolver.everything();
    resolver.into_diagnostics()
}

#[cfg(test)]
mod tests {
    use crate::tests::{GIB, HOST_16G};
    use crate::{Effective, HostMemory, Policy, ServerRequest, from_str};

    const MIB: u64 = 1 << 20;

    fn policy(text: &str) -> Policy {
        match from_str(text, "p.toml") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn load_errors(text: &str) -> Vec<String> {
        match from_str(text, "p.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
        }
    }

    fn resolve(text: &str, name: Option<&str>, host: HostMemory) -> Result<Effective, String> {
        let req = ServerRequest { name, argv: &[] };
        policy(text).resolve(&req, &host).map_err(|e| e.to_string())
    }

    fn gib(n: u64) -> HostMemory {
        HostMemory { physical_bytes: n * GIB }
    }

    #[test]
    fn an_unknown_host_memory_size_is_an_error_not_zero_limits() {
        assert_eq!(
            resolve("", None, gib(0)).unwrap_err(),
            "p.toml: cannot resolve the policy: the host's physical memory size is unknown \
             (0 bytes)"
        );
    }

    #[test]
    fn memory_high_above_memory_max_in_one_section() {
        assert_eq!(
            load_errors("[session]\nmemory_max = \"2G\"\nmemory_high = \"3G\"\n"),
            ["p.toml:3:15: [session] memory_high 3.0 GiB is above its memory_max 2.0 GiB \
              (set at 2:14); memory_high must not exceed memory_max"]
        );
    }

    #[test]
    fn session_above_global() {
        assert_eq!(
            load_errors("[global]\nmemory_max = \"8G\"\n[session]\nmemory_max = \"10G\"\n"),
            ["p.toml:4:14: [session] memory_max 10.0 GiB is above the global memory_max \
              8.0 GiB (set at 2:14); a session budget cannot be above the global one"]
        );
    }

    #[test]
    fn server_above_session() {
        let text = "[session]\nmemory_max = \"4G\"\n[defaults]\nmemory_max = \"6G\"\n\
                    [server.big]\nmemory_max = \"5G\"\n";
        assert_eq!(
            load_errors(text),
            [
                "p.toml:4:14: [defaults] memory_max 6.0 GiB is above the session memory_max \
                 4.0 GiB (set at 2:14); a server budget cannot be above its session's",
                "p.toml:6:14: [server.big] memory_max 5.0 GiB is above the session memory_max \
                 4.0 GiB (set at 2:14); a server budget cannot be above its session's",
            ]
        );
    }

    #[test]
    fn server_above_global_when_session_is_unlimited() {
        let text = "[global]\nmemory_max = \"4G\"\n[session]\nmemory_max = \"max\"\n\
                    [defaults]\nmemory_max = \"6G\"\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:6:14: [defaults] memory_max 6.0 GiB is above the global memory_max \
              4.0 GiB (set at 2:14), which applies because the session sets none; a server \
              budget cannot be above the global one"]
        );
    }

    #[test]
    fn an_error_inherited_by_many_entries_is_reported_once() {
        let text = "[defaults]\nmemory_max = \"1G\"\nmemory_high = \"2G\"\n\
                    [server.a]\npids_max = 5\n[server.b]\ngrace = \"1s\"\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:3:15: [defaults] memory_high 2.0 GiB is above its memory_max 1.0 GiB \
              (set at 2:14); memory_high must not exceed memory_max"]
        );
    }

    #[test]
    fn blames_the_entry_that_lowers_memory_max_under_an_inherited_high() {
        let text = "[defaults]\nmemory_max = \"4G\"\nmemory_high = \"3G\"\n\
                    [server.small]\nmemory_max = \"1G\"\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:5:14: [server.small] memory_max 1.0 GiB is below memory_high 3.0 GiB \
              (inherited from [defaults], set at 3:15); memory_high must not exceed memory_max"]
        );
    }

    #[test]
    fn blames_the_entry_that_raises_memory_high_over_an_inherited_max() {
        let text = "[defaults]\nmemory_max = \"1G\"\n[server.x]\nmemory_high = \"2G\"\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:4:15: [server.x] memory_high 2.0 GiB is above the memory_max 1.0 GiB \
              (inherited from [defaults], set at 2:14); memory_high must not exceed memory_max"]
        );
    }

    #[test]
    fn host_dependent_conflicts_are_found_by_resolve_with_a_location() {
        // Built-in: global 50% of 16 GiB, session 50% of that = 4 GiB.
        let text = "[defaults]\nmemory_max = \"6G\"\n";
        assert_eq!(
            resolve(text, None, HOST_16G).unwrap_err(),
            "p.toml:2:14: [defaults] memory_max 6.0 GiB is above the session memory_max \
             4.0 GiB (built-in default \"50%\"); a server budget cannot be above its session's"
        );
        // On a 64 GiB host the session gets 16 GiB and the same file is fine.
        assert_eq!(resolve(text, None, gib(64)).unwrap().server.limits.memory_max, Some(6 * GIB));
    }

    #[test]
    fn percentage_of_a_written_parent_names_the_percentage() {
        let text = "[global]\nmemory_max = \"25%\"\n[session]\nmemory_max = \"5G\"\n";
        assert!(load_errors(text).is_empty());
        assert_eq!(
            resolve(text, None, HOST_16G).unwrap_err(),
            "p.toml:4:14: [session] memory_max 5.0 GiB is above the global memory_max \
             4.0 GiB (\"25%\" set at 2:14); a session budget cannot be above the global one"
        );
    }

    #[test]
    fn memory_high_against_a_builtin_memory_max_on_this_host() {
        let text = "[session]\nmemory_high = \"5G\"\n";
        assert_eq!(
            resolve(text, None, HOST_16G).unwrap_err(),
            "p.toml:2:15: [session] memory_high 5.0 GiB is above its memory_max 4.0 GiB \
             (built-in default \"50%\"); memory_high must not exceed memory_max"
        );
    }

    #[test]
    fn values_that_round_alike_are_shown_exactly() {
        let text = "[session]\nmemory_max = 1073741824\nmemory_high = 1073741825\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:3:15: [session] memory_high 1073741825 bytes is above its memory_max \
              1073741824 bytes (set at 2:14); memory_high must not exceed memory_max"]
        );
    }

    #[test]
    fn percent_bases_follow_the_chain() {
        let text = "[global]\nmemory_max = \"50%\"\n[session]\nmemory_max = \"25%\"\n\
                    [defaults]\nmemory_max = \"50%\"\nmemory_high = \"50%\"\nswap_max = \"10%\"\n";
        let e = resolve(text, None, HOST_16G).unwrap();
        assert_eq!(e.global.limits.memory_max, Some(8 * GIB));
        assert_eq!(e.session.limits.memory_max, Some(2 * GIB));
        assert_eq!(e.server.limits.memory_max, Some(GIB));
        assert_eq!(e.server.limits.memory_high, Some(GIB / 2));
        // swap percentages share memory_max's base: the session's memory_max.
        assert_eq!(e.server.limits.swap_max, Some(2 * GIB / 10));
    }

    #[test]
    fn percent_bases_skip_unlimited_levels() {
        let text = "[global]\nmemory_max = \"max\"\nmemory_high = \"50%\"\n\
                    [session]\nmemory_max = \"max\"\n\
                    [defaults]\nmemory_max = \"25%\"\n";
        let e = resolve(text, None, HOST_16G).unwrap();
        assert_eq!(e.global.limits.memory_max, None);
        assert_eq!(e.global.limits.memory_high, Some(8 * GIB));
        assert_eq!(e.session.limits.memory_max, None);
        assert_eq!(e.server.limits.memory_max, Some(4 * GIB));
        // memory_high falls back to the parent's base when its own max is unlimited.
        let text = "[global]\nmemory_max = \"2G\"\n[session]\nmemory_max = \"max\"\n\
                    memory_high = \"50%\"\n";
        let e = resolve(text, None, HOST_16G).unwrap();
        assert_eq!(e.session.limits.memory_high, Some(GIB));
    }

    #[test]
    fn a_builtin_under_a_lower_written_limit_is_lowered_not_an_error() {
        let text = "[global]\npids_max = 500\ncpu_max = \"100%\"\nmax_servers = 10\n\
                    swap_max = \"1G\"\n";
        let e = resolve(text, None, HOST_16G).unwrap();
        assert_eq!(e.session.limits.pids_max, Some(500));
        assert_eq!(e.server.limits.pids_max, Some(500));
        assert_eq!(e.session.max_servers, Some(10));
        // Built-in swap: "max" at session level inherits, "0" for servers fits.
        assert_eq!(e.session.limits.swap_max, None);
        assert_eq!(e.server.limits.swap_max, Some(0));
        assert_eq!(e.server.limits.cpu_max, None);
    }

    #[test]
    fn a_written_value_above_a_lowered_builtin_names_the_written_one() {
        let text = "[global]\npids_max = 500\n[server.c]\npids_max = 600\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:4:12: [server.c] pids_max 600 is above the session pids_max 500 \
              (built-in default, lowered to the global pids_max set at 2:12); a server \
              budget cannot be above its session's"]
        );
    }

    #[test]
    fn counts_and_cpu_follow_the_hierarchy() {
        let text = "[global]\ncpu_max = \"200%\"\nmax_servers = 8\n\
                    [session]\ncpu_max = \"250%\"\nmax_servers = 9\npids_max = 100\n\
                    [defaults]\npids_max = 101\n";
        assert_eq!(
            load_errors(text),
            [
                "p.toml:5:11: [session] cpu_max 250% is above the global cpu_max 200% \
                 (set at 2:11); a session budget cannot be above the global one",
                "p.toml:6:15: [session] max_servers 9 is above the global max_servers 8 \
                 (set at 3:15); a session budget cannot be above the global one",
                "p.toml:9:12: [defaults] pids_max 101 is above the session pids_max 100 \
                 (set at 7:12); a server budget cannot be above its session's",
            ]
        );
    }

    #[test]
    fn swap_follows_the_hierarchy() {
        let text = "[session]\nswap_max = \"1G\"\n[defaults]\nswap_max = \"50%\"\n";
        assert!(load_errors(text).is_empty());
        assert_eq!(
            resolve(text, None, HOST_16G).unwrap_err(),
            "p.toml:4:12: [defaults] swap_max 2.0 GiB (\"50%\") is above the session swap_max \
             1.0 GiB (set at 2:12); a server budget cannot be above its session's"
        );
    }

    #[test]
    fn entries_inherit_unset_keys_from_defaults() {
        let text = "[defaults]\ngrace = \"10s\"\nshare = \"auto\"\nmemory_max = \"1G\"\n\
                    [server.a]\nshare = \"always\"\nmax_instances = 2\nthrottle_timeout = \"never\"\n";
        let e = resolve(text, Some("a"), HOST_16G).unwrap();
        assert_eq!(e.server.grace, std::time::Duration::from_secs(10));
        assert_eq!(e.server.share, crate::Share::Always);
        assert_eq!(e.server.max_instances, Some(2));
        assert_eq!(e.server.throttle_timeout, None);
        assert_eq!(e.server.limits.memory_max, Some(GIB));
        assert_eq!(e.server.limits.memory_high, Some(GIB * 8 / 10));
        assert_eq!(e.server.kill_timeout, std::time::Duration::from_secs(2));
    }

    #[test]
    fn report_collects_the_errors_of_every_entry() {
        let text = "[session]\nmemory_max = \"25%\"\n\
                    [server.a]\nmemory_max = \"3G\"\n[server.b]\nmemory_max = \"4G\"\n";
        let p = policy(text);
        let err = p.report(&HOST_16G).unwrap_err();
        assert_eq!(err.diagnostics().len(), 2, "{err}");
        assert!(p.report(&gib(64)).is_ok());
    }

    #[test]
    fn admission_percentages_are_of_the_global_memory_max() {
        let text = "[global]\nmemory_max = \"4G\"\nmin_headroom = \"5%\"\nmax_pressure = \"12.5%\"\n\
                    [session]\nfloor = \"25%\"\n";
        let e = resolve(text, None, HOST_16G).unwrap();
        assert_eq!(e.global.min_headroom, 4 * GIB / 20);
        assert_eq!(e.global.max_pressure, Some(12.5));
        assert_eq!(e.session.floor, GIB);
        // With no global memory_max, like memory_high: of physical memory.
        let text = "[global]\nmemory_max = \"max\"\nmin_headroom = \"1%\"\n\
                    [session]\nmemory_max = \"max\"\nfloor = \"25%\"\n";
        let e = resolve(text, None, HOST_16G).unwrap();
        assert_eq!(e.global.min_headroom, 16 * GIB / 100);
        assert_eq!(e.session.floor, 4 * GIB);
        let e = resolve("[global]\nmin_headroom = 0\nmax_pressure = \"max\"\n", None, HOST_16G).unwrap();
        assert_eq!((e.global.min_headroom, e.global.max_pressure), (0, None));
    }

    #[test]
    fn a_written_floor_above_the_session_memory_max_is_an_error() {
        assert_eq!(
            load_errors("[session]\nmemory_max = \"2G\"\nfloor = \"3G\"\n"),
            ["p.toml:3:9: [session] floor 3.0 GiB is above its memory_max 2.0 GiB (set at 2:14); \
              a session's share never exceeds that memory_max, so its floor cannot either"]
        );
        assert_eq!(
            resolve("[session]\nmemory_max = \"2G\"\nfloor = \"2G\"\n", None, HOST_16G).unwrap().session.floor,
            2 * GIB
        );
        // Against a built-in memory_max, found once the host is known.
        let text = "[session]\nfloor = \"60%\"\n";
        assert!(load_errors(text).is_empty());
        assert_eq!(
            resolve(text, None, HOST_16G).unwrap_err(),
            "p.toml:2:9: [session] floor 4.8 GiB (\"60%\") is above its memory_max 4.0 GiB (built-in \
             default \"50%\"); a session's share never exceeds that memory_max, so its floor cannot \
             either"
        );
        let text = "[global]\nmemory_max = \"4G\"\n[session]\nmemory_max = \"max\"\nfloor = \"5G\"\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:5:9: [session] floor 5.0 GiB is above the global memory_max 4.0 GiB (set at \
              2:14), which applies because the session sets none; a session's share never exceeds \
              that memory_max, so its floor cannot either"]
        );
    }

    #[test]
    fn the_builtin_floor_is_lowered_to_a_written_session_memory_max() {
        let e = resolve("[session]\nmemory_max = \"256M\"\n", None, HOST_16G).unwrap();
        assert_eq!(e.session.floor, 256 * MIB);
        let e = resolve("[session]\nmemory_max = \"5%\"\n", None, HOST_16G).unwrap();
        assert_eq!(e.session.floor, 8 * GIB / 20);
        let e = resolve("[global]\nmemory_max = \"1G\"\n", None, HOST_16G).unwrap();
        assert_eq!(e.session.floor, GIB / 10);
    }

    #[test]
    fn min_headroom_must_fit_under_the_session_memory_max() {
        let text = "[session]\nmemory_max = \"1G\"\n[global]\nmin_headroom = \"2G\"\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:4:16: [global] min_headroom 2.0 GiB is above the session memory_max 1.0 GiB \
              (set at 2:14); no server could ever be admitted"]
        );
        let text = "[global]\nmemory_max = \"1G\"\nmin_headroom = \"2G\"\n[session]\nmemory_max = \"max\"\n";
        assert_eq!(
            load_errors(text),
            ["p.toml:3:16: [global] min_headroom 2.0 GiB is above its memory_max 1.0 GiB (set at \
              2:14); no server could ever be admitted"]
        );
        let text = "[global]\nmin_headroom = \"5G\"\n";
        assert!(load_errors(text).is_empty());
        assert_eq!(
            resolve(text, None, HOST_16G).unwrap_err(),
            "p.toml:2:16: [global] min_headroom 5.0 GiB is above the session memory_max 4.0 GiB \
             (built-in default \"50%\"); no server could ever be admitted"
        );
        // The built-in 64M is lowered instead; nothing limited: kept.
        let e = resolve("[session]\nmemory_max = \"32M\"\n", None, HOST_16G).unwrap();
        assert_eq!(e.global.min_headroom, 32 * MIB);
        let e = resolve("[global]\nmemory_max = \"max\"\n[session]\nmemory_max = \"max\"\n", None, HOST_16G).unwrap();
        assert_eq!(e.global.min_headroom, 64 * MIB);
    }

    #[test]
    fn issue_9_privilege_keys_inherit_one_by_one_and_keep_their_place() {
        // See: issue 9, finding 6
        use crate::{Account, Location, Setting};
        let text = "[defaults]\nuser = \"nobody\"\nno_new_privs = false\n[server.a]\nuser = 1000\n\
                    drop_capabilities = true\n[server.b]\n";
        let at = |line, column| Some(Location { line, column });
        fn set<T>(value: T, location: Option<Location>) -> Option<Setting<T>> {
            Some(Setting { value, origin: "p.toml".into(), location })
        }
        let a = resolve(text, Some("a"), HOST_16G).unwrap().server.privileges;
        assert_eq!(a.user, set(Account::Id(1000), at(5, 8)));
        assert_eq!(a.no_new_privs, set(false, at(3, 16)));
        assert_eq!(a.drop_capabilities, set(true, at(6, 21)));
        assert_eq!(a.group, None);
        let b = resolve(text, Some("b"), HOST_16G).unwrap().server.privileges;
        assert_eq!(b.user, set(Account::Name("nobody".into()), at(2, 8)));
        assert_eq!(b.drop_capabilities, None);
        // Not written anywhere: left to the runner.
        assert_eq!(resolve("", None, HOST_16G).unwrap().server.privileges, crate::Privileges::default());
    }

    #[test]
    fn entries_inherit_weight_from_defaults() {
        let text = "[defaults]\nweight = 2\n[server.a]\nweight = 5\n[server.b]\n";
        assert_eq!(resolve(text, Some("a"), HOST_16G).unwrap().server.weight, 5);
        assert_eq!(resolve(text, Some("b"), HOST_16G).unwrap().server.weight, 2);
        assert_eq!(resolve("", None, HOST_16G).unwrap().server.weight, 1);
    }

    // ---- property tests over generated policies -------------------------

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};

    /// A generated size, with its own meaning for the oracle.
    #[derive(Clone, Copy, Debug)]
    enum V {
        Max,
        /// Parts per million.
        Pct(u64),
        Abs(u64),
    }

    impl V {
        /// "max", a percentage (any, or a whole one), or bytes (0 only
        /// where the key allows it).
        fn size(zero_ok: bool) -> impl Strategy<Value = V> {
            let abs = (1..=32 * 1024u64).prop_map(|m| V::Abs(MIB * m));
            let abs = if zero_ok { prop_oneof![3 => abs, 1 => Just(V::Abs(0))].boxed() } else { abs.boxed() };
            prop_oneof![
                Just(V::Max),
                (1..=1_000_000u64).prop_map(V::Pct),
                (1..=100u64).prop_map(|p| V::Pct(10_000 * p)),
                abs,
            ]
        }
        fn toml(self) -> String {
            match self {
                V::Max => "\"max\"".into(),
                V::Pct(ppm) => {
                    let frac = format!("{:04}", ppm % 10_000);
                    format!("\"{}.{}%\"", ppm / 10_000, frac)
                }
                V::Abs(b) if b % MIB == 0 && b > 0 => format!("\"{}M\"", b / MIB),
                V::Abs(b) => b.to_string(),
            }
        }
        fn eval(self, base: u64) -> Option<u64> {
            match self {
                V::Max => None,
                V::Pct(ppm) => Some((u128::from(base) * u128::from(ppm) / 1_000_000) as u64),
                V::Abs(b) => Some(b),
            }
        }
    }

    #[derive(Clone, Copy, Debug)]
    struct Level {
        max: V,
        high: V,
        swap: V,
        pids: Option<u64>,
    }

    impl Level {
        fn strategy() -> impl Strategy<Value = Level> {
            let pids = prop_oneof![1 => Just(None), 3 => (1..=10_000u64).prop_map(Some)];
            (V::size(false), V::size(false), V::size(true), pids).prop_map(|(max, high, swap, pids)| Level {
                max,
                high,
                swap,
                pids,
            })
        }
        fn toml(&self, header: &str, only: [bool; 4]) -> String {
            let mut out = format!("[{header}]\n");
            let pids = self.pids.map_or("\"max\"".into(), |n| n.to_string());
            let keys = [
                ("memory_max", self.max.toml()),
                ("memory_high", self.high.toml()),
                ("swap_max", self.swap.toml()),
                ("pids_max", pids),
            ];
            for ((key, value), keep) in keys.into_iter().zip(only) {
                if keep {
                    out.push_str(&format!("{key} = {value}\n"));
                }
            }
            out
        }
    }

    /// Resolution written the obvious way, for comparison: `None` if any
    /// rule is broken, else (memory_max, memory_high, swap_max, pids_max)
    /// per level.
    #[allow(clippy::type_complexity)]
    fn oracle(ram: u64, levels: &[Level]) -> Option<Vec<(Option<u64>, Option<u64>, Option<u64>, Option<u64>)>> {
        let (mut base, mut mem_cap, mut swap_cap, mut pids_cap) = (ram, None, None, None);
        let mut out = Vec::new();
        let above = |v: Option<u64>, cap: Option<u64>| matches!((v, cap), (Some(v), Some(c)) if v > c);
        for l in levels {
            let max = l.max.eval(base);
            let high = l.high.eval(max.unwrap_or(base));
            let swap = l.swap.eval(base);
            if above(max, mem_cap) || above(high, max) || above(swap, swap_cap) || above(l.pids, pids_cap) {
                return None;
            }
            out.push((max, high, swap, l.pids));
            if let Some(m) = max {
                base = m;
                mem_cap = Some(m);
            }
            swap_cap = swap.or(swap_cap);
            pids_cap = l.pids.or(pids_cap);
        }
        Some(out)
    }

    fn merged(defaults: Level, entry: Level, set: [bool; 4]) -> Level {
        Level {
            max: if set[0] { entry.max } else { defaults.max },
            high: if set[1] { entry.high } else { defaults.high },
            swap: if set[2] { entry.swap } else { defaults.swap },
            pids: if set[3] { entry.pids } else { defaults.pids },
        }
    }

    /// One generated policy: the machine's RAM, the four levels, and which
    /// keys the server's entry sets.
    #[derive(Clone, Debug)]
    struct Generated {
        ram: u64,
        levels: [Level; 4],
        set: [bool; 4],
    }

    impl Generated {
        fn strategy() -> impl Strategy<Value = Generated> {
            (
                GIB / 2..GIB / 2 + 128 * GIB,
                [Level::strategy(), Level::strategy(), Level::strategy(), Level::strategy()],
                any::<[bool; 4]>(),
            )
                .prop_map(|(ram, levels, set)| Generated { ram, levels, set })
        }

        fn text(&self) -> String {
            let [global, session, defaults, entry] = self.levels;
            let all = [true; 4];
            [
                global.toml("global", all),
                session.toml("session", all),
                defaults.toml("defaults", all),
                entry.toml("server.e", self.set),
            ]
            .concat()
        }

        /// What the oracle says of the defaults' server and of the entry's.
        #[allow(clippy::type_complexity)]
        fn expected(&self) -> [Option<Vec<(Option<u64>, Option<u64>, Option<u64>, Option<u64>)>>; 2] {
            let [global, session, defaults, entry] = self.levels;
            [
                oracle(self.ram, &[global, session, defaults]),
                oracle(self.ram, &[global, session, merged(defaults, entry, self.set)]),
            ]
        }
    }

    fn config(cases: u32) -> Config {
        Config { cases, failure_persistence: None, ..Config::default() }
    }

    proptest! {
        #![proptest_config(config(2_000))]

        #[test]
        fn generated_policies_resolve_like_the_oracle_and_keep_the_invariants(g in Generated::strategy()) {
            let text = g.text();
            let host = HostMemory { physical_bytes: g.ram };
            let [expect_defaults, expect_entry] = g.expected();
            let got = from_str(&text, "gen.toml").and_then(|p| p.report(&host));
            match (got, &expect_defaults, &expect_entry) {
                (Ok(report), Some(d), Some(e)) => {
                    let level = |l: &crate::Limits| (l.memory_max, l.memory_high, l.swap_max, l.pids_max);
                    prop_assert_eq!(level(&report.global.limits), d[0], "{}", text);
                    prop_assert_eq!(level(&report.session.limits), d[1], "{}", text);
                    prop_assert_eq!(level(&report.servers[0].budget.limits), d[2], "{}", text);
                    prop_assert_eq!(level(&report.servers[1].budget.limits), e[2], "{}", text);
                    for limits in [&report.global.limits, &report.session.limits]
                        .into_iter()
                        .chain(report.servers.iter().map(|s| &s.budget.limits))
                    {
                        if let (Some(h), Some(m)) = (limits.memory_high, limits.memory_max) {
                            prop_assert!(h <= m, "{}", text);
                        }
                    }
                    let chain = [
                        report.global.limits.memory_max,
                        report.session.limits.memory_max,
                        report.servers[1].budget.limits.memory_max,
                    ];
                    let set_values: Vec<u64> = chain.iter().flatten().copied().collect();
                    prop_assert!(set_values.windows(2).all(|w| w[1] <= w[0]), "{}", text);
                    // Built-in floor and headroom are lowered under whatever memory_max applies.
                    let session_cap = report.session.limits.memory_max.or(report.global.limits.memory_max);
                    prop_assert!(report.session.floor <= session_cap.unwrap_or(u64::MAX), "{}", text);
                    prop_assert!(report.global.min_headroom <= session_cap.unwrap_or(u64::MAX), "{}", text);
                }
                (Err(err), d, e) => {
                    prop_assert!(d.is_none() || e.is_none(), "rejected a valid policy:\n{}\n{}", text, err);
                    for diag in err.diagnostics() {
                        let at = diag.location.expect("every generated error has a position");
                        let line = text.lines().nth(at.line - 1).unwrap_or("");
                        prop_assert!(
                            ["memory_max", "memory_high", "swap_max", "pids_max"].iter().any(|k| line.starts_with(k)),
                            "error points at {:?}: {}", line, diag
                        );
                        prop_assert!(diag.message.contains(" is above ") || diag.message.contains(" is below "));
                    }
                }
                (Ok(_), d, e) => prop_assert!(false, "accepted an invalid policy ({:?}, {:?}):\n{}", d, e, text),
            }
        }

        #[test]
        fn a_percentage_never_resolves_above_its_base(ram in 1..u64::MAX / 2, ppm in 1..=1_000_000u64) {
            let pct = V::Pct(ppm);
            let text = format!("[global]\nmemory_max = {}\nmemory_high = {}\n", pct.toml(), pct.toml());
            let e = resolve(&text, None, HostMemory { physical_bytes: ram }).expect("valid");
            let max = e.global.limits.memory_max.unwrap_or(u64::MAX);
            prop_assert!(max <= ram);
            prop_assert!(e.global.limits.memory_high.unwrap_or(u64::MAX) <= max);
        }

        #[test]
        fn mangled_policies_never_panic_and_always_point_inside_the_file(
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<prop::sample::Index>()), 1..5),
        ) {
            let junk = b"=[]\"'#.%\n 0123456789abcdefGM_-{},\\\xc3\xa9";
            let mut bytes = crate::tests::EXAMPLE.as_bytes().to_vec();
            for (at, op, with) in edits {
                let at = at.index(bytes.len() + 1);
                let byte = junk[with.index(junk.len())];
                match op {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.insert(at, byte),
                }
            }
            let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(()) };
            let lines = text.lines().count() + 1;
            match from_str(text, "m.toml") {
                Ok(p) => {
                    let _ = p.report(&HOST_16G);
                }
                Err(err) => {
                    for d in err.diagnostics() {
                        let at = d.location.expect("file errors have a position");
                        prop_assert!(at.line >= 1 && at.line <= lines && at.column >= 1, "{}", d);
                        prop_assert!(d.to_string().starts_with("m.toml:"));
                    }
                }
            }
        }
    }

    /// The oracle test means something only if the generator reaches both
    /// outcomes often.
    #[test]
    fn the_generator_reaches_valid_and_invalid_policies() {
        let mut runner = TestRunner::deterministic();
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..3_000 {
            let g = Generated::strategy().new_tree(&mut runner).expect("a policy").current();
            match g.expected() {
                [Some(_), Some(_)] => valid += 1,
                _ => invalid += 1,
            }
        }
        assert!(valid > 200 && invalid > 200, "{valid} valid, {invalid} invalid");
    }
}
