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
pub(crate) fn plan_install(
    files: &SshdFiles,
    directives: &Directives,
    overwrite: bool,
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
        warn_match_blocks(&mut plan, "sshd_config", main);
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
        warn_match_blocks(&mut plan, "sshd_config", main);
    }

    let drop_ins = sorted_drop_ins(files);
    for (name, text) in &drop_ins {
        warn_match_blocks(&mut plan, &format!("sshd_config.d/{name}"), text);
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

fn warn_match_blocks(plan: &mut SshdPlan, file: &str, text: &str) {
    if match_block_directives(text) {
        plan.warnings.push(format!(
            "{file} sets AuthorizedKeysCommand inside a Match block; for the connections it matches, that command is used instead of opkssh"
        ));
    }
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

    /// Install, check idempotence, uninstall, check the original is back.
    fn round_trip(state: &SshdFiles, overwrite: bool) -> SshdFiles {
        let plan = plan_install(state, &ours(), overwrite).unwrap();
        let installed = applied(state.clone(), &plan);
        let again = plan_install(&installed, &ours(), overwrite).unwrap();
        assert!(again.edits.is_empty(), "second install changes {again:?}");
        let removed = applied(installed.clone(), &plan_uninstall(&installed));
        assert_eq!(removed, sorted(state.clone()), "uninstall does not restore");
        assert!(plan_uninstall(&removed).edits.is_empty());
        installed
    }

    #[test]
    fn debian_default_gets_the_go_drop_in() {
        let state = files(Some(DEBIAN_MAIN), &[]);
        let plan = plan_install(&state, &ours(), false).unwrap();
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
        let plan = plan_install(&state, &ours(), false).unwrap();
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
        let plan = plan_install(&state, &ours(), false).unwrap();
        let installed = applied(state, &plan);
        assert!(
            installed
                .main
                .as_deref()
                .unwrap()
                .starts_with("Port 22\n# opkssh")
        );
        assert!(
            plan_install(&installed, &ours(), false)
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
        let plan = plan_install(&state, &ours(), false).unwrap();
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
        let plan = plan_install(&state, &ours(), false).unwrap();
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
            plan_install(&state, &ours(), false).unwrap_err(),
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
            plan_install(&state, &ours(), false),
            Err(SshdError::NameTaken { .. })
        ));
    }

    #[test]
    fn overwrite_comments_out_the_active_drop_in() {
        let theirs = "# site\nAuthorizedKeysCommand /bin/x %u\nAuthorizedKeysCommandUser nobody\nPort 2222\n";
        let state = files(Some(DEBIAN_MAIN), &[("00-first.conf", theirs)]);
        let plan = plan_install(&state, &ours(), true).unwrap();
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
            plan_install(&installed, &ours(), false)
                .unwrap()
                .edits
                .is_empty()
        );
    }

    #[test]
    fn directives_before_the_include_are_commented_out() {
        let main = "AuthorizedKeysCommand /bin/early %u\nInclude /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysCommandUser late\n";
        let state = files(Some(main), &[]);
        let plan = plan_install(&state, &ours(), false).unwrap();
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
        let plan = plan_install(&state, &ours(), false).unwrap();
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
        let plan = plan_install(&state, &package, false).unwrap();
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
            &plan_install(&files(Some(DEBIAN_MAIN), &[]), &ours(), false).unwrap(),
        );
        let package = Directives::new("/usr/bin/opkssh", "opksshuser");
        let plan = plan_install(&installed, &package, false).unwrap();
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
        let plan = plan_install(&state, &ours(), false).unwrap();
        assert!(
            plan.edits[0]
                .text
                .as_deref()
                .unwrap()
                .starts_with(&format!("{DISABLED_MARK}\n#authorizedkeyscommand /bin/x\n"))
        );
    }
}
