//! sshd's configuration as `install-server` and `uninstall-server` edit it: which file sets
//! `AuthorizedKeysCommand`, where opkssh's two lines go, and how to take them out again.
//!
//! The choice of file follows the Go installer (behaviour.md §5.1 step 9): a drop-in in
//! `sshd_config.d` when `sshd_config` includes that folder, else `sshd_config` itself. Unlike
//! Go, the order of drop-ins is the one sshd uses (byte order of the names, as glob(3) sorts
//! them, not `sort -V`), a drop-in made to outrank another keeps the other's digit count
//! (`09-` before `10-`), lines inside `Match` blocks are left alone, and every line opkssh
//! comments out is preceded by a marker so that uninstalling restores it exactly.

use std::fmt;

/// First line of the block opkssh adds to a file it shares with other settings.
pub(crate) const BLOCK_BEGIN: &str =
    "# opkssh install-server: begin (opkssh uninstall-server removes this block)";
/// Last line of that block.
pub(crate) const BLOCK_END: &str = "# opkssh install-server: end";
/// Put before a line opkssh commented out; `uninstall-server` uncomments the next line.
pub(crate) const DISABLED_MARK: &str =
    "# opkssh install-server commented out the next line; opkssh uninstall-server restores it";
/// The comment at the top of opkssh's own drop-in.
pub(crate) const DROP_IN_HEADER: &str = "# Written by opkssh install-server: sshd asks `opkssh verify` whether an SSH certificate may log in.\n# opkssh uninstall-server removes this file.\n";
/// Go's drop-in names end with this; a file so named is opkssh's.
pub(crate) const DROP_IN_SUFFIX: &str = "opk-ssh.conf";
/// The drop-in written when no other drop-in sets the directives.
pub(crate) const DEFAULT_DROP_IN: &str = "60-opk-ssh.conf";
/// The `Include` that makes sshd read the drop-ins.
const INCLUDE_PATTERNS: [&str; 2] = ["/etc/ssh/sshd_config.d/*.conf", "sshd_config.d/*.conf"];
const COMMAND_KEYWORD: &str = "authorizedkeyscommand";
const USER_KEYWORD: &str = "authorizedkeyscommanduser";
/// Binary paths of the Go installer and of packages, whose unmarked lines count as opkssh's.
const KNOWN_BINARIES: [&str; 2] = ["/usr/local/bin/opkssh", "/usr/bin/opkssh"];

/// The two directives that make sshd ask opkssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `AuthorizedKeysCommand …`.
    pub command: String,
    /// `AuthorizedKeysCommandUser …`.
    pub user: String,
}

impl Directives {
    /// `AuthorizedKeysCommand <binary> verify %u %k %t` and `AuthorizedKeysCommandUser <user>`.
    pub fn new(binary: &str, user: &str) -> Self {
        Self {
            command: format!("AuthorizedKeysCommand {binary} verify %u %k %t"),
            user: format!("AuthorizedKeysCommandUser {user}"),
        }
    }

    /// The whole text of opkssh's own drop-in.
    pub(crate) fn drop_in_text(&self) -> String {
        format!("{DROP_IN_HEADER}{}\n{}\n", self.command, self.user)
    }
}

/// What sshd reads: `sshd_config` and the `*.conf` files of `sshd_config.d`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SshdFiles {
    /// `sshd_config`, if it exists.
    pub(crate) main: Option<String>,
    /// `(file name, text)` of each drop-in, in any order.
    pub(crate) drop_ins: Vec<(String, String)>,
}

/// A file of [`SshdFiles`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    /// `sshd_config`.
    Main,
    /// `sshd_config.d/<name>`.
    DropIn(String),
}

/// One change to sshd's files; `None` removes the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edit {
    pub(crate) target: Target,
    pub(crate) text: Option<String>,
}

/// What to change, and what the administrator should know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SshdPlan {
    pub(crate) edits: Vec<Edit>,
    /// Sentences naming files relative to the ssh folder (`sshd_config`,
    /// `sshd_config.d/x.conf`); the caller may prefix the folder.
    pub(crate) warnings: Vec<String>,
}

/// Why opkssh cannot be configured without `--overwrite-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshdError {
    /// The drop-in that sets `AuthorizedKeysCommand` sorts before any name opkssh could use.
    CannotOutrank {
        /// Its file name.
        active: String,
    },
    /// The drop-in opkssh would write exists and is someone else's.
    NameTaken {
        /// The name opkssh would use.
        name: String,
        /// The drop-in that sets the directives.
        active: String,
    },
    /// sshd runs two different commands today (for different connections), and
    /// `chain_authorized_keys_command` holds one.
    TwoCommands {
        /// The first in sshd's reading order.
        first: Box<Found>,
        /// Another one.
        second: Box<Found>,
    },
}

/// A `Match` line: the block after it applies only to the connections it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `sshd_config` or `sshd_config.d/<name>`.
    pub file: String,
    /// Its line number (from 1).
    pub line: usize,
    /// The line, trimmed (`Match User ec2-user`).
    pub text: String,
}

/// An `AuthorizedKeysCommand` of someone else's that sshd runs today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The command line as the file gives it after the keyword: tokens, `%` tokens and quotes
    /// untouched.
    pub command: String,
    /// The `AuthorizedKeysCommandUser` sshd runs it as (its block's, else the global one).
    pub user: Option<String>,
    /// `sshd_config` or `sshd_config.d/<name>`.
    pub file: String,
    /// Its line number (from 1), in the file as it is without opkssh's changes.
    pub line: usize,
    /// The `Match` block it is in; `None` in the global section.
    pub block: Option<Block>,
}

impl fmt::Display for Found {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} line {}: `AuthorizedKeysCommand {}`",
            self.file, self.line, self.command
        )?;
        if let Some(block) = &self.block {
            write!(
                formatter,
                " (in the block of `{}`, line {})",
                block.text, block.line
            )?;
        }
        Ok(())
    }
}

