//! `chain_authorized_keys_command` in `/etc/opk/config.yml`: another `AuthorizedKeysCommand`
//! (EC2 Instance Connect's `eic_run_authorized_keys %u %f`, SSSD's `sss_ssh_authorizedkeys
//! %u`, an LDAP script) that `verify` runs for a key opkssh does not let in, since sshd runs
//! only one `AuthorizedKeysCommand`. Not in Go, which has no chain.
//!
//! The command is run the way sshd would have run it (openssh-portable `auth2-pubkey.c`
//! `user_key_command_allowed2` and `misc.c` `subprocess`), except where noted:
//! - the line is split into words as sshd splits it ([`argv_split`], no shell), the first word
//!   must be an absolute path, and in the other words the tokens `%u %U %f %k %t %h` and `%%`
//!   are expanded ([`percent_expand`]); `%f` is computed here, so sshd's line stays
//!   `verify %u %k %t`. A command with no arguments gets the user name, as sshd gives it;
//! - the program must be owned by root with mode 0755 or 0555 ([`perms::check_command`], the
//!   rule for plugin commands); sshd also checks the folders above it;
//! - it runs as the user `verify` runs as (sshd's `AuthorizedKeysCommandUser` for opkssh),
//!   with stdin from `/dev/null`, `/` as working directory and an environment of [`PATH`]
//!   and the `env_vars` of `config.yml` only (sshd also sets `USER`, `LOGNAME`, `HOME`, `LANG`);
//! - it has a deadline (what is left of `verify`'s budget; sshd has none) and is killed with
//!   its process group when it passes;
//! - of its stdout (at most [`MAX_STDOUT`] bytes; beyond that nothing passes), only
//!   well-formed `authorized_keys` lines are passed on ([`opk_core::authorized_keys`]); the
//!   others are dropped and logged. A command that does not exit 0 passes nothing: sshd
//!   ignores the output of a command that fails;
//! - its stderr (at most [`MAX_STDERR`] bytes) goes to the log, where sshd discards it.
//!
//! Nothing here decides for opkssh: the chain runs only after opkssh has denied, and a broken
//! chain only means that its keys do not get in.

use crate::error::FileErrorKind;
use crate::perms::{self, CommandError};
use crate::plugin::{self, Environment, ExecError, Finished, Output};
use opk_core::authorized_keys::{self, FingerprintError, Line};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `PATH` the command gets: sshd's for the commands it runs (openssh-portable
/// `_PATH_STDPATH`).
pub const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";
/// The most stdout read; a longer output passes nothing (as for a plugin).
pub const MAX_STDOUT: usize = plugin::MAX_OUTPUT;
/// The most stderr kept for the log.
pub const MAX_STDERR: usize = plugin::MAX_STDERR;
/// The tokens `verify` can expand: all that sshd expands for an `AuthorizedKeysCommand` but
/// `%C` and `%D`, which sshd does not pass to `verify`.
pub const TOKENS: [char; 6] = ['f', 'h', 'k', 't', 'U', 'u'];
/// How many dropped lines are described one by one; the rest are counted.
pub const MAX_DESCRIBED_DROPS: usize = 10;

/// Why the chained command was not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The line has no words.
    #[error("the command is empty")]
    Empty,
    /// A quote is not closed.
    #[error("unterminated quote in {0:?}")]
    UnterminatedQuote(String),
    /// The program is not an absolute path.
    #[error("the program {0:?} is not an absolute path")]
    NotAbsolute(String),
    /// `%C` or `%D`: sshd knows them, but does not give them to `verify`.
    #[error(
        "token %{0} is not available to a chained command (verify can expand %u %U %f %k %t %h and %%)"
    )]
    UnavailableToken(char),
    /// A `%` followed by anything else.
    #[error("unknown token %{0} (verify can expand %u %U %f %k %t %h and %%)")]
    UnknownToken(char),
    /// A `%` at the end of a word.
    #[error("a lone % ends an argument (write %% for a %)")]
    TrailingPercent,
    /// The program breaks the safety rule, or cannot be inspected.
    #[error("{}: {kind} (it must be owned by root and not writable by group or others: mode 0755 or 0555)", .program.display())]
    Unsafe {
        /// The program.
        program: PathBuf,
        /// What is wrong.
        kind: FileErrorKind,
    },
    /// `%u` has no account (sshd would not have run the command).
    #[error("no account {0:?}")]
    NoSuchUser(String),
    /// The user database could not be read.
    #[error("cannot look up account {user:?}: {reason}")]
    UserLookup {
        /// The account.
        user: String,
        /// Why.
        reason: String,
    },
    /// `%h` is asked for and the home folder's path is not UTF-8.
    #[error("the home folder of {0:?} is not UTF-8")]
    HomeNotUtf8(String),
    /// `%f` is asked for and the offered key does not decode.
    #[error("cannot compute %f: {0}")]
    Fingerprint(FingerprintError),
    /// `verify`'s budget is spent.
    #[error("no time left in verify's budget")]
    NoTimeLeft,
}

