//! One `wrap` or `--undo` as a read, an edit and a write, started over
//! while the config changes under it.
//!
//! A client may rewrite its config at any moment (Claude Code rewrites
//! `~/.claude.json` often). Renaming an edit of an older version over the
//! config would lose that write, so the store re-checks the config right
//! before its rename and reports [`FileError::Changed`]; the whole
//! read-edit-write then starts again, at most [`MAX_ATTEMPTS`] times. The
//! I/O is behind [`Store`] so that this loop is tested against a fake that
//! changes under it at chosen steps; `file` is the real store.

use super::file::FileError;
use super::{ConfigError, Mode, Plan, plan};

/// Reads of the config before `wrap` gives up on one that keeps changing.
pub const MAX_ATTEMPTS: u32 = 5;

/// The config and its backup, as the edit needs them.
pub trait Store {
    /// Tells one version of the config from another, and holds what a file
    /// written in its place takes from it (owner, mode).
    type Version;
    /// The config's text and the version it was read from.
    fn read(&mut self) -> Result<(String, Self::Version), FileError>;
    /// Whether the config is still `version`.
    fn is_current(&mut self, version: &Self::Version) -> Result<bool, FileError>;
    /// The backup's text, `None` if there is none;
    /// [`FileError::NotABackup`] if something else is at its name.
    fn read_backup(&mut self) -> Result<Option<String>, FileError>;
    /// Saves `text` as the backup unless an earlier backup is there;
    /// returns whether it created one.
    fn save_backup(&mut self, text: &str, version: &Self::Version) -> Result<bool, FileError>;
    /// Removes the backup the last `save_backup` created.
    fn discard_backup(&mut self) -> Result<(), FileError>;
    /// Replaces the config with `text` if it is still `version`, else
    /// [`FileError::Changed`] and nothing is written.
    fn replace(&mut self, text: &str, version: &Self::Version) -> Result<(), FileError>;
}

#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// Wrap every stdio server with `runner` as the command.
    Wrap { runner: &'a str },
    /// Unwrap every wrapped server; `runner` is a `--runner` to recognise
    /// besides `mcp-runner`.
    Undo { runner: Option<&'a str> },
}

/// What an edit did.
#[derive(Debug)]
pub struct Edited {
    /// The config as read by the attempt that finished.
    pub original: String,
    pub plan: Plan,
    pub backup: Backup,
    /// How many times the config was read: more than one when it changed
    /// under the edit.
    pub attempts: u32,
}

/// The backup after the edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backup {
    /// This edit saved it.
    Created,
    /// An earlier one is there (undo: one is there).
    Kept,
    /// There is none, or it was not looked at (a wrap that writes nothing).
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The config could not be read.
    #[error(transparent)]
    Read(FileError),
    #[error(transparent)]
    Config(ConfigError),
    #[error(transparent)]
    File(FileError),
    #[error(
        "it kept changing while wrap was editing it ({attempts} attempts; is a client rewriting it?): \
         nothing was changed; quit the client and run wrap again"
    )]
    KeptChanging { attempts: u32 },
}