/// What `install-server` keeps of the `AuthorizedKeysCommand` sshd runs today.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// The command line for `chain_authorized_keys_command`, if sshd runs one that is not
    /// opkssh's.
    pub command: Option<String>,
    /// The lines it comes from (more than one when several places set the same command).
    pub sources: Vec<Found>,
    /// Commands without an `AuthorizedKeysCommandUser`: sshd skips them, so they are not
    /// chained (that would run them for the first time).
    pub skipped: Vec<Found>,
    /// `Match` blocks that set `AuthorizedKeysCommand none`: key commands are off there on
    /// purpose, and opkssh does not apply to those connections either.
    pub off: Vec<Block>,
}

impl fmt::Display for SshdError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CannotOutrank { active } => write!(
                formatter,
                "sshd_config.d/{active} sets AuthorizedKeysCommand and no drop-in name sorts before it, so opkssh cannot take precedence; remove it or pass --overwrite-config to comment its directives out"
            ),
            Self::NameTaken { name, active } => write!(
                formatter,
                "sshd_config.d/{active} sets AuthorizedKeysCommand; opkssh would outrank it with sshd_config.d/{name}, which exists and is not opkssh's; rename it or pass --overwrite-config"
            ),
            Self::TwoCommands { first, second } => write!(
                formatter,
                "{first}, and {second}: opkssh keeps one command in chain_authorized_keys_command; make one command that runs both and set it in both places, or pass --no-chain to replace them without keeping either"
            ),
        }
    }
}

/// A non-comment line split into its lowercased keyword and arguments.
fn directive(line: &str) -> Option<(String, &str)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    Some((keyword.to_ascii_lowercase(), rest))
}

fn is_akc_keyword(keyword: &str) -> bool {
    keyword == COMMAND_KEYWORD || keyword == USER_KEYWORD
}

/// A line as the Go installer (or an earlier opkssh) wrote it without markers.
fn is_opkssh_command_line(line: &str) -> bool {
    match directive(line) {
        Some((keyword, args)) if keyword == COMMAND_KEYWORD => KNOWN_BINARIES
            .iter()
            .any(|binary| args == format!("{binary} verify %u %k %t")),
        _ => false,
    }
}

fn is_user_line(line: &str) -> bool {
    directive(line).is_some_and(|(keyword, _)| keyword == USER_KEYWORD)
}

fn lines_of(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect()
}

fn join(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// Index of the first `Match` line: sshd applies what follows only to some connections.
fn global_end(lines: &[impl AsRef<str>]) -> usize {
    lines
        .iter()
        .position(|line| directive(line.as_ref()).is_some_and(|(keyword, _)| keyword == "match"))
        .unwrap_or(lines.len())
}

/// The text without anything opkssh added: its block removed, the lines it commented out
/// restored, and unmarked opkssh lines (Go's installer) removed.
pub(crate) fn without_opkssh(text: &str) -> String {
    strip(text, true)
}

/// Removes opkssh's block and unmarked lines; with `restore`, also uncomments the lines it
/// commented out.
fn strip(text: &str, restore: bool) -> String {
    let lines = lines_of(text);
    let mut kept: Vec<String> = Vec::with_capacity(lines.len());
    let mut changed = false;
    let mut index = 0;
    while let Some(line) = lines.get(index) {
        if line.trim_end() == BLOCK_BEGIN
            && let Some(length) = lines
                .get(index..)
                .and_then(|rest| rest.iter().position(|end| end.trim_end() == BLOCK_END))
        {
            index += length + 1;
            changed = true;
            continue;
        }
        if restore
            && line.trim_end() == DISABLED_MARK
            && let Some(next) = lines.get(index + 1)
            && let Some(restored) = next.strip_prefix('#')
        {
            kept.push(restored.to_owned());
            index += 2;
            changed = true;
            continue;
        }
        if is_opkssh_command_line(line) {
            changed = true;
            index += 1;
            if lines.get(index).is_some_and(|next| is_user_line(next)) {
                index += 1;
            }
            continue;
        }
        kept.push((*line).to_owned());
        index += 1;
    }
    if changed {
        join(&kept)
    } else {
        text.to_owned()
    }
}

/// Comments out (with markers) the active global directives in `lines[..limit]`.
fn disable_directives(lines: Vec<String>, limit: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len() + 4);
    for (index, line) in lines.into_iter().enumerate() {
        let active =
            index < limit && directive(&line).is_some_and(|(keyword, _)| is_akc_keyword(&keyword));
        if active {
            out.push(DISABLED_MARK.to_owned());
            out.push(format!("#{line}"));
        } else {
            out.push(line);
        }
    }
    out
}

/// The text of a shared file with opkssh's directives in force: other global directives
/// commented out, opkssh's block at the end of the global section (before any `Match`).
pub(crate) fn with_opkssh(text: &str, directives: &Directives) -> String {
    let base = without_opkssh(text);
    let lines: Vec<String> = lines_of(&base).into_iter().map(str::to_owned).collect();
    let end = global_end(&lines);
    let mut lines = disable_directives(lines, end);
    let end = global_end(&lines);
    let block = [
        BLOCK_BEGIN,
        directives.command.as_str(),
        directives.user.as_str(),
        BLOCK_END,
    ]
    .map(str::to_owned);
    lines.splice(end..end, block);
    join(&lines)
}

/// Whether a file holds nothing but comments and the two directives (a drop-in opkssh or the
/// Go installer wrote).
fn is_pure(text: &str) -> bool {
    lines_of(text).iter().all(|line| match directive(line) {
        None => true,
        Some((keyword, _)) => is_akc_keyword(&keyword),
    })
}