/// A chained command line, split into words, its program absolute and its tokens known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCommand {
    text: String,
    words: Vec<String>,
    tokens: Vec<char>,
}

impl ChainCommand {
    /// Splits and checks a command line (not the program's file: [`Self::check_safety`]).
    ///
    /// # Errors
    /// An empty line, an unterminated quote, a program that is not an absolute path, or a
    /// token that cannot be expanded.
    pub fn parse(text: &str) -> Result<Self, ChainError> {
        let words = argv_split(text)?;
        let Some((program, args)) = words.split_first() else {
            return Err(ChainError::Empty);
        };
        if !Path::new(program).is_absolute() {
            return Err(ChainError::NotAbsolute(program.clone()));
        }
        let mut tokens = Vec::new();
        for arg in args {
            percent_expand(arg, |token| {
                if !tokens.contains(&token) {
                    tokens.push(token);
                }
                Some(String::new())
            })?;
        }
        Ok(Self {
            text: text.to_owned(),
            words,
            tokens,
        })
    }

    /// [`Self::parse`], then [`Self::check_safety`]: whether `verify` would run it.
    ///
    /// # Errors
    /// As those two.
    pub fn check(text: &str) -> Result<Self, ChainError> {
        let command = Self::parse(text)?;
        command.check_safety()?;
        Ok(command)
    }

    /// The line as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The program (the first word).
    pub fn program(&self) -> &Path {
        Path::new(self.words.first().map_or("", String::as_str))
    }

    /// Whether an argument uses `%token`.
    pub fn uses(&self, token: char) -> bool {
        self.tokens.contains(&token)
    }

    /// The program must be root's and writable by root only ([`perms::check_command`]).
    ///
    /// # Errors
    /// [`ChainError::Unsafe`] naming what is wrong, or [`ChainError::NotAbsolute`].
    pub fn check_safety(&self) -> Result<(), ChainError> {
        let program = self.program();
        perms::check_command(program).map_err(|error| match error {
            CommandError::NotAbsolute => ChainError::NotAbsolute(program.display().to_string()),
            CommandError::File(error) => ChainError::Unsafe {
                program: program.to_path_buf(),
                kind: error.kind,
            },
        })
    }

    /// The arguments, tokens expanded; the user name alone when the line has none (sshd's
    /// fallback for commands written before tokens existed).
    fn arguments(&self, values: &Values<'_>) -> Result<Vec<String>, ChainError> {
        let args = self.words.get(1..).unwrap_or_default();
        if args.is_empty() {
            return Ok(vec![values.user.to_owned()]);
        }
        args.iter()
            .map(|arg| percent_expand(arg, |token| values.get(token)))
            .collect()
    }
}

/// Splits a command line into words as sshd splits an `AuthorizedKeysCommand`
/// (openssh-portable `misc.c` `argv_split`): words are separated by spaces and tabs; single or
/// double quotes group, and are removed; a backslash escapes a quote, a backslash, or (outside
/// quotes) a space, and is kept before anything else.
///
/// # Errors
/// [`ChainError::UnterminatedQuote`].
pub fn argv_split(text: &str) -> Result<Vec<String>, ChainError> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&next)
                        if matches!(next, '\'' | '"' | '\\')
                            || (quote.is_none() && next == ' ') =>
                    {
                        word.push(next);
                        chars.next();
                    }
                    _ => word.push('\\'),
                },
                ' ' | '\t' if quote.is_none() => break,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                c if Some(c) == quote => quote = None,
                c => word.push(c),
            }
        }
        if quote.is_some() {
            return Err(ChainError::UnterminatedQuote(text.to_owned()));
        }
        words.push(word);
    }
}