/// Plans `action` on the config and, if `write` and it changes, writes it
/// (saving the backup first when wrapping), starting over while the config
/// changes under it.
pub fn edit<S: Store>(store: &mut S, action: Action<'_>, write: bool) -> Result<Edited, EditError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let (original, version) = store.read().map_err(EditError::Read)?;
        let (saved, mut backup) = match action {
            Action::Wrap { .. } => (None, Backup::None),
            Action::Undo { .. } => match store.read_backup() {
                Ok(Some(saved)) => (Some(saved), Backup::Kept),
                Ok(None) => (None, Backup::None),
                Err(e @ FileError::NotABackup { .. }) => return Err(EditError::File(e)),
                // The backup only tells which servers had no `args`:
                // unreadable, it is no reason to refuse.
                Err(_) => (None, Backup::Kept),
            },
        };
        let mode = match action {
            Action::Wrap { runner } => Mode::Wrap { runner },
            Action::Undo { runner } => Mode::Undo { runner, backup: saved.as_deref() },
        };
        let plan = match plan(&original, &mode) {
            Ok(plan) => plan,
            // Half a config, caught while a client wrote it in place: the
            // whole one is worth another read.
            Err(e) if !e.is_internal() && !store.is_current(&version).map_err(EditError::File)? => continue,
            Err(e) => return Err(EditError::Config(e)),
        };
        if !write || !plan.changed {
            return Ok(Edited { original, plan, backup, attempts: attempt });
        }
        // The backup first: if it cannot be saved, the config stays untouched.
        if let Action::Wrap { .. } = action {
            let created = store.save_backup(&original, &version).map_err(EditError::File)?;
            backup = if created { Backup::Created } else { Backup::Kept };
        }
        match store.replace(&plan.text, &version) {
            Ok(()) => return Ok(Edited { original, plan, backup, attempts: attempt }),
            Err(FileError::Changed { .. }) => {
                // It holds a version that is gone: the next attempt saves
                // the one it wraps.
                if backup == Backup::Created {
                    store.discard_backup().map_err(EditError::File)?;
                }
            }
            Err(e) => return Err(EditError::File(e)),
        }
    }
    Err(EditError::KeptChanging { attempts: MAX_ATTEMPTS })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::path::PathBuf;

    use super::*;

    const RUNNER: &str = "/bin/mcp-runner";
    const CONFIG: &str = r#"{"mcpServers": {"a": {"command": "node", "args": ["a.js"]}}}"#;
    /// What a client writes meanwhile: one more server.
    const CLIENT: &str =
        r#"{"mcpServers": {"a": {"command": "node", "args": ["a.js"]}, "b": {"command": "uvx", "args": ["b"]}}}"#;

    /// A config in memory whose version is a counter of writes, and a
    /// client that writes it at chosen steps.
    #[derive(Default)]
    struct Fake {
        text: String,
        generation: u32,
        backup: Option<String>,
        /// Before each `replace`, in turn: what the client writes first.
        client_before_replace: VecDeque<Option<String>>,
        /// Before each `read` returns, in turn: a text it returns instead
        /// (a torn read), after which the client finishes its write.
        torn_reads: VecDeque<Option<String>>,
        calls: Vec<String>,
    }

    impl Fake {
        fn new(text: &str) -> Fake {
            Fake { text: text.to_owned(), ..Fake::default() }
        }

        fn client_writes(&mut self, text: &str) {
            self.text = text.to_owned();
            self.generation += 1;
        }
    }

    fn changed() -> FileError {
        FileError::Changed { path: PathBuf::from("fake.json") }
    }

    impl Store for Fake {
        type Version = u32;

        fn read(&mut self) -> Result<(String, u32), FileError> {
            self.calls.push("read".to_owned());
            match self.torn_reads.pop_front().flatten() {
                Some(torn) => {
                    let version = self.generation;
                    self.generation += 1;
                    Ok((torn, version))
                }
                None => Ok((self.text.clone(), self.generation)),
            }
        }

        fn is_current(&mut self, version: &u32) -> Result<bool, FileError> {
            Ok(*version == self.generation)
        }

        fn read_backup(&mut self) -> Result<Option<String>, FileError> {
            self.calls.push("read backup".to_owned());
            Ok(self.backup.clone())
        }

        fn save_backup(&mut self, text: &str, _: &u32) -> Result<bool, FileError> {
            let created = self.backup.is_none();
            self.calls.push(format!("save backup: {}", if created { "created" } else { "kept" }));
            if created {
                self.backup = Some(text.to_owned());
            }
            Ok(created)
        }

        fn discard_backup(&mut self) -> Result<(), FileError> {
            self.calls.push("discard backup".to_owned());
            self.backup = None;
            Ok(())
        }

        fn replace(&mut self, text: &str, version: &u32) -> Result<(), FileError> {
            if let Some(client) = self.client_before_replace.pop_front().flatten() {
                self.client_writes(&client);
            }
            if *version != self.generation {
                self.calls.push("replace: changed".to_owned());
                return Err(changed());
            }
            self.calls.push("replace".to_owned());
            self.text = text.to_owned();
            self.generation += 1;
            Ok(())
        }
    }

    fn wrapped(text: &str) -> String {
        plan(text, &Mode::Wrap { runner: RUNNER }).expect("wraps").text
    }

    fn wrap(store: &mut Fake) -> Result<Edited, EditError> {
        edit(store, Action::Wrap { runner: RUNNER }, true)
    }

    #[test]
    fn an_unchanged_config_is_read_once_and_written_once() {
        let mut store = Fake::new(CONFIG);
        let done = wrap(&mut store).expect("wraps");
        assert_eq!((done.attempts, done.backup), (1, Backup::Created));
        assert_eq!(store.text, wrapped(CONFIG));
        assert_eq!(store.backup.as_deref(), Some(CONFIG));
        assert_eq!(store.calls, ["read", "save backup: created", "replace"]);
    }

    #[test]
    fn issue_9_a_config_changed_before_the_rename_is_read_again() {
        // See: issue 9, finding 5
        let mut store = Fake::new(CONFIG);
        store.client_before_replace = [Some(CLIENT.to_owned())].into();
        let done = wrap(&mut store).expect("wraps");
        // The client's write is kept, and wrapped; the backup is the
        // version that was wrapped, not the one that was gone.
        assert_eq!(store.text, wrapped(CLIENT));
        assert_eq!(store.backup.as_deref(), Some(CLIENT));
        assert_eq!((done.attempts, done.backup, done.original.as_str()), (2, Backup::Created, CLIENT));
        assert_eq!(
            store.calls,
            [
                "read",
                "save backup: created",
                "replace: changed",
                "discard backup",
                "read",
                "save backup: created",
                "replace"
            ]
        );
    }

    #[test]
    fn issue_9_a_config_that_keeps_changing_is_refused_and_left_as_the_client_wrote_it() {
        // See: issue 9, finding 5
        let mut store = Fake::new(CONFIG);
        store.client_before_replace = std::iter::repeat_n(Some(CLIENT.to_owned()), MAX_ATTEMPTS as usize).collect();
        let e = wrap(&mut store).expect_err("refused");
        assert!(matches!(e, EditError::KeptChanging { attempts: MAX_ATTEMPTS }), "{e}");
        assert_eq!(store.text, CLIENT);
        assert_eq!(store.backup, None, "a backup of a version that is gone was left");
        assert_eq!(store.calls.iter().filter(|c| *c == "read").count(), MAX_ATTEMPTS as usize);
        assert!(!store.calls.contains(&"replace".to_owned()));
    }

    #[test]
    fn issue_9_an_earlier_backup_survives_a_retry() {
        // See: issue 9, finding 5
        let mut store = Fake::new(CONFIG);
        store.backup = Some("earlier".to_owned());
        store.client_before_replace = [Some(CLIENT.to_owned())].into();
        let done = wrap(&mut store).expect("wraps");
        assert_eq!((done.attempts, done.backup), (2, Backup::Kept));
        assert_eq!(store.backup.as_deref(), Some("earlier"));
        assert!(!store.calls.contains(&"discard backup".to_owned()), "{:?}", store.calls);
    }

    #[test]
    fn a_torn_read_of_a_config_being_written_is_read_again_but_a_malformed_one_is_an_error() {
        let mut store = Fake::new(CONFIG);
        store.torn_reads = [Some(r#"{"mcpServers": {"a": {"comm"#.to_owned())].into();
        let done = wrap(&mut store).expect("wraps");
        assert_eq!((done.attempts, store.text), (2, wrapped(CONFIG)));

        let mut store = Fake::new(r#"{"mcpServers": {"a": {"comm"#);
        let e = wrap(&mut store).expect_err("malformed");
        assert!(matches!(e, EditError::Config(ConfigError::Syntax { .. })), "{e}");
        assert_eq!(store.calls, ["read"]);
    }

    #[test]
    fn undo_reads_the_backup_and_saves_none() {
        let mut store = Fake::new(&wrapped(CONFIG));
        store.backup = Some(CONFIG.to_owned());
        store.client_before_replace = [Some(wrapped(CLIENT))].into();
        let done = edit(&mut store, Action::Undo { runner: None }, true).expect("unwraps");
        assert_eq!((done.attempts, done.backup), (2, Backup::Kept));
        assert_eq!(store.text, CLIENT);
        assert_eq!(store.backup.as_deref(), Some(CONFIG));
        assert_eq!(store.calls, ["read", "read backup", "replace: changed", "read", "read backup", "replace"]);
    }

    #[test]
    fn a_dry_run_or_nothing_to_change_writes_nothing() {
        let mut store = Fake::new(CONFIG);
        let done = edit(&mut store, Action::Wrap { runner: RUNNER }, false).expect("plans");
        assert!(done.plan.changed);
        assert_eq!((store.text.as_str(), store.calls.as_slice()), (CONFIG, &["read".to_owned()][..]));

        let mut store = Fake::new(&wrapped(CONFIG));
        let done = wrap(&mut store).expect("plans");
        assert!(!done.plan.changed);
        assert_eq!(store.calls, ["read"]);
    }
}