/// Active `AuthorizedKeysCommand[User]` lines in the global section (line, 0-based index).
fn global_directives(text: &str) -> Vec<(usize, String)> {
    let lines = lines_of(text);
    let end = global_end(&lines);
    lines
        .iter()
        .take(end)
        .enumerate()
        .filter(|(_, line)| directive(line).is_some_and(|(keyword, _)| is_akc_keyword(&keyword)))
        .map(|(index, line)| (index, line.trim().to_owned()))
        .collect()
}

/// Whether every active global directive is opkssh's (in its block or an unmarked Go line).
fn directives_are_opkssh(text: &str) -> bool {
    global_directives(&strip(text, false)).is_empty()
}

fn match_block_directives(text: &str) -> bool {
    let lines = lines_of(text);
    let end = global_end(&lines);
    lines
        .iter()
        .skip(end)
        .any(|line| directive(line).is_some_and(|(keyword, _)| is_akc_keyword(&keyword)))
}

/// Where `Include …sshd_config.d/*.conf` is in the global section of `sshd_config`.
fn include_line(text: &str) -> Option<usize> {
    let lines = lines_of(text);
    let end = global_end(&lines);
    lines
        .iter()
        .take(end)
        .position(|line| match directive(line) {
            Some((keyword, args)) if keyword == "include" => args
                .split_whitespace()
                .any(|pattern| INCLUDE_PATTERNS.contains(&pattern)),
            _ => false,
        })
}

/// A drop-in name that sorts before `active` (sshd keeps the first value it reads).
fn outranking_name(active: &str) -> Option<String> {
    let digits: String = active.chars().take_while(char::is_ascii_digit).collect();
    let candidate = if digits.is_empty() {
        format!("00-{DROP_IN_SUFFIX}")
    } else {
        let number: u64 = digits.parse().ok()?;
        let lower = number.checked_sub(1)?;
        format!("{lower:0width$}-{DROP_IN_SUFFIX}", width = digits.len())
    };
    (candidate.as_bytes() < active.as_bytes()).then_some(candidate)
}

fn sorted_drop_ins(files: &SshdFiles) -> Vec<&(String, String)> {
    let mut drop_ins: Vec<&(String, String)> = files.drop_ins.iter().collect();
    drop_ins.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    drop_ins
}

fn current(files: &SshdFiles, target: &Target) -> Option<String> {
    match target {
        Target::Main => files.main.clone(),
        Target::DropIn(name) => files
            .drop_ins
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, text)| text.clone()),
    }
}

impl SshdPlan {
    /// Adds an edit unless it changes nothing.
    fn edit(&mut self, files: &SshdFiles, target: Target, text: Option<String>) {
        if current(files, &target) != text {
            self.edits.push(Edit { target, text });
        }
    }
}

/// How to make sshd run opkssh (behaviour.md §5.1 step 9, with the differences in the module
/// documentation).
///
/// With `chain`, the `Match` blocks of the files sshd reads are made to let opkssh apply
/// ([`scope_match_blocks`]); without it, they are left alone with a warning.
pub(crate) fn plan_install(
    files: &SshdFiles,
    directives: &Directives,
    overwrite: bool,
    chain: bool,
) -> Result<SshdPlan, SshdError> {
    let mut plan = plan_global(files, directives, overwrite, chain)?;
    scope_match_blocks(files, directives, &mut plan, chain);
    Ok(plan)
}

/// [`plan_install`] but for the `Match` blocks.
fn plan_global(
    files: &SshdFiles,
    directives: &Directives,
    overwrite: bool,
    chain: bool,
) -> Result<SshdPlan, SshdError> {
    let mut plan = SshdPlan::default();
    let include = files
        .main
        .as_deref()
        .map(|main| include_line(&without_opkssh(main)));
    if let Some(None) = include {
        // sshd does not read the drop-ins: the directives go into sshd_config itself.
        let main = files.main.as_deref().unwrap_or_default();
        let text = with_opkssh(main, directives);
        for (index, line) in global_directives(&without_opkssh(main)) {
            plan.warnings.push(format!(
                "sshd_config line {}: `{line}` is commented out (sshd_config has no Include of sshd_config.d)",
                index + 1
            ));
        }
        plan.edit(files, Target::Main, Some(text));
        warn_match_blocks(&mut plan, "sshd_config", main, chain);
        return Ok(plan);
    }

    // Drop-in mode. Directives in sshd_config before its Include win over every drop-in.
    if let Some(main) = files.main.as_deref() {
        let base = without_opkssh(main);
        let include_index = include_line(&base).unwrap_or_default();
        let early: Vec<(usize, String)> = global_directives(&base)
            .into_iter()
            .filter(|(index, _)| *index < include_index)
            .collect();
        for (index, line) in &early {
            plan.warnings.push(format!(
                "sshd_config line {}: `{line}` comes before the Include of sshd_config.d and would win; it is commented out",
                index + 1
            ));
        }
        let text = if early.is_empty() {
            base
        } else {
            let lines = lines_of(&base).into_iter().map(str::to_owned).collect();
            join(&disable_directives(lines, include_index))
        };
        plan.edit(files, Target::Main, Some(text));
        warn_match_blocks(&mut plan, "sshd_config", main, chain);
    }

    let drop_ins = sorted_drop_ins(files);
    for (name, text) in &drop_ins {
        warn_match_blocks(&mut plan, &format!("sshd_config.d/{name}"), text, chain);
    }
    let active = drop_ins
        .iter()
        .find(|(_, text)| !global_directives(text).is_empty());
    match active {
        None => {
            plan.edit(
                files,
                Target::DropIn(DEFAULT_DROP_IN.to_owned()),
                Some(directives.drop_in_text()),
            );
        }
        Some((name, text)) if name.ends_with(DROP_IN_SUFFIX) && is_pure(text) => {
            plan.edit(
                files,
                Target::DropIn(name.clone()),
                Some(directives.drop_in_text()),
            );
        }
        Some((name, text)) if name.ends_with(DROP_IN_SUFFIX) || directives_are_opkssh(text) => {
            plan.edit(
                files,
                Target::DropIn(name.clone()),
                Some(with_opkssh(text, directives)),
            );
        }
        Some((name, text)) if overwrite => {
            for (index, line) in global_directives(text) {
                plan.warnings.push(format!(
                    "sshd_config.d/{name} line {}: `{line}` is commented out (--overwrite-config)",
                    index + 1
                ));
            }
            plan.edit(
                files,
                Target::DropIn(name.clone()),
                Some(with_opkssh(text, directives)),
            );
        }
        Some((name, text)) => {
            let Some(new_name) = outranking_name(name) else {
                return Err(SshdError::CannotOutrank {
                    active: name.clone(),
                });
            };
            if let Some(existing) = current(files, &Target::DropIn(new_name.clone()))
                && !is_pure(&existing)
            {
                return Err(SshdError::NameTaken {
                    name: new_name,
                    active: name.clone(),
                });
            }
            let theirs = global_directives(text)
                .into_iter()
                .map(|(_, line)| format!("`{line}`"))
                .collect::<Vec<_>>()
                .join(", ");
            plan.warnings.push(format!(
                "sshd_config.d/{name} sets {theirs}; sshd_config.d/{new_name} comes first and takes precedence (--overwrite-config comments those lines out instead)"
            ));
            plan.edit(
                files,
                Target::DropIn(new_name),
                Some(directives.drop_in_text()),
            );
        }
    }
    Ok(plan)
}