/// Expands `%x` tokens as sshd does (openssh-portable `misc.c` `percent_expand`): `%%` is a
/// `%`, a token is replaced by `value(token)`, anything else is an error.
///
/// # Errors
/// A lone `%` at the end, `%C`/`%D`, or a token `value` does not know.
pub fn percent_expand(
    text: &str,
    mut value: impl FnMut(char) -> Option<String>,
) -> Result<String, ChainError> {
    let mut expanded = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            expanded.push(c);
            continue;
        }
        match chars.next() {
            None => return Err(ChainError::TrailingPercent),
            Some('%') => expanded.push('%'),
            Some(token @ ('C' | 'D')) => return Err(ChainError::UnavailableToken(token)),
            Some(token) if TOKENS.contains(&token) => match value(token) {
                Some(text) => expanded.push_str(&text),
                None => return Err(ChainError::UnknownToken(token)),
            },
            Some(token) => return Err(ChainError::UnknownToken(token)),
        }
    }
    Ok(expanded)
}

/// What the tokens stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Values<'a> {
    user: &'a str,
    uid: u32,
    home: String,
    key_type: &'a str,
    key_base64: &'a str,
    fingerprint: Option<String>,
}

impl Values<'_> {
    fn get(&self, token: char) -> Option<String> {
        match token {
            'u' => Some(self.user.to_owned()),
            'U' => Some(self.uid.to_string()),
            'h' => Some(self.home.clone()),
            't' => Some(self.key_type.to_owned()),
            'k' => Some(self.key_base64.to_owned()),
            'f' => self.fingerprint.clone(),
            _ => None,
        }
    }
}

/// The key sshd offered, as `verify` got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedKey<'a> {
    /// `%u`: the account being logged into.
    pub principal: &'a str,
    /// `%t`: the key type.
    pub key_type: &'a str,
    /// `%k`: the key (or certificate), base64.
    pub key_base64: &'a str,
}

/// How a chained command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    /// Not run, and why.
    Refused(ChainError),
    /// It could not be started.
    NotStarted(String),
    /// It passed its deadline and was killed with its process group.
    TimedOut(Duration),
    /// It exited (or was killed by a signal).
    Exited {
        /// `exit status: 0`, `signal: 9 (SIGKILL)`.
        status: String,
        /// Exit status 0.
        success: bool,
        /// stdout was longer than [`MAX_STDOUT`].
        over_cap: bool,
    },
}

/// A line of the command's output that was not passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedLine {
    /// 1-based line number in the output.
    pub number: usize,
    /// Why.
    pub reason: String,
    /// The start of the line (at most 40 characters), for the log.
    pub start: String,
}

/// What the chained command did for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRun {
    /// The command as configured (never expanded: `%k` can hold an ID token).
    pub command: String,
    /// How it ended.
    pub outcome: ChainOutcome,
    /// The `authorized_keys` lines passed on to sshd.
    pub lines: Vec<String>,
    /// The first [`MAX_DESCRIBED_DROPS`] dropped lines.
    pub dropped: Vec<DroppedLine>,
    /// How many lines were dropped in all (comments and blank lines are not counted).
    pub dropped_count: usize,
    /// Its stderr, lossily decoded, at most [`MAX_STDERR`] bytes.
    pub stderr: String,
    /// Its stderr was longer.
    pub stderr_truncated: bool,
    /// From start to end (or to the kill).
    pub elapsed: Duration,
}

impl ChainRun {
    fn set_stderr(&mut self, stderr: &[u8]) {
        self.stderr_truncated = stderr.len() > MAX_STDERR;
        self.stderr =
            String::from_utf8_lossy(stderr.get(..MAX_STDERR).unwrap_or(stderr)).into_owned();
    }

    fn refused(command: &str, error: ChainError) -> Self {
        Self {
            command: command.to_owned(),
            outcome: ChainOutcome::Refused(error),
            lines: Vec::new(),
            dropped: Vec::new(),
            dropped_count: 0,
            stderr: String::new(),
            stderr_truncated: false,
            elapsed: Duration::ZERO,
        }
    }
}