fn warn_match_blocks(plan: &mut SshdPlan, file: &str, text: &str, chain: bool) {
    // Chaining comments these lines out instead ([`scope_match_blocks`]).
    if !chain && match_block_directives(text) {
        plan.warnings.push(format!(
            "{file} sets AuthorizedKeysCommand inside a Match block; for the connections it matches, that command is used instead of opkssh"
        ));
    }
}

/// Whether a command line runs opkssh's verify: never chained into itself (a line opkssh
/// wrote under another binary path, or one an administrator wrote).
fn is_opkssh_command(args: &str, directives: &Directives) -> bool {
    let ours = directives
        .command
        .strip_prefix("AuthorizedKeysCommand ")
        .unwrap_or(&directives.command);
    let mut tokens = args.split_whitespace();
    let program = tokens.next().unwrap_or_default();
    args == ours
        || ((program == "opkssh" || program.ends_with("/opkssh"))
            && tokens.next() == Some("verify"))
}

/// A directive line sshd reads: where, and the `Match` block it is in.
struct ReadLine {
    file: String,
    number: usize,
    keyword: String,
    args: String,
    block: Option<Block>,
}

/// The directive lines of one file, each with its `Match` block (which ends with the file:
/// sshd restores the state it had before an `Include` once the included file is read).
fn directive_lines(file: &str, text: &str) -> Vec<ReadLine> {
    let mut block: Option<Block> = None;
    let mut out = Vec::new();
    for (index, line) in lines_of(text).into_iter().enumerate() {
        let Some((keyword, args)) = directive(line) else {
            continue;
        };
        if keyword == "match" {
            block = Some(Block {
                file: file.to_owned(),
                line: index + 1,
                text: line.trim().to_owned(),
            });
        }
        out.push(ReadLine {
            file: file.to_owned(),
            number: index + 1,
            keyword,
            args: args.to_owned(),
            block: block.clone(),
        });
    }
    out
}

/// Whether sshd reads the drop-ins: `sshd_config` includes them (or is missing, in which case
/// the drop-in opkssh writes is all there is).
fn reads_drop_ins(files: &SshdFiles) -> bool {
    files
        .main
        .as_deref()
        .is_none_or(|main| include_line(&without_opkssh(main)).is_some())
}

/// Every directive line sshd reads, in its order and as the files are without opkssh's
/// changes: `sshd_config` with the drop-ins (by name, as glob sorts them) in place of its
/// `Include`. opkssh's own drop-ins are left out.
fn read_order(files: &SshdFiles) -> Vec<ReadLine> {
    let drop_ins: Vec<ReadLine> = if reads_drop_ins(files) {
        sorted_drop_ins(files)
            .into_iter()
            .filter(|(name, text)| !(name.ends_with(DROP_IN_SUFFIX) && is_pure(text)))
            .flat_map(|(name, text)| {
                directive_lines(&format!("sshd_config.d/{name}"), &without_opkssh(text))
            })
            .collect()
    } else {
        Vec::new()
    };
    let Some(main) = files.main.as_deref() else {
        return drop_ins;
    };
    let base = without_opkssh(main);
    let mut lines = directive_lines("sshd_config", &base);
    if let Some(include) = include_line(&base)
        && let Some(at) = lines.iter().position(|line| line.number == include + 1)
    {
        lines.splice(at + 1..at + 1, drop_ins);
    }
    lines
}

/// The `AuthorizedKeysCommand` sshd runs today that is not opkssh's, read from the files as
/// they are without opkssh's changes (so a second run finds what the first one replaced).
///
/// sshd keeps the first value it reads: the first global `AuthorizedKeysCommand` is the one in
/// force (with the first global `AuthorizedKeysCommandUser`), and for the connections a
/// `Match` block matches, the block's own, with the block's user if it sets one.
///
/// # Errors
/// [`SshdError::TwoCommands`] when sshd runs two different commands (config.yml chains one).
pub(crate) fn find_chain(files: &SshdFiles, directives: &Directives) -> Result<Chain, SshdError> {
    let lines = read_order(files);
    let user_of = |block: Option<&Block>| {
        lines
            .iter()
            .find(|line| line.keyword == USER_KEYWORD && line.block.as_ref() == block)
            .map(|line| line.args.clone())
    };
    let global_user = user_of(None);
    let mut chain = Chain::default();
    let mut seen: Vec<Option<&Block>> = Vec::new();
    for line in lines.iter().filter(|line| line.keyword == COMMAND_KEYWORD) {
        // Later values in the same section were never in force.
        if seen.contains(&line.block.as_ref()) {
            continue;
        }
        seen.push(line.block.as_ref());
        if line.args == "none" {
            if let Some(block) = &line.block {
                chain.off.push(block.clone());
            }
            continue;
        }
        if is_opkssh_command(&line.args, directives) {
            continue;
        }
        let user = match &line.block {
            None => global_user.clone(),
            Some(block) => user_of(Some(block)).or_else(|| global_user.clone()),
        };
        let found = Found {
            command: line.args.clone(),
            file: line.file.clone(),
            line: line.number,
            block: line.block.clone(),
            user,
        };
        if found.user.is_none() {
            chain.skipped.push(found);
            continue;
        }
        if let Some(first) = chain.sources.first()
            && first.command != found.command
        {
            return Err(SshdError::TwoCommands {
                first: Box::new(first.clone()),
                second: Box::new(found),
            });
        }
        chain.sources.push(found);
    }
    chain.command = chain.sources.first().map(|found| found.command.clone());
    Ok(chain)
}

/// The `(first, end)` line ranges of the `Match` blocks of a file.
fn match_blocks(lines: &[impl AsRef<str>]) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| directive(line.as_ref()).is_some_and(|(keyword, _)| keyword == "match"))
        .map(|(index, _)| index)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(at, start)| (*start, starts.get(at + 1).copied().unwrap_or(lines.len())))
        .collect()
}

/// The text with the lines opkssh commented out inside `Match` blocks restored.
fn restore_match_directives(text: &str) -> String {
    let lines = lines_of(text);
    let end = global_end(&lines);
    let mut kept: Vec<String> = Vec::with_capacity(lines.len());
    let mut changed = false;
    let mut index = 0;
    while let Some(line) = lines.get(index) {
        if index >= end
            && line.trim_end() == DISABLED_MARK
            && let Some(next) = lines.get(index + 1)
            && let Some(restored) = next.strip_prefix('#')
        {
            kept.push(restored.to_owned());
            index += 2;
            changed = true;
            continue;
        }
        kept.push((*line).to_owned());
        index += 1;
    }
    if changed {
        join(&kept)
    } else {
        text.to_owned()
    }
}

/// The text with the `AuthorizedKeysCommand[User]` lines of its `Match` blocks commented out
/// (with markers), so that opkssh's global lines apply to those connections too. A block that
/// sets `AuthorizedKeysCommand none`, or runs opkssh already, is left alone.
fn disable_match_directives(text: &str, directives: &Directives) -> String {
    let lines: Vec<String> = lines_of(text).into_iter().map(str::to_owned).collect();
    let mut disable = vec![false; lines.len()];
    for (start, end) in match_blocks(&lines) {
        let block = lines.get(start..end).unwrap_or_default();
        let alone = block.iter().any(|line| {
            directive(line).is_some_and(|(keyword, args)| {
                keyword == COMMAND_KEYWORD
                    && (args == "none" || is_opkssh_command(args, directives))
            })
        });
        if alone {
            continue;
        }
        for (offset, line) in block.iter().enumerate() {
            if directive(line).is_some_and(|(keyword, _)| is_akc_keyword(&keyword))
                && let Some(flag) = disable.get_mut(start + offset)
            {
                *flag = true;
            }
        }
    }
    if !disable.contains(&true) {
        return text.to_owned();
    }
    let mut out = Vec::with_capacity(lines.len() + 4);
    for (line, disabled) in lines.into_iter().zip(disable) {
        if disabled {
            out.push(DISABLED_MARK.to_owned());
            out.push(format!("#{line}"));
        } else {
            out.push(line);
        }
    }
    join(&out)
}

/// Sets the `Match` blocks of every file sshd reads as `chain` wants them, on top of the
/// plan's other edits: with it, their `AuthorizedKeysCommand[User]` lines commented out
/// ([`disable_match_directives`]); without it, as they were before opkssh.
fn scope_match_blocks(
    files: &SshdFiles,
    directives: &Directives,
    plan: &mut SshdPlan,
    chain: bool,
) {
    let mut targets = Vec::new();
    if files.main.is_some() {
        targets.push(Target::Main);
    }
    if reads_drop_ins(files) {
        for (name, _) in sorted_drop_ins(files) {
            targets.push(Target::DropIn(name.clone()));
        }
    }
    for target in targets {
        let planned = plan
            .edits
            .iter()
            .find(|edit| edit.target == target)
            .map(|edit| edit.text.clone());
        let Some(text) = planned.unwrap_or_else(|| current(files, &target)) else {
            continue;
        };
        let mut text = restore_match_directives(&text);
        if chain {
            text = disable_match_directives(&text, directives);
        }
        plan.edits.retain(|edit| edit.target != target);
        plan.edit(files, target, Some(text));
    }
    plan.edits.sort_by(|a, b| a.target.cmp(&b.target));
}