/// `ran in 12 ms: exit status: 0, 1 line passed, 2 dropped`, `refused: …`, `timed out …`:
/// the outcome, for the log's decision line.
impl fmt::Display for ChainRun {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.elapsed.as_millis();
        match &self.outcome {
            ChainOutcome::Refused(error) => write!(formatter, "refused: {error}"),
            ChainOutcome::NotStarted(error) => write!(formatter, "failed to start: {error}"),
            ChainOutcome::TimedOut(timeout) => write!(
                formatter,
                "timed out after {} ms, killed with its process group, nothing passed",
                timeout.as_millis()
            ),
            ChainOutcome::Exited {
                status,
                over_cap: true,
                ..
            } => write!(
                formatter,
                "ran in {ms} ms: {status}, output over {MAX_STDOUT} bytes, nothing passed"
            ),
            ChainOutcome::Exited {
                status,
                success: false,
                ..
            } => write!(
                formatter,
                "ran in {ms} ms: {status}, nothing passed (sshd ignores the output of a command that fails)"
            ),
            ChainOutcome::Exited { status, .. } => {
                let passed = self.lines.len();
                let plural = if passed == 1 { "" } else { "s" };
                write!(
                    formatter,
                    "ran in {ms} ms: {status}, {passed} line{plural} passed, {} dropped",
                    self.dropped_count
                )
            }
        }
    }
}

/// Runs the chained command for `key`, with `env_vars` (from `config.yml`) beside [`PATH`].
/// It is over within `budget`: its deadline leaves room to stop its process group.
pub fn run(
    command: &str,
    key: &OfferedKey<'_>,
    env_vars: &BTreeMap<String, String>,
    budget: Duration,
) -> ChainRun {
    let started = Instant::now();
    let timeout = budget.saturating_sub(plugin::TERMINATE_GRACE);
    let prepared = ChainCommand::check(command).and_then(|chain| {
        let values = values(&chain, key)?;
        let args = chain.arguments(&values)?;
        if timeout.is_zero() {
            return Err(ChainError::NoTimeLeft);
        }
        Ok((chain, args))
    });
    let (chain, args) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return ChainRun::refused(command, error),
    };
    let mut env: BTreeMap<String, String> = env_vars
        .iter()
        .filter(|(name, _)| name.as_str() != "PATH")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    env.insert("PATH".to_owned(), PATH.to_owned());
    let finished = plugin::execute(
        chain.program(),
        &args,
        Environment::Only(&env),
        timeout,
        Output::Separate,
    );
    let mut run = ChainRun {
        elapsed: started.elapsed(),
        ..ChainRun::refused(command, ChainError::NoTimeLeft)
    };
    run.outcome = match finished {
        Err(ExecError::TimedOut { timeout, stderr }) => {
            run.set_stderr(&stderr);
            ChainOutcome::TimedOut(timeout)
        }
        Err(ExecError::Failed(error)) => ChainOutcome::NotStarted(error),
        Ok(Finished {
            status,
            output,
            stderr,
        }) => {
            let over_cap = output.len() > MAX_STDOUT;
            run.stderr_truncated = stderr.len() > MAX_STDERR;
            run.stderr =
                String::from_utf8_lossy(stderr.get(..MAX_STDERR).unwrap_or(&stderr)).into_owned();
            // sshd ignores the output of a command that fails; a longer output than the cap
            // may have lost lines, or be an attack on the reader: neither passes anything.
            if status.success() && !over_cap {
                let filtered = filter(&output);
                run.lines = filtered.lines;
                run.dropped = filtered.dropped;
                run.dropped_count = filtered.dropped_count;
            }
            ChainOutcome::Exited {
                status: status.to_string(),
                success: status.success(),
                over_cap,
            }
        }
    };
    run
}

/// The tokens' values for `key`: the account from the user database (`%U`, `%h`) and the
/// fingerprint (`%f`) only when the command uses them.
fn values<'a>(chain: &ChainCommand, key: &OfferedKey<'a>) -> Result<Values<'a>, ChainError> {
    let user = match opk_os::account::user_by_name(key.principal) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(ChainError::NoSuchUser(key.principal.to_owned())),
        Err(error) => {
            return Err(ChainError::UserLookup {
                user: key.principal.to_owned(),
                reason: error.to_string(),
            });
        }
    };
    let home = if chain.uses('h') {
        user.home
            .to_str()
            .ok_or_else(|| ChainError::HomeNotUtf8(key.principal.to_owned()))?
            .to_owned()
    } else {
        String::new()
    };
    let fingerprint = if chain.uses('f') {
        Some(
            authorized_keys::fingerprint(key.key_type, key.key_base64)
                .map_err(ChainError::Fingerprint)?,
        )
    } else {
        None
    };
    Ok(Values {
        user: key.principal,
        uid: user.uid,
        home,
        key_type: key.key_type,
        key_base64: key.key_base64,
        fingerprint,
    })
}