/// How to take opkssh out of sshd's files: its drop-ins removed, its blocks and unmarked lines
/// removed, the lines it commented out restored.
pub(crate) fn plan_uninstall(files: &SshdFiles) -> SshdPlan {
    let mut plan = SshdPlan::default();
    if let Some(main) = &files.main {
        plan.edit(files, Target::Main, Some(without_opkssh(main)));
    }
    for (name, text) in sorted_drop_ins(files) {
        let target = Target::DropIn(name.clone());
        if name.ends_with(DROP_IN_SUFFIX) && is_pure(text) {
            plan.edit(files, target, None);
        } else {
            plan.edit(files, target, Some(without_opkssh(text)));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    const DEBIAN_MAIN: &str = "# This is the sshd server system-wide configuration file.\n\nInclude /etc/ssh/sshd_config.d/*.conf\n\nKbdInteractiveAuthentication no\nUsePAM yes\n#AuthorizedKeysCommand none\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n";

    fn ours() -> Directives {
        Directives::new("/usr/local/bin/opkssh", "opksshuser")
    }

    fn files(main: Option<&str>, drop_ins: &[(&str, &str)]) -> SshdFiles {
        SshdFiles {
            main: main.map(str::to_owned),
            drop_ins: drop_ins
                .iter()
                .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
                .collect(),
        }
    }

    /// Applies a plan to the files, as the installer would.
    fn applied(mut state: SshdFiles, plan: &SshdPlan) -> SshdFiles {
        for edit in &plan.edits {
            match (&edit.target, &edit.text) {
                (Target::Main, text) => state.main.clone_from(text),
                (Target::DropIn(name), None) => state.drop_ins.retain(|(n, _)| n != name),
                (Target::DropIn(name), Some(text)) => {
                    state.drop_ins.retain(|(n, _)| n != name);
                    state.drop_ins.push((name.clone(), text.clone()));
                }
            }
        }
        state.drop_ins.sort();
        state
    }

    fn sorted(mut state: SshdFiles) -> SshdFiles {
        state.drop_ins.sort();
        state
    }

    /// Install (without chaining, and with), check idempotence and that switching between the
    /// two comes back to the same files, uninstall, check the original is back. Returns the
    /// files installed without chaining.
    fn round_trip(state: &SshdFiles, overwrite: bool) -> SshdFiles {
        let install = |files: &SshdFiles, chain| {
            applied(
                files.clone(),
                &plan_install(files, &ours(), overwrite, chain).unwrap(),
            )
        };
        let mut unchained = None;
        for chain in [false, true] {
            let installed = install(state, chain);
            let again = plan_install(&installed, &ours(), overwrite, chain).unwrap();
            assert!(again.edits.is_empty(), "second install changes {again:?}");
            let switched = install(&installed, !chain);
            assert_eq!(
                install(&switched, chain),
                installed,
                "switching back differs"
            );
            for files in [&installed, &switched] {
                let removed = applied(files.clone(), &plan_uninstall(files));
                assert_eq!(removed, sorted(state.clone()), "uninstall does not restore");
                assert!(plan_uninstall(&removed).edits.is_empty());
            }
            unchained.get_or_insert(installed);
        }
        unchained.unwrap()
    }

    #[test]
    fn debian_default_gets_the_go_drop_in() {
        let state = files(Some(DEBIAN_MAIN), &[]);
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert_eq!(
            plan.edits,
            vec![Edit {
                target: Target::DropIn("60-opk-ssh.conf".into()),
                text: Some(format!(
                    "{DROP_IN_HEADER}AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n"
                )),
            }]
        );
        assert!(plan.warnings.is_empty());
        round_trip(&state, false);
    }

    #[test]
    fn no_include_edits_sshd_config_before_match() {
        let main = "Port 22\nAuthorizedKeysCommand /opt/other %u\nAuthorizedKeysCommandUser nobody\nMatch User git\n  AuthorizedKeysCommand /opt/git-keys %u\n";
        let state = files(Some(main), &[("60-opk-ssh.conf", "ignored by sshd\n")]);
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert_eq!(plan.edits.len(), 1);
        assert_eq!(plan.edits[0].target, Target::Main);
        assert_eq!(
            plan.edits[0].text.as_deref().unwrap(),
            format!(
                "Port 22\n{DISABLED_MARK}\n#AuthorizedKeysCommand /opt/other %u\n{DISABLED_MARK}\n#AuthorizedKeysCommandUser nobody\n{BLOCK_BEGIN}\nAuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n{BLOCK_END}\nMatch User git\n  AuthorizedKeysCommand /opt/git-keys %u\n"
            )
        );
        assert_eq!(plan.warnings.len(), 3, "{:?}", plan.warnings);
        assert!(plan.warnings[2].contains("Match block"));
        round_trip(&state, false);
    }

    #[test]
    fn no_include_without_trailing_newline() {
        // The only byte uninstalling does not restore is a missing final line feed.
        let state = files(Some("Port 22"), &[]);
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        let installed = applied(state, &plan);
        assert!(
            installed
                .main
                .as_deref()
                .unwrap()
                .starts_with("Port 22\n# opkssh")
        );
        assert!(
            plan_install(&installed, &ours(), false, false)
                .unwrap()
                .edits
                .is_empty()
        );
        let removed = applied(installed.clone(), &plan_uninstall(&installed));
        assert_eq!(removed.main.as_deref(), Some("Port 22\n"));
    }

    #[test]
    fn missing_sshd_config_uses_a_drop_in() {
        let state = files(None, &[]);
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert_eq!(plan.edits[0].target, Target::DropIn(DEFAULT_DROP_IN.into()));
        round_trip(&state, false);
    }

    #[test]
    fn another_drop_in_is_outranked_with_a_warning() {
        let theirs = "AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\nAuthorizedKeysCommandUser nobody\n";
        let state = files(
            Some(DEBIAN_MAIN),
            &[("50-sss.conf", theirs), ("10-x.conf", "Port 2\n")],
        );
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert_eq!(plan.edits.len(), 1);
        assert_eq!(
            plan.edits[0].target,
            Target::DropIn("49-opk-ssh.conf".into())
        );
        assert!(plan.warnings[0].contains("sshd_config.d/50-sss.conf sets `AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u`"), "{:?}", plan.warnings);
        round_trip(&state, false);
    }

    #[test]
    fn outranking_keeps_the_digit_count_and_refuses_zero() {
        assert_eq!(
            outranking_name("10-a.conf").as_deref(),
            Some("09-opk-ssh.conf")
        );
        assert_eq!(
            outranking_name("100-a.conf").as_deref(),
            Some("099-opk-ssh.conf")
        );
        assert_eq!(
            outranking_name("custom.conf").as_deref(),
            Some("00-opk-ssh.conf")
        );
        assert_eq!(outranking_name("00-a.conf"), None);
        assert_eq!(outranking_name("0-a.conf"), None);
        assert_eq!(outranking_name("-a.conf"), None);
        let state = files(
            Some(DEBIAN_MAIN),
            &[("00-first.conf", "AuthorizedKeysCommand /bin/x\n")],
        );
        assert_eq!(
            plan_install(&state, &ours(), false, false).unwrap_err(),
            SshdError::CannotOutrank {
                active: "00-first.conf".into()
            }
        );
    }

    #[test]
    fn a_foreign_file_in_the_way_is_refused() {
        let state = files(
            Some(DEBIAN_MAIN),
            &[
                ("50-sss.conf", "AuthorizedKeysCommand /bin/x\n"),
                ("49-opk-ssh.conf", "PasswordAuthentication no\n"),
            ],
        );
        assert!(matches!(
            plan_install(&state, &ours(), false, false),
            Err(SshdError::NameTaken { .. })
        ));
    }

    #[test]
    fn overwrite_comments_out_the_active_drop_in() {
        let theirs = "# site\nAuthorizedKeysCommand /bin/x %u\nAuthorizedKeysCommandUser nobody\nPort 2222\n";
        let state = files(Some(DEBIAN_MAIN), &[("00-first.conf", theirs)]);
        let plan = plan_install(&state, &ours(), true, false).unwrap();
        assert_eq!(plan.edits.len(), 1);
        let text = plan.edits[0].text.clone().unwrap();
        assert!(text.contains(&format!(
            "{DISABLED_MARK}\n#AuthorizedKeysCommand /bin/x %u\n"
        )));
        assert!(text.ends_with(&format!("Port 2222\n{BLOCK_BEGIN}\nAuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n{BLOCK_END}\n")));
        round_trip(&state, true);
        // Once done, a run without the flag sees opkssh's own lines and changes nothing.
        let installed = applied(state, &plan);
        assert!(
            plan_install(&installed, &ours(), false, false)
                .unwrap()
                .edits
                .is_empty()
        );
    }

    #[test]
    fn directives_before_the_include_are_commented_out() {
        let main = "AuthorizedKeysCommand /bin/early %u\nInclude /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysCommandUser late\n";
        let state = files(Some(main), &[]);
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert_eq!(plan.edits.len(), 2);
        assert_eq!(
            plan.edits[0].text.as_deref().unwrap(),
            format!(
                "{DISABLED_MARK}\n#AuthorizedKeysCommand /bin/early %u\nInclude /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysCommandUser late\n"
            )
        );
        round_trip(&state, false);
    }

    #[test]
    fn go_installed_files_are_updated_and_removed() {
        // What the Go installer leaves: its drop-in, or lines appended to sshd_config.
        let go_drop_in = "AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n";
        let state = files(Some(DEBIAN_MAIN), &[("60-opk-ssh.conf", go_drop_in)]);
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert_eq!(
            plan.edits[0].target,
            Target::DropIn("60-opk-ssh.conf".into())
        );
        assert_eq!(
            plan_uninstall(&state).edits,
            vec![Edit {
                target: Target::DropIn("60-opk-ssh.conf".into()),
                text: None
            }]
        );
        let go_main = "Port 22\n#AuthorizedKeysCommand /old %u\nAuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n";
        let state = files(Some(go_main), &[]);
        let package = Directives::new("/usr/bin/opkssh", "opksshuser");
        let plan = plan_install(&state, &package, false, false).unwrap();
        let text = plan.edits[0].text.clone().unwrap();
        assert_eq!(text.matches("AuthorizedKeysCommand ").count(), 2, "{text}");
        assert!(text.contains("\nAuthorizedKeysCommand /usr/bin/opkssh verify %u %k %t\n"));
        assert_eq!(
            plan_uninstall(&state).edits[0].text.as_deref(),
            Some("Port 22\n#AuthorizedKeysCommand /old %u\n")
        );
    }

    #[test]
    fn changing_the_binary_rewrites_in_place() {
        let state = files(Some(DEBIAN_MAIN), &[]);
        let installed = applied(
            state,
            &plan_install(&files(Some(DEBIAN_MAIN), &[]), &ours(), false, false).unwrap(),
        );
        let package = Directives::new("/usr/bin/opkssh", "opksshuser");
        let plan = plan_install(&installed, &package, false, false).unwrap();
        assert_eq!(plan.edits.len(), 1);
        assert_eq!(
            plan.edits[0].target,
            Target::DropIn("60-opk-ssh.conf".into())
        );
        assert!(
            plan.edits[0]
                .text
                .as_deref()
                .unwrap()
                .contains("/usr/bin/opkssh verify")
        );
    }

    #[test]
    fn keywords_are_case_insensitive_and_take_equals() {
        assert_eq!(
            directive("  authorizedKeysCommand=/bin/x %u"),
            Some(("authorizedkeyscommand".into(), "/bin/x %u"))
        );
        assert_eq!(directive("# AuthorizedKeysCommand x"), None);
        assert_eq!(include_line("include sshd_config.d/*.conf\n"), Some(0));
        assert_eq!(include_line("Include /etc/ssh/other/*.conf\n"), None);
        let state = files(Some("authorizedkeyscommand /bin/x\n"), &[]);
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert!(
            plan.edits[0]
                .text
                .as_deref()
                .unwrap()
                .starts_with(&format!("{DISABLED_MARK}\n#authorizedkeyscommand /bin/x\n"))
        );
    }

    const EIC_COMMAND: &str = "/opt/aws/bin/eic_run_authorized_keys %u %f";
    const EIC_LINES: &str = "AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f\nAuthorizedKeysCommandUser ec2-instance-connect\n";

    fn chain_of(state: &SshdFiles) -> Chain {
        find_chain(state, &ours()).unwrap()
    }

    #[test]
    fn the_command_in_force_is_found() {
        // Global, in a drop-in: the one sshd reads first wins, with the first global user.
        let state = files(
            Some(DEBIAN_MAIN),
            &[
                (
                    "70-late.conf",
                    "AuthorizedKeysCommand /usr/bin/never-used %u\n",
                ),
                ("60-ec2-instance-connect.conf", EIC_LINES),
            ],
        );
        let chain = chain_of(&state);
        assert_eq!(chain.command.as_deref(), Some(EIC_COMMAND));
        assert_eq!(
            chain.sources,
            vec![Found {
                command: EIC_COMMAND.into(),
                user: Some("ec2-instance-connect".into()),
                file: "sshd_config.d/60-ec2-instance-connect.conf".into(),
                line: 1,
                block: None,
            }]
        );
        // sshd_config lines before the Include come first; without the Include, the drop-ins
        // are not read at all.
        let main = format!("AuthorizedKeysCommandUser early\n{DEBIAN_MAIN}");
        let state = files(Some(&main), &[("60-ec2-instance-connect.conf", EIC_LINES)]);
        assert_eq!(chain_of(&state).sources[0].user.as_deref(), Some("early"));
        let state = files(
            Some("Port 22\n"),
            &[("60-ec2-instance-connect.conf", EIC_LINES)],
        );
        assert_eq!(chain_of(&state), Chain::default());
        // `none`, opkssh's own lines (any binary path) and a second run: nothing new.
        let state = files(Some("AuthorizedKeysCommand none\n"), &[]);
        assert_eq!(chain_of(&state).command, None);
        let state = files(
            Some(
                "AuthorizedKeysCommand /opt/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n",
            ),
            &[],
        );
        assert_eq!(chain_of(&state).command, None);
        let state = files(Some(&format!("Port 22\n{EIC_LINES}")), &[]);
        let installed = round_trip(&state, false);
        assert_eq!(chain_of(&installed), chain_of(&state));
    }

    #[test]
    fn a_command_without_a_user_is_not_chained() {
        let state = files(Some("AuthorizedKeysCommand /usr/bin/keys %u\n"), &[]);
        let chain = chain_of(&state);
        assert_eq!(chain.command, None);
        assert_eq!(chain.skipped.len(), 1);
    }

    #[test]
    fn match_blocks_are_scoped_and_restored() {
        let main = format!(
            "Port 22\nAuthorizedKeysCommandUser nobody\nMatch User ec2-user\n{EIC_LINES}Match User root\n    AuthorizedKeysCommand none\n    AuthorizedKeysCommandUser nobody\nMatch Group git\n    AuthorizedKeysCommandUser git\n"
        );
        let state = files(Some(&main), &[]);
        let chain = chain_of(&state);
        assert_eq!(chain.command.as_deref(), Some(EIC_COMMAND));
        let source = &chain.sources[0];
        assert_eq!(
            (source.line, source.user.as_deref()),
            (4, Some("ec2-instance-connect"))
        );
        assert_eq!(
            source.block.as_ref().map(|block| block.text.as_str()),
            Some("Match User ec2-user")
        );
        assert_eq!(chain.off.len(), 1);

        let plan = plan_install(&state, &ours(), false, true).unwrap();
        assert_eq!(
            plan.edits[0].text.as_deref().unwrap(),
            format!(
                "Port 22\n{DISABLED_MARK}\n#AuthorizedKeysCommandUser nobody\n{BLOCK_BEGIN}\nAuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t\nAuthorizedKeysCommandUser opksshuser\n{BLOCK_END}\nMatch User ec2-user\n{DISABLED_MARK}\n#AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f\n{DISABLED_MARK}\n#AuthorizedKeysCommandUser ec2-instance-connect\nMatch User root\n    AuthorizedKeysCommand none\n    AuthorizedKeysCommandUser nobody\nMatch Group git\n{DISABLED_MARK}\n#    AuthorizedKeysCommandUser git\n"
            )
        );
        // Without chaining the blocks stay as they are, with the old warning.
        let plan = plan_install(&state, &ours(), false, false).unwrap();
        assert!(plan.edits[0].text.as_deref().unwrap().ends_with(&format!(
            "Match User ec2-user\n{EIC_LINES}Match User root\n    AuthorizedKeysCommand none\n    AuthorizedKeysCommandUser nobody\nMatch Group git\n    AuthorizedKeysCommandUser git\n"
        )));
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("inside a Match block"))
        );
        round_trip(&state, false);

        // In a drop-in that holds only the block: its lines go, opkssh's drop-in is the default.
        let block = format!("Match Address 10.0.0.0/8\n{EIC_LINES}");
        let state = files(Some(DEBIAN_MAIN), &[("50-eic.conf", &block)]);
        let plan = plan_install(&state, &ours(), false, true).unwrap();
        let targets: Vec<&Target> = plan.edits.iter().map(|edit| &edit.target).collect();
        assert_eq!(
            targets,
            [
                &Target::DropIn("50-eic.conf".into()),
                &Target::DropIn(DEFAULT_DROP_IN.into())
            ]
        );
        round_trip(&state, false);
        round_trip(&state, true);
    }

    #[test]
    fn two_different_commands_cannot_be_chained() {
        let main = format!(
            "{EIC_LINES}Match User git\n    AuthorizedKeysCommand /usr/bin/gitlab-keys %u %k\n    AuthorizedKeysCommandUser git\n"
        );
        let state = files(Some(&main), &[]);
        let error = find_chain(&state, &ours()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "sshd_config line 1: `AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f`, and sshd_config line 4: `AuthorizedKeysCommand /usr/bin/gitlab-keys %u %k` (in the block of `Match User git`, line 3): opkssh keeps one command in chain_authorized_keys_command; make one command that runs both and set it in both places, or pass --no-chain to replace them without keeping either"
        );
        // The same command in both places is one command.
        let main = format!("{EIC_LINES}Match User ec2-user\n{EIC_LINES}");
        let chain = chain_of(&files(Some(&main), &[]));
        assert_eq!(chain.sources.len(), 2);
        assert_eq!(chain.command.as_deref(), Some(EIC_COMMAND));
    }
}