/// The lines of an output that pass, and those dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filtered {
    /// Well-formed `authorized_keys` lines, without leading and trailing blanks.
    pub lines: Vec<String>,
    /// The first [`MAX_DESCRIBED_DROPS`] lines dropped.
    pub dropped: Vec<DroppedLine>,
    /// How many lines were dropped (comments and blank lines are not counted).
    pub dropped_count: usize,
}

/// Keeps the well-formed `authorized_keys` lines of an output
/// ([`authorized_keys::parse_line`]); comments and blank lines are dropped silently, anything
/// else is dropped and described.
pub fn filter(output: &[u8]) -> Filtered {
    let mut filtered = Filtered::default();
    let mut lines = output.split(|byte| *byte == b'\n').peekable();
    let mut number = 0usize;
    while let Some(line) = lines.next() {
        // The piece after a final newline is not a line.
        if line.is_empty() && lines.peek().is_none() {
            break;
        }
        number = number.saturating_add(1);
        let reason = match std::str::from_utf8(line) {
            Err(_) => "not UTF-8".to_owned(),
            Ok(text) => match authorized_keys::parse_line(text) {
                Ok(Line::Key(key)) => {
                    filtered.lines.push(key.text.to_owned());
                    continue;
                }
                Ok(Line::Blank | Line::Comment) => continue,
                Err(error) => error.to_string(),
            },
        };
        filtered.dropped_count = filtered.dropped_count.saturating_add(1);
        if filtered.dropped.len() < MAX_DESCRIBED_DROPS {
            filtered.dropped.push(DroppedLine {
                number,
                reason,
                start: String::from_utf8_lossy(line).chars().take(40).collect(),
            });
        }
    }
    filtered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_sshd_splits_them() {
        let split = |text: &str| argv_split(text).unwrap();
        assert_eq!(
            split("/usr/bin/eic_run_authorized_keys %u %f"),
            ["/usr/bin/eic_run_authorized_keys", "%u", "%f"]
        );
        assert_eq!(split("  /a \t b  "), ["/a", "b"]);
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split(" \t "), Vec::<String>::new());
        assert_eq!(
            split(r#"/a "b c" 'd "e"' f"g"h"#),
            ["/a", "b c", r#"d "e""#, "fgh"]
        );
        assert_eq!(split(r"/a b\ c"), ["/a", "b c"]);
        assert_eq!(split(r#"/a \"b \'c \\d"#), ["/a", "\"b", "'c", r"\d"]);
        // An unknown escape keeps its backslash; inside quotes `\ ` is not an escape.
        assert_eq!(split(r"/a \n"), ["/a", r"\n"]);
        assert_eq!(split(r#"/a "b\ c""#), ["/a", r"b\ c"]);
        assert_eq!(split(r#"/a "" ''"#), ["/a", "", ""]);
        assert_eq!(
            argv_split("/a 'b"),
            Err(ChainError::UnterminatedQuote("/a 'b".into()))
        );
        assert!(argv_split(r#"/a "b\""#).is_err());
    }

    #[test]
    fn tokens_expand_as_sshd_expands_them() {
        let value = |token: char| match token {
            'u' => Some("alice".to_owned()),
            'f' => Some("SHA256:x".to_owned()),
            _ => None,
        };
        assert_eq!(percent_expand("%u", value).unwrap(), "alice");
        assert_eq!(
            percent_expand("user=%u,fp=%f%%", value).unwrap(),
            "user=alice,fp=SHA256:x%"
        );
        assert_eq!(percent_expand("%%u", value).unwrap(), "%u");
        assert_eq!(percent_expand("", value).unwrap(), "");
        assert_eq!(
            percent_expand("a%", value),
            Err(ChainError::TrailingPercent)
        );
        assert_eq!(
            percent_expand("%x", value),
            Err(ChainError::UnknownToken('x'))
        );
        assert_eq!(
            percent_expand("%C", value),
            Err(ChainError::UnavailableToken('C'))
        );
        assert_eq!(
            percent_expand("%D", value),
            Err(ChainError::UnavailableToken('D'))
        );
    }

    #[test]
    fn command_lines() {
        let chain = ChainCommand::parse("/usr/bin/sss_ssh_authorizedkeys %u").unwrap();
        assert_eq!(
            chain.program(),
            Path::new("/usr/bin/sss_ssh_authorizedkeys")
        );
        assert!(chain.uses('u') && !chain.uses('f'));
        let chain = ChainCommand::parse("/x %u %U %f %k %t %h %%").unwrap();
        for token in TOKENS {
            assert!(chain.uses(token), "{token}");
        }
        let values = Values {
            user: "alice",
            uid: 1001,
            home: "/home/alice".into(),
            key_type: "ssh-ed25519",
            key_base64: "AAAA",
            fingerprint: Some("SHA256:x".into()),
        };
        assert_eq!(
            chain.arguments(&values).unwrap(),
            [
                "alice",
                "1001",
                "SHA256:x",
                "AAAA",
                "ssh-ed25519",
                "/home/alice",
                "%"
            ]
        );
        // The program is not expanded, and a bare program gets the user name (sshd).
        let bare = ChainCommand::parse("/opt/%u/keys").unwrap();
        assert_eq!(bare.arguments(&values).unwrap(), ["alice"]);
        assert_eq!(ChainCommand::parse("  "), Err(ChainError::Empty));
        assert_eq!(
            ChainCommand::parse("keys %u"),
            Err(ChainError::NotAbsolute("keys".into()))
        );
        assert_eq!(
            ChainCommand::parse("/x %u %C"),
            Err(ChainError::UnavailableToken('C'))
        );
        assert_eq!(
            ChainCommand::parse("/x %q"),
            Err(ChainError::UnknownToken('q'))
        );
    }

    #[test]
    fn only_well_formed_lines_pass() {
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMkzVf8SLAY02MgRfPk/PzkTXb+QHsAc1HS8LqQ6kLMs";
        let output = format!(
            "# keys for alice\n\n  {key} alice\nno-pty,from=\"10.0.0.0/8\" {key}\ngarbage here\n\
             {key}\r\nssh-ed25519 AAAA\nbogus-opt {key}\nNOT-UTF8\n{key} last"
        );
        let mut bytes = output.into_bytes();
        let at = bytes.windows(8).position(|w| w == b"NOT-UTF8").unwrap();
        bytes.splice(at..at + 8, [0xff]);
        let filtered = filter(&bytes);
        assert_eq!(
            filtered.lines,
            [
                format!("{key} alice"),
                format!("no-pty,from=\"10.0.0.0/8\" {key}"),
                format!("{key} last"),
            ]
        );
        let numbers: Vec<usize> = filtered.dropped.iter().map(|drop| drop.number).collect();
        assert_eq!(numbers, [5, 6, 7, 8, 9]);
        assert_eq!(filtered.dropped_count, 5);
        assert_eq!(filtered.dropped[0].start, "garbage here");
        assert_eq!(filtered.dropped[4].reason, "not UTF-8");
        assert_eq!(filter(b""), Filtered::default());
        let many = "x\n".repeat(100);
        let filtered = filter(many.as_bytes());
        assert_eq!(filtered.dropped_count, 100);
        assert_eq!(filtered.dropped.len(), MAX_DESCRIBED_DROPS);
    }

    #[test]
    fn outcomes_read_as_one_line() {
        let mut run = ChainRun::refused("/x %u", ChainError::NoTimeLeft);
        assert_eq!(run.to_string(), "refused: no time left in verify's budget");
        run.outcome = ChainOutcome::Exited {
            status: "exit status: 0".into(),
            success: true,
            over_cap: false,
        };
        run.lines = vec!["ssh-ed25519 AAAA".into()];
        run.dropped_count = 2;
        assert_eq!(
            run.to_string(),
            "ran in 0 ms: exit status: 0, 1 line passed, 2 dropped"
        );
        run.outcome = ChainOutcome::TimedOut(Duration::from_millis(9500));
        assert!(
            run.to_string()
                .starts_with("timed out after 9500 ms, killed")
        );
    }
}
