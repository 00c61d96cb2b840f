//! Setting up (and taking down) a server for opkssh, as the Go `scripts/install-linux.sh` does
//! (behaviour.md §5.1, §3.7): the `opksshuser` account, the binary, `/etc/opk`, sshd's
//! `AuthorizedKeysCommand`, the sudoers rule for home policies, the log and the key cache.
//!
//! Work is split in two so that it can be shown and tested as data: [`plan_install`] and
//! [`plan_uninstall`] read the machine and return a [`Plan`], a list of [`Change`]s that
//! changes nothing; [`apply`] carries a plan out. A plan for a machine that is already as
//! asked is empty, so running the installer again changes nothing.
//!
//! Paths are absolute paths on the machine; [`Layout::root`] relocates them all (tests plan and
//! apply against a temporary folder). User accounts are always the running system's.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]

mod chain;
mod diff;
mod files;
mod selinux;
pub mod sshd_config;
mod sshd_unit;
mod system;
mod tools;
pub mod values;

pub use chain::ChainError;
pub use selinux::{
    BOOL_HOME, BOOL_PROXY, BOOL_SQUID, MODULE_NAME, MODULE_SOURCE, ModuleSource, PACKAGED_MODULE,
    SelinuxHost, SelinuxOptions,
};
pub use sshd_config::Directives;
pub use system::{Environment, Machine};
pub use values::ValueError;

use crate::files::WriteError;
use sshd_config::{Chain, SshdFiles, SshdPlan, Target};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the Go installer puts the binary; sshd's line and the sudoers rule name it.
pub const BINARY_PATH: &str = "/usr/local/bin/opkssh";
/// Where the Debian package puts the binary (packages do not install under /usr/local).
pub const PACKAGE_BINARY_PATH: &str = "/usr/bin/opkssh";
/// The server configuration folder.
pub const CONFIG_DIR: &str = "/etc/opk";
/// The server configuration, where a replaced `AuthorizedKeysCommand` is kept.
pub const CONFIG_FILE: &str = "/etc/opk/config.yml";
/// sshd's main configuration file.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// sshd's drop-in folder.
pub const SSHD_CONFIG_DIR: &str = "/etc/ssh/sshd_config.d";
/// The sudoers file for the home-policy rule.
pub const SUDOERS_FILE: &str = "/etc/sudoers.d/opkssh";
/// The verify log.
pub const LOG_FILE: &str = "/var/log/opkssh.log";
/// The discovery/JWKS cache of `opkssh verify`.
pub const CACHE_DIR: &str = "/var/cache/opkssh";
/// The account sshd runs `opkssh verify` as, and the group that may read `/etc/opk`.
pub const AUTH_CMD_USER: &str = "opksshuser";
/// The comment (GECOS) of the account opkssh creates: how `uninstall-server --remove-user`
/// tells it from an account opkssh did not create ([`Machine::is_own_account`]).
pub const ACCOUNT_COMMENT: &str = "opkssh verifier";

/// The providers the Go installer writes into an empty `/etc/opk/providers` (Google,
/// Microsoft, GitLab, Hello; 24-hour tokens).
pub const DEFAULT_PROVIDERS: &str = "\
https://accounts.google.com 206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com 24h
https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0 096ce0a3-5e72-4da8-9c86-12924b294a01 24h
https://gitlab.com 8d8b7024572c7fd501f64374dec6bba37096783dfcd792b3988104be08cb6923 24h
https://issuer.hello.coop app_xejobTKEsDNSRd5vofKB2iay_2rN 24h
";

/// The comment written above the sudoers rule.
const SUDOERS_COMMENT: &str =
    "# opkssh: lets opkssh verify read a user's ~/.opk/auth_id through opkssh readhome";
/// The Go installer's comment above the same rule.
const GO_SUDOERS_COMMENT: &str = "# This allows opkssh to call opkssh readhome <username> to read the user's policy file in /home/<username>/auth_id";

const DIR_MODE: u32 = 0o750;
const POLICY_MODE: u32 = 0o640;
const BINARY_MODE: u32 = 0o755;
const LOG_MODE: u32 = 0o660;
const CACHE_MODE: u32 = 0o700;
const SUDOERS_MODE: u32 = 0o440;
const SSHD_DIR_MODE: u32 = 0o755;
const SSHD_FILE_MODE: u32 = 0o644;

/// Absolute machine paths, relocated under a root folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `/` on a real machine.
    pub root: PathBuf,
}

impl Layout {
    /// The real machine.
    pub fn system() -> Self {
        Self {
            root: PathBuf::from("/"),
        }
    }

    /// `absolute` under the root.
    pub fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// Whether this is the real machine.
    pub fn is_system(&self) -> bool {
        self.root == Path::new("/")
    }
}

/// Where the binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binary {
    /// Copy this file to [`InstallOptions::install_path`] ([`BINARY_PATH`] by default).
    Copy(PathBuf),
    /// A package installed it at [`PACKAGE_BINARY_PATH`].
    Packaged,
}

/// Whether home policies (`~/.opk/auth_id`, read through `sudo opkssh readhome`) are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomePolicy {
    /// Install the sudoers rule; fail without sudo (as Go).
    On,
    /// No sudoers rule.
    Off,
    /// Install the rule if sudo is installed, else warn (a package must not fail for it).
    IfSudo,
}

/// What `install-server` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// Where the machine's files are.
    pub layout: Layout,
    /// The binary.
    pub binary: Binary,
    /// `AuthorizedKeysCommandUser`.
    pub user: String,
    /// The group that may read `/etc/opk` and append to the log.
    pub group: String,
    /// Home policies.
    pub home_policy: HomePolicy,
    /// Comment out another active `AuthorizedKeysCommand` instead of outranking it.
    pub overwrite_config: bool,
    /// Keep the `AuthorizedKeysCommand` sshd runs today as `chain_authorized_keys_command` in
    /// `/etc/opk/config.yml`, and let opkssh apply inside `Match` blocks that set one
    /// (`--no-chain` turns this off: the command is replaced, as before).
    pub chain: bool,
    /// Where a copied binary goes (Go's `$OPKSSH_INSTALL_DIR/$OPKSSH_INSTALL_BINARY_NAME`).
    pub install_path: String,
    /// The sudoers file for the home-policy rule (Go's `OPKSSH_INSTALL_SUDOERS_PATH`).
    pub sudoers_path: String,
    /// The SELinux module and its booleans.
    pub selinux: SelinuxOptions,
}

impl InstallOptions {
    /// Go's defaults for a binary source.
    pub fn new(binary: Binary) -> Self {
        Self {
            layout: Layout::system(),
            binary,
            user: AUTH_CMD_USER.to_owned(),
            group: AUTH_CMD_USER.to_owned(),
            home_policy: HomePolicy::On,
            overwrite_config: false,
            chain: true,
            install_path: BINARY_PATH.to_owned(),
            sudoers_path: SUDOERS_FILE.to_owned(),
            selinux: SelinuxOptions::default(),
        }
    }

    /// Every value checked by its rule ([`values`]), so that no plan is made from a name or
    /// path that would say more than meant in sshd's configuration, sudoers or a command.
    ///
    /// # Errors
    /// The first value that breaks its rule.
    pub fn check(&self) -> Result<(), InstallError> {
        check_accounts(&self.user, &self.group)?;
        check_value("binary path", &self.install_path, values::check_command_dir)?;
        check_value("sudoers path", &self.sudoers_path, values::check_path)
    }

    /// The path sshd and sudo run.
    pub fn binary_path(&self) -> &str {
        match self.binary {
            Binary::Copy(_) => &self.install_path,
            Binary::Packaged => PACKAGE_BINARY_PATH,
        }
    }
}

/// What `uninstall-server` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallOptions {
    /// Where the machine's files are.
    pub layout: Layout,
    /// Remove [`UninstallOptions::install_path`].
    pub remove_binary: bool,
    /// Remove `/etc/opk` and the log too.
    pub purge: bool,
    /// Delete the account (and its group).
    pub remove_user: bool,
    /// The account.
    pub user: String,
    /// Its group.
    pub group: String,
    /// The binary removed by `remove_binary`.
    pub install_path: String,
    /// The sudoers file the rule is taken out of.
    pub sudoers_path: String,
    /// Leave the SELinux module loaded (`--no-selinux`).
    pub keep_selinux_module: bool,
}

impl UninstallOptions {
    /// Removes what install-server added except policy, log and account.
    pub fn new() -> Self {
        Self {
            layout: Layout::system(),
            remove_binary: true,
            purge: false,
            remove_user: false,
            user: AUTH_CMD_USER.to_owned(),
            group: AUTH_CMD_USER.to_owned(),
            install_path: BINARY_PATH.to_owned(),
            sudoers_path: SUDOERS_FILE.to_owned(),
            keep_selinux_module: false,
        }
    }
}

impl UninstallOptions {
    /// Every value checked by its rule, as [`InstallOptions::check`].
    ///
    /// # Errors
    /// The first value that breaks its rule.
    pub fn check(&self) -> Result<(), InstallError> {
        check_accounts(&self.user, &self.group)?;
        check_value("binary path", &self.install_path, values::check_command_dir)?;
        check_value("sudoers path", &self.sudoers_path, values::check_path)
    }
}

fn check_value(
    what: &'static str,
    value: &str,
    rule: fn(&str) -> Result<(), ValueError>,
) -> Result<(), InstallError> {
    rule(value).map_err(|error| InstallError::InvalidValue {
        what,
        value: value.to_owned(),
        error,
    })
}

fn check_accounts(user: &str, group: &str) -> Result<(), InstallError> {
    check_value("user", user, values::check_account_name)?;
    check_value("group", group, values::check_account_name)
}

/// sshd never runs verify as root, and opkssh never puts its account into root's group nor
/// deletes either: checked against the machine, so another name for uid 0 is refused too.
fn refuse_root(machine: &Machine, user: &str, group: &str) -> Result<(), InstallError> {
    let root_value = |what, value: &str| InstallError::InvalidValue {
        what,
        value: value.to_owned(),
        error: ValueError::Root,
    };
    if user == "root" || machine.users.get(user).is_some_and(|(uid, _)| *uid == 0) {
        return Err(root_value("user", user));
    }
    if group == "root" || machine.groups.get(group).is_some_and(|(gid, _)| *gid == 0) {
        return Err(root_value("group", group));
    }
    Ok(())
}

impl Default for UninstallOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// An owner by name (resolved when applied: the group may not exist yet when planning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// User name (or a number).
    pub user: String,
    /// Group name (or a number).
    pub group: String,
}

impl Owner {
    fn new(user: &str, group: &str) -> Self {
        Self {
            user: user.to_owned(),
            group: group.to_owned(),
        }
    }

    fn root() -> Self {
        Self::new("root", "root")
    }

    fn of(attributes: &Attributes) -> Self {
        Self {
            user: policy::perms::user_name(attributes.uid).replace("uid ", ""),
            group: policy::perms::group_name(attributes.gid).replace("gid ", ""),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.user, self.group)
    }
}

/// Mode and numeric owner of an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Attributes {
    /// The attributes in `metadata` of `path`; an error where the system has no Unix owners
    /// and modes.
    fn of(metadata: &std::fs::Metadata, path: &Path) -> Result<Self, InstallError> {
        let attributes = opk_os::file::attributes(metadata)
            .map_err(|unsupported| io_error(path)(unsupported.into()))?;
        Ok(Self {
            mode: attributes.mode,
            uid: attributes.uid,
            gid: attributes.gid,
        })
    }
}

/// A file as it was before a change (to show a diff and to roll back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Its bytes.
    pub contents: Vec<u8>,
    /// Its mode and owner.
    pub attributes: Attributes,
}

/// A check a file's new contents must pass before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// None.
    None,
    /// `visudo -c -f -` must accept it.
    Sudoers,
}

/// One change to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `groupadd --system <name>`.
    CreateGroup {
        /// Group name.
        name: String,
    },
    /// `useradd --system --no-create-home --comment <ACCOUNT_COMMENT> --shell <shell> --gid <group> <name>`.
    CreateUser {
        /// User name.
        name: String,
        /// Primary group.
        group: String,
        /// Login shell (one that refuses logins).
        shell: String,
    },
    /// `usermod -aG <group> <user>`.
    AddToGroup {
        /// User name.
        user: String,
        /// Group name.
        group: String,
    },
    /// A new directory.
    CreateDir {
        /// Path.
        path: PathBuf,
        /// Mode.
        mode: u32,
        /// Owner.
        owner: Owner,
    },
    /// A file written whole, atomically.
    WriteFile {
        /// Path.
        path: PathBuf,
        /// New contents.
        contents: Vec<u8>,
        /// Mode.
        mode: u32,
        /// Owner.
        owner: Owner,
        /// The file it replaces.
        previous: Option<Existing>,
        /// Check before writing.
        validation: Validation,
        /// Where the contents come from, if not shown as text (the binary).
        source: Option<PathBuf>,
    },
    /// New mode and owner for an existing file or directory.
    SetAttributes {
        /// Path.
        path: PathBuf,
        /// Mode.
        mode: u32,
        /// Owner.
        owner: Owner,
        /// What it has now.
        from: Attributes,
    },
    /// A file or a whole directory removed.
    Remove {
        /// Path.
        path: PathBuf,
        /// The file's contents (not kept for directories).
        previous: Option<Existing>,
        /// A directory with everything in it.
        tree: bool,
    },
    /// `userdel <name>`.
    DeleteUser {
        /// User name.
        name: String,
    },
    /// `groupdel <name>` (if `userdel` left it).
    DeleteGroup {
        /// Group name.
        name: String,
    },
    /// `semodule -i` of the `opkssh` policy module (compiled first if from source).
    SelinuxModule {
        /// Where the module comes from.
        source: ModuleSource,
    },
    /// `setsebool -P <name> on`.
    SelinuxBoolean {
        /// One of the module's booleans.
        name: String,
    },
    /// `restorecon` on files and folders the installer wrote.
    SelinuxRelabel {
        /// Their paths.
        paths: Vec<PathBuf>,
    },
    /// `semodule -r opkssh`.
    SelinuxRemoveModule,
}

fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

impl Change {
    /// One line saying what the change does, with the command it runs if any.
    pub fn summary(&self) -> String {
        match self {
            Self::CreateGroup { name } => {
                format!("create group {name} (groupadd --system {name})")
            }
            Self::CreateUser { name, group, shell } => format!(
                "create user {name} (useradd --system --no-create-home --comment '{ACCOUNT_COMMENT}' --shell {shell} --gid {group} {name})"
            ),
            Self::AddToGroup { user, group } => {
                format!("add user {user} to group {group} (usermod -aG {group} {user})")
            }
            Self::CreateDir { path, mode, owner } => format!(
                "create directory {} (mode {mode:04o}, {owner})",
                path.display()
            ),
            Self::WriteFile {
                path,
                contents,
                mode,
                owner,
                previous,
                source,
                ..
            } => {
                let what = match previous {
                    None => "new file",
                    Some(_) => "replaces the current file",
                };
                let from = source
                    .as_ref()
                    .map(|source| format!(", {} bytes from {}", contents.len(), source.display()))
                    .unwrap_or_default();
                format!(
                    "write {} ({what}, mode {mode:04o}, {owner}{from})",
                    path.display()
                )
            }
            Self::SetAttributes {
                path,
                mode,
                owner,
                from,
            } => format!(
                "set {} to mode {mode:04o}, {owner} (now {:04o}, {})",
                path.display(),
                from.mode,
                Owner::of(from)
            ),
            Self::Remove { path, tree, .. } => {
                if *tree {
                    format!("remove {} and everything in it", path.display())
                } else {
                    format!("remove {}", path.display())
                }
            }
            Self::DeleteUser { name } => format!("delete user {name} (userdel {name})"),
            Self::DeleteGroup { name } => {
                format!("delete group {name} (groupdel {name}, if userdel left it)")
            }
            Self::SelinuxModule { source } => match source {
                ModuleSource::Compiled(path) => format!(
                    "load SELinux module {MODULE_NAME} (semodule -i {})",
                    path.display()
                ),
                ModuleSource::Source(path) => format!(
                    "compile SELinux module {MODULE_NAME} from {} (checkmodule -M -m, semodule_package) and load it (semodule -i)",
                    path.display()
                ),
                ModuleSource::BuiltIn => format!(
                    "compile SELinux module {MODULE_NAME} from opkssh's built-in opkssh.te (checkmodule -M -m, semodule_package) and load it (semodule -i)"
                ),
            },
            Self::SelinuxBoolean { name } => {
                format!("turn on SELinux boolean {name} (setsebool -P {name} on)")
            }
            Self::SelinuxRelabel { paths } => format!(
                "restore SELinux labels (restorecon {})",
                paths
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Self::SelinuxRemoveModule => {
                format!("remove SELinux module {MODULE_NAME} (semodule -r {MODULE_NAME})")
            }
        }
    }

    /// The summary and, for text files, a diff of the contents.
    pub fn details(&self) -> String {
        let mut text = self.summary();
        text.push('\n');
        let (old, new): (&[u8], &[u8]) = match self {
            Self::WriteFile {
                contents,
                previous,
                source: None,
                ..
            } => (
                previous.as_ref().map_or(&[][..], |p| p.contents.as_slice()),
                contents,
            ),
            Self::Remove {
                previous: Some(previous),
                ..
            } => (&previous.contents, &[]),
            _ => return text,
        };
        if is_text(old) && is_text(new) {
            text.push_str(&diff::render(
                &String::from_utf8_lossy(old),
                &String::from_utf8_lossy(new),
                "    ",
            ));
        } else {
            text.push_str(&format!(
                "    ({} bytes replaced by {} bytes)\n",
                old.len(),
                new.len()
            ));
        }
        text
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Self::CreateDir { path, .. }
            | Self::WriteFile { path, .. }
            | Self::SetAttributes { path, .. }
            | Self::Remove { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// What installing or uninstalling would change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Accounts and files, applied first.
    pub changes: Vec<Change>,
    /// sshd's configuration, checked with `sshd -t` and rolled back if refused.
    pub sshd_changes: Vec<Change>,
    /// Applied after sshd's files: relabeling what was written (SELinux).
    pub last_changes: Vec<Change>,
    /// What the administrator should know (nothing here stops the plan).
    pub warnings: Vec<String>,
    /// The `AuthorizedKeysCommand` sshd should end up with (install only).
    pub expected_command: Option<String>,
    /// Append an installation record to the log once done (install only).
    pub log_record: Option<String>,
}

impl Plan {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.sshd_changes.is_empty() && self.last_changes.is_empty()
    }

    /// Every change, in the order they are applied.
    pub fn all_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .chain(&self.sshd_changes)
            .chain(&self.last_changes)
    }

    /// The change touching `path`, if any.
    pub fn change_for(&self, path: &Path) -> Option<&Change> {
        self.all_changes()
            .find(|change| change.path() == Some(path))
    }
}

/// Why installing or uninstalling failed. Every variant names the file or command.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// An option's value breaks its rule ([`values`]); nothing was planned.
    #[error("{what} {value:?}: {error}")]
    InvalidValue {
        /// Which option.
        what: &'static str,
        /// Its value.
        value: String,
        /// The rule it breaks.
        error: ValueError,
    },
    /// A file could not be read or changed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A file is not what it must be.
    #[error("{path}: {reason}")]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// sshd's configuration cannot take opkssh's lines without `--overwrite-config`.
    #[error("{dir}/{error}")]
    Sshd {
        /// The ssh folder.
        dir: String,
        /// Why.
        error: sshd_config::SshdError,
    },
    /// `chain_authorized_keys_command` cannot be written into config.yml.
    #[error(
        "{path}: {error}; opkssh keeps sshd's AuthorizedKeysCommand {command:?} there: fix or remove that, or pass --no-chain to replace the command without keeping it"
    )]
    Chain {
        /// config.yml.
        path: PathBuf,
        /// The command to keep.
        command: String,
        /// Why.
        error: ChainError,
    },
    /// Home policies need sudo.
    #[error(
        "sudo is not installed, and home policies (~/.opk/auth_id) are read through sudo: install sudo (apt-get install sudo) or pass --no-home-policy"
    )]
    NoSudo,
    /// `visudo` refused the sudoers file.
    #[error("{path}: visudo rejects the new file, left unchanged: {output}")]
    SudoersRejected {
        /// The sudoers file.
        path: PathBuf,
        /// visudo's output.
        output: String,
    },
    /// A command failed.
    #[error("{command} failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its output or the reason it did not run.
        output: String,
    },
    /// `sshd -t` refused the new configuration; the previous files are back.
    #[error(
        "sshd -t rejects the new configuration, so the sshd files were restored as they were: {output}"
    )]
    SshdRejected {
        /// sshd's output.
        output: String,
    },
    /// A user account or group does not exist.
    #[error("no such {kind} {name}")]
    NoAccount {
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// SELinux is enabled but the tools to load opkssh's module are missing.
    #[error(
        "SELinux is enabled, and loading opkssh's policy module needs {missing}, which is not installed (dnf install policycoreutils checkpolicy), or pass --no-selinux"
    )]
    SelinuxTools {
        /// The missing tools.
        missing: String,
    },
    /// The account exists and opkssh did not create it, so it does not change it.
    #[error(
        "{user} is an existing account opkssh did not create, so opkssh does not change it: add it to group {group} yourself (usermod -aG {group} {user}) and run again, or let opkssh create its own account"
    )]
    ForeignAccount {
        /// The account.
        user: String,
        /// The group it is not in.
        group: String,
    },
    /// Accounts are only changed on the real machine.
    #[error("user accounts can only be changed when installing into / (plan asks to {0})")]
    AccountsOutsideRoot(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The file at `path` with its attributes; `None` if it does not exist. Refuses symlinks and
/// anything but a regular file, since the installer replaces files whole.
fn read_existing(path: &Path) -> Result<Option<Existing>, InstallError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path)(error)),
    };
    if metadata.file_type().is_symlink() {
        return Err(InstallError::Unexpected {
            path: path.to_owned(),
            reason: "is a symlink; opkssh install-server only replaces regular files (edit the file it points to by hand)".into(),
        });
    }
    if !metadata.is_file() {
        return Err(InstallError::Unexpected {
            path: path.to_owned(),
            reason: "is not a regular file".into(),
        });
    }
    let contents = std::fs::read(path).map_err(io_error(path))?;
    Ok(Some(Existing {
        contents,
        attributes: Attributes::of(&metadata, path)?,
    }))
}

fn read_text(existing: &Existing, path: &Path) -> Result<String, InstallError> {
    String::from_utf8(existing.contents.clone()).map_err(|_| InstallError::Unexpected {
        path: path.to_owned(),
        reason: "is not UTF-8 text".into(),
    })
}

/// `Some(attributes)` of an existing path (not following a final symlink).
fn attributes_of(path: &Path) -> Result<Option<(Attributes, std::fs::FileType)>, InstallError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => Ok(Some((
            Attributes::of(&metadata, path)?,
            metadata.file_type(),
        ))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(path)(error)),
    }
}

fn owner_matches(attributes: &Attributes, owner: &Owner, machine: &Machine) -> bool {
    machine.uid(&owner.user) == Some(attributes.uid)
        && machine.gid(&owner.group) == Some(attributes.gid)
}

/// A directory with a mode and owner: created if missing; if `enforce`, its attributes are set
/// when they differ, else a difference is only a warning.
fn ensure_dir(
    plan: &mut Plan,
    machine: &Machine,
    path: PathBuf,
    mode: u32,
    owner: &Owner,
    enforce: bool,
) -> Result<(), InstallError> {
    match attributes_of(&path)? {
        None => plan.changes.push(Change::CreateDir {
            path,
            mode,
            owner: owner.clone(),
        }),
        Some((_, file_type)) if !file_type.is_dir() => {
            return Err(InstallError::Unexpected {
                path,
                reason: "exists and is not a directory".into(),
            });
        }
        Some((attributes, _)) => {
            if attributes.mode != mode || !owner_matches(&attributes, owner, machine) {
                if enforce {
                    plan.changes.push(Change::SetAttributes {
                        path,
                        mode,
                        owner: owner.clone(),
                        from: attributes,
                    });
                } else {
                    plan.warnings.push(format!(
                        "{} has mode {:04o} and owner {}; the installer makes it {mode:04o} {owner} (left as it is)",
                        path.display(),
                        attributes.mode,
                        Owner::of(&attributes)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A policy file created with `contents` if missing (or, for providers, if empty).
fn ensure_policy_file(
    plan: &mut Plan,
    machine: &Machine,
    path: PathBuf,
    contents: &str,
    owner: &Owner,
    enforce: bool,
) -> Result<(), InstallError> {
    match attributes_of(&path)? {
        None => plan.changes.push(Change::WriteFile {
            path,
            contents: contents.as_bytes().to_vec(),
            mode: POLICY_MODE,
            owner: owner.clone(),
            previous: None,
            validation: Validation::None,
            source: None,
        }),
        Some((attributes, file_type)) => {
            if !file_type.is_file() {
                plan.warnings.push(format!(
                    "{} is not a regular file; opkssh verify will not read it",
                    path.display()
                ));
                return Ok(());
            }
            let right =
                attributes.mode == POLICY_MODE && owner_matches(&attributes, owner, machine);
            let empty = std::fs::metadata(&path).map_err(io_error(&path))?.len() == 0;
            if empty && !contents.is_empty() {
                // As Go: an empty providers file gets the default providers, keeping its mode
                // and owner (unless a package owns it).
                let (mode, write_owner) = if enforce {
                    (POLICY_MODE, owner.clone())
                } else {
                    (attributes.mode, Owner::of(&attributes))
                };
                plan.changes.push(Change::WriteFile {
                    path: path.clone(),
                    contents: contents.as_bytes().to_vec(),
                    mode,
                    owner: write_owner,
                    previous: read_existing(&path)?,
                    validation: Validation::None,
                    source: None,
                });
            } else if !right && enforce {
                plan.changes.push(Change::SetAttributes {
                    path: path.clone(),
                    mode: POLICY_MODE,
                    owner: owner.clone(),
                    from: attributes,
                });
            }
            if !right && !enforce {
                plan.warnings.push(format!(
                    "{} has mode {:04o} and owner {}; opkssh verify wants {POLICY_MODE:04o} {owner} (fix it with: opkssh permissions fix)",
                    path.display(),
                    attributes.mode,
                    Owner::of(&attributes)
                ));
            }
        }
    }
    Ok(())
}

fn sudoers_rule(user: &str, binary: &str) -> String {
    format!("{user} ALL=(ALL) NOPASSWD: {binary} readhome *")
}

/// Whether a sudoers line is an opkssh readhome rule for `user` (any binary path).
fn is_readhome_rule(line: &str, user: &str) -> bool {
    let Some(rest) = line
        .trim()
        .strip_prefix(&format!("{user} ALL=(ALL) NOPASSWD: "))
    else {
        return false;
    };
    rest.strip_suffix(" readhome *")
        .is_some_and(|binary| binary.starts_with('/') && !binary.contains(char::is_whitespace))
}

fn is_sudoers_comment(line: &str) -> bool {
    let line = line.trim();
    line == SUDOERS_COMMENT || line == GO_SUDOERS_COMMENT
}

/// The sudoers text without opkssh's lines.
fn sudoers_without_opkssh(text: &str, user: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if !is_readhome_rule(line, user) && !is_sudoers_comment(line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        // `#include`/`#includedir` are directives in sudoers, not comments.
        line.is_empty() || (line.starts_with('#') && !line.starts_with("#include"))
    })
}

fn plan_sudoers(
    plan: &mut Plan,
    machine: &Machine,
    options: &InstallOptions,
) -> Result<(), InstallError> {
    let layout = &options.layout;
    match options.home_policy {
        HomePolicy::Off => return Ok(()),
        HomePolicy::On if !machine.sudo => return Err(InstallError::NoSudo),
        HomePolicy::IfSudo if !machine.sudo => {
            plan.warnings.push(
                "sudo is not installed: home policies (~/.opk/auth_id) are not set up; install sudo and run opkssh install-server --from-package again to enable them".into(),
            );
            return Ok(());
        }
        HomePolicy::On | HomePolicy::IfSudo => {}
    }
    let main = layout.path("/etc/sudoers");
    if let Ok(text) = std::fs::read_to_string(&main)
        && !text.contains("includedir /etc/sudoers.d")
    {
        plan.warnings.push(format!(
            "{} does not include /etc/sudoers.d, so the readhome rule in {} has no effect",
            main.display(),
            options.sudoers_path
        ));
    }
    let path = layout.path(&options.sudoers_path);
    if let Some(parent) = path.parent()
        && attributes_of(parent)?.is_none()
    {
        plan.changes.push(Change::CreateDir {
            path: parent.to_owned(),
            mode: SSHD_DIR_MODE,
            owner: Owner::root(),
        });
    }
    let rule = sudoers_rule(&options.user, options.binary_path());
    let previous = read_existing(&path)?;
    let current = match &previous {
        Some(existing) => read_text(existing, &path)?,
        None => String::new(),
    };
    let has_rule = current.lines().any(|line| line.trim() == rule);
    let stale = current
        .lines()
        .any(|line| is_readhome_rule(line, &options.user) && line.trim() != rule);
    if has_rule && !stale {
        if let Some(existing) = &previous
            && (existing.attributes.mode != SUDOERS_MODE || existing.attributes.uid != 0)
        {
            plan.changes.push(Change::SetAttributes {
                path,
                mode: SUDOERS_MODE,
                owner: Owner::root(),
                from: existing.attributes,
            });
        }
        return Ok(());
    }
    let mut contents = sudoers_without_opkssh(&current, &options.user);
    contents.push_str(SUDOERS_COMMENT);
    contents.push('\n');
    contents.push_str(&rule);
    contents.push('\n');
    plan.changes.push(Change::WriteFile {
        path,
        contents: contents.into_bytes(),
        mode: SUDOERS_MODE,
        owner: Owner::root(),
        previous,
        validation: Validation::Sudoers,
        source: None,
    });
    Ok(())
}

/// Whether the sudoers rule for home policies is (to be) in place.
fn home_policy_active(options: &InstallOptions, machine: &Machine) -> bool {
    match options.home_policy {
        HomePolicy::On => true,
        HomePolicy::IfSudo => machine.sudo,
        HomePolicy::Off => false,
    }
}

/// The module (unless loaded already, or another source was named) and the booleans that are
/// not on yet. The module comes from `--install-te-from`, else the package's compiled one,
/// else opkssh's own source compiled here (as Go compiles its downloaded opkssh.te).
fn plan_selinux(
    plan: &mut Plan,
    options: &InstallOptions,
    machine: &Machine,
) -> Result<(), InstallError> {
    let host = &machine.selinux;
    if options.selinux.skip || !host.enabled {
        return Ok(());
    }
    let layout = &options.layout;
    let packaged = layout.path(PACKAGED_MODULE);
    let source = match &options.selinux.te_file {
        Some(file) => Some(ModuleSource::Source(file.clone())),
        None if host.has_module() => None,
        None if packaged.is_file() => Some(ModuleSource::Compiled(packaged)),
        None => Some(ModuleSource::BuiltIn),
    };
    let mut tools = vec!["semodule", "setsebool", "restorecon"];
    if matches!(
        source,
        Some(ModuleSource::Source(_) | ModuleSource::BuiltIn)
    ) {
        tools.extend(["checkmodule", "semodule_package"]);
    }
    selinux::require_tools(layout, &tools)?;
    if let Some(source) = source {
        plan.changes.push(Change::SelinuxModule { source });
    }
    let wanted = [
        (BOOL_HOME, home_policy_active(options, machine)),
        (BOOL_SQUID, options.selinux.squid),
        (BOOL_PROXY, options.selinux.proxy),
    ];
    for (name, wanted) in wanted {
        if wanted && host.booleans.get(name) != Some(&true) {
            plan.changes.push(Change::SelinuxBoolean {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// `restorecon` on every file and folder the plan writes or creates, so that each has its
/// policy's label whatever the folder it was made in (Go relabels the binary it moved in).
fn plan_relabel(plan: &mut Plan, options: &InstallOptions, machine: &Machine) {
    if options.selinux.skip || !machine.selinux.enabled {
        return;
    }
    let paths: Vec<PathBuf> = plan
        .changes
        .iter()
        .chain(&plan.sshd_changes)
        .filter_map(|change| match change {
            Change::CreateDir { path, .. } | Change::WriteFile { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    if !paths.is_empty() {
        plan.last_changes.push(Change::SelinuxRelabel { paths });
    }
}

/// config.yml's bytes, mode and owner, and its text: `None` if it does not exist, an error
/// naming it if it is not a regular UTF-8 file.
fn read_config(path: &Path) -> Result<Option<(Existing, String)>, InstallError> {
    let Some(existing) = read_existing(path)? else {
        return Ok(None);
    };
    let text = read_text(&existing, path)?;
    Ok(Some((existing, text)))
}

/// config.yml's `chain_authorized_keys_command` set to the command sshd runs today (opkssh's
/// line taken out when there is none, or with `--no-chain`), and what that means for the
/// administrator.
fn plan_chain(
    plan: &mut Plan,
    options: &InstallOptions,
    machine: &Machine,
    chain: &Chain,
) -> Result<(), InstallError> {
    let layout = &options.layout;
    let path = layout.path(CONFIG_FILE);
    let command = chain.command.as_deref();
    let failed = |error| InstallError::Chain {
        path: path.clone(),
        command: command.unwrap_or_default().to_owned(),
        error,
    };
    let new_file = plan.changes.iter_mut().find_map(|change| match change {
        Change::WriteFile {
            path: planned,
            contents,
            previous: None,
            ..
        } if *planned == path => Some(contents),
        _ => None,
    });
    if let Some(contents) = new_file {
        *contents = chain::with_chain("", command).map_err(failed)?.into_bytes();
    } else {
        let regular = attributes_of(&path)?.is_some_and(|(_, kind)| kind.is_file());
        let current = match command {
            // Only opkssh's own line could go: a file it cannot read has none.
            None if !regular => None,
            None => read_config(&path).ok().flatten(),
            Some(_) => read_config(&path)?,
        };
        if let Some((existing, text)) = current {
            let contents = chain::with_chain(&text, command).map_err(failed)?;
            if contents != text {
                // Mode and owner as the plan leaves them.
                let (mode, owner) = plan
                    .changes
                    .iter()
                    .find_map(|change| match change {
                        Change::SetAttributes {
                            path: planned,
                            mode,
                            owner,
                            ..
                        } if *planned == path => Some((*mode, owner.clone())),
                        _ => None,
                    })
                    .unwrap_or((existing.attributes.mode, Owner::of(&existing.attributes)));
                plan.changes.push(Change::WriteFile {
                    path: path.clone(),
                    contents: contents.into_bytes(),
                    mode,
                    owner,
                    previous: Some(existing),
                    validation: Validation::None,
                    source: None,
                });
            }
        }
    }
    chain_warnings(plan, options, machine, chain);
    Ok(())
}

/// What chaining means, said once per thing: where the kept command was, the account it runs
/// as now, connections it now applies to, and what is not chained.
fn chain_warnings(plan: &mut Plan, options: &InstallOptions, machine: &Machine, chain: &Chain) {
    let ssh_dir = options.layout.path("/etc/ssh").display().to_string();
    let ours = &options.user;
    for found in &chain.sources {
        let scope = if found.block.is_some() {
            "is commented out, so that opkssh applies to the connections its block matches too, and"
        } else {
            "is"
        };
        plan.warnings.push(format!(
            "{ssh_dir}/{found} {scope} kept: {CONFIG_FILE} gets chain_authorized_keys_command, and opkssh verify runs it for every key that is not an opkssh certificate it accepts (--no-chain replaces it instead)"
        ));
    }
    if let Some(command) = &chain.command {
        if chain.sources.iter().all(|found| found.block.is_some()) {
            let blocks = chain
                .sources
                .iter()
                .filter_map(|found| found.block.as_ref())
                .map(|block| format!("`{}`", block.text))
                .collect::<Vec<_>>()
                .join(", ");
            plan.warnings.push(format!(
                "sshd ran `{command}` only for the connections {blocks} matches; chained, it runs for every login opkssh does not accept, so it may let in logins outside that block: if the block limits it on purpose (to some users or addresses), pass --no-chain instead (the block then keeps its command, and opkssh does not apply to its connections)"
            ));
        }
        let mut users: Vec<&str> = chain
            .sources
            .iter()
            .filter_map(|found| found.user.as_deref())
            .filter(|user| user != ours)
            .collect();
        users.sort_unstable();
        users.dedup();
        let sudo = if home_policy_active(options, machine) {
            ", and run `sudo opkssh readhome` (the home-policy rule)"
        } else {
            ""
        };
        let program = command.split_whitespace().next().unwrap_or_default();
        for theirs in users {
            plan.warnings.push(format!(
                "sshd ran `{command}` as {theirs} (AuthorizedKeysCommandUser); chained, it runs as {ours}, the account sshd runs opkssh verify as: with {ours}'s rights, not {theirs}'s, it can read /etc/opk{sudo}, and whatever only {theirs} may use (files it owns, sudo rules, firewall rules by user) is out of its reach; check it as {ours} (sudo -u {ours} {program} …) or pass --no-chain"
            ));
        }
    }
    for found in &chain.skipped {
        plan.warnings.push(format!(
            "{ssh_dir}/{found} has no AuthorizedKeysCommandUser, so sshd skips it; it is not chained"
        ));
    }
    for block in &chain.off {
        plan.warnings.push(format!(
            "{ssh_dir}/{} line {}: the block of `{}` sets AuthorizedKeysCommand none, so neither opkssh nor a chained command runs for the connections it matches",
            block.file, block.line, block.text
        ));
    }
}

/// config.yml without the line `install-server` chained, once sshd is restored.
fn unchain(plan: &mut Plan, layout: &Layout) -> Result<(), InstallError> {
    let path = layout.path(CONFIG_FILE);
    if !attributes_of(&path)?.is_some_and(|(_, kind)| kind.is_file()) {
        return Ok(());
    }
    let Ok(Some((existing, text))) = read_config(&path) else {
        return Ok(());
    };
    let contents = chain::without_chain(&text);
    if contents != text {
        plan.last_changes.push(Change::WriteFile {
            path,
            contents: contents.into_bytes(),
            mode: existing.attributes.mode,
            owner: Owner::of(&existing.attributes),
            previous: Some(existing),
            validation: Validation::None,
            source: None,
        });
    }
    Ok(())
}

/// sshd_config and the drop-ins, as the installer reads them.
struct SshdState {
    files: SshdFiles,
    existing: Vec<(Target, Existing)>,
    dir_exists: bool,
}

fn read_sshd(layout: &Layout) -> Result<SshdState, InstallError> {
    let main_path = layout.path(SSHD_CONFIG);
    let mut existing = Vec::new();
    let mut files = SshdFiles::default();
    if let Some(main) = read_existing(&main_path)? {
        files.main = Some(read_text(&main, &main_path)?);
        existing.push((Target::Main, main));
    }
    let dir = layout.path(SSHD_CONFIG_DIR);
    let dir_exists = match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io_error(&dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".conf") {
                    continue;
                }
                let path = entry.path();
                if std::fs::metadata(&path).is_ok_and(|metadata| metadata.is_dir()) {
                    continue;
                }
                let file = read_existing(&path)?.ok_or_else(|| InstallError::Unexpected {
                    path: path.clone(),
                    reason: "vanished while being read".into(),
                })?;
                files
                    .drop_ins
                    .push((name.clone(), read_text(&file, &path)?));
                existing.push((Target::DropIn(name), file));
            }
            true
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => return Err(io_error(&dir)(error)),
    };
    Ok(SshdState {
        files,
        existing,
        dir_exists,
    })
}

fn target_path(layout: &Layout, target: &Target) -> PathBuf {
    match target {
        Target::Main => layout.path(SSHD_CONFIG),
        Target::DropIn(name) => layout.path(SSHD_CONFIG_DIR).join(name),
    }
}

/// Turns sshd text edits into file changes that keep each file's mode and owner.
fn sshd_changes(layout: &Layout, state: &SshdState, sshd: SshdPlan, plan: &mut Plan) {
    let ssh_dir = layout.path("/etc/ssh");
    for warning in sshd.warnings {
        plan.warnings
            .push(format!("{}/{warning}", ssh_dir.display()));
    }
    let creates_drop_in = sshd
        .edits
        .iter()
        .any(|edit| matches!(edit.target, Target::DropIn(_)) && edit.text.is_some());
    if creates_drop_in && !state.dir_exists {
        plan.sshd_changes.push(Change::CreateDir {
            path: layout.path(SSHD_CONFIG_DIR),
            mode: SSHD_DIR_MODE,
            owner: Owner::root(),
        });
    }
    for edit in sshd.edits {
        let path = target_path(layout, &edit.target);
        let previous = state
            .existing
            .iter()
            .find(|(target, _)| *target == edit.target)
            .map(|(_, existing)| existing.clone());
        let change = match edit.text {
            None => Change::Remove {
                path,
                previous,
                tree: false,
            },
            Some(text) => {
                let (mode, owner) = match &previous {
                    Some(existing) => (existing.attributes.mode, Owner::of(&existing.attributes)),
                    None => (SSHD_FILE_MODE, Owner::root()),
                };
                Change::WriteFile {
                    path,
                    contents: text.into_bytes(),
                    mode,
                    owner,
                    previous,
                    validation: Validation::None,
                    source: None,
                }
            }
        };
        plan.sshd_changes.push(change);
    }
}

/// What `install-server` would change on this machine.
///
/// # Errors
/// An option that breaks its rule ([`InstallOptions::check`]), a file that cannot be read or is
/// not what it must be, no sudo for home policies, or an sshd configuration opkssh cannot take
/// precedence in.
pub fn plan_install(options: &InstallOptions, machine: &Machine) -> Result<Plan, InstallError> {
    options.check()?;
    refuse_root(machine, &options.user, &options.group)?;
    let layout = &options.layout;
    let packaged = options.binary == Binary::Packaged;
    let mut plan = Plan::default();
    let group_owner = Owner::new("root", &options.group);

    // 1. Account and group (Go step 4).
    if machine.gid(&options.group).is_none() {
        plan.changes.push(Change::CreateGroup {
            name: options.group.clone(),
        });
    }
    match machine.users.get(&options.user) {
        None => plan.changes.push(Change::CreateUser {
            name: options.user.clone(),
            group: options.group.clone(),
            shell: machine.nologin.clone(),
        }),
        // An account opkssh did not create is used as it is, never changed.
        Some(_) if !machine.is_member(&options.user, &options.group) => {
            if !machine.is_own_account(&options.user) {
                return Err(InstallError::ForeignAccount {
                    user: options.user.clone(),
                    group: options.group.clone(),
                });
            }
            plan.changes.push(Change::AddToGroup {
                user: options.user.clone(),
                group: options.group.clone(),
            });
        }
        Some(_) => {}
    }

    // 2. The binary (Go step 6): 0755 root:<group>.
    match &options.binary {
        Binary::Copy(source) => {
            let bytes = std::fs::read(source).map_err(io_error(source))?;
            let path = layout.path(&options.install_path);
            if let Some(parent) = path.parent()
                && attributes_of(parent)?.is_none()
            {
                plan.changes.push(Change::CreateDir {
                    path: parent.to_owned(),
                    mode: BINARY_MODE,
                    owner: Owner::root(),
                });
            }
            let previous = read_existing(&path)?;
            match &previous {
                Some(existing) if existing.contents == bytes => {
                    if existing.attributes.mode != BINARY_MODE
                        || !owner_matches(&existing.attributes, &group_owner, machine)
                    {
                        plan.changes.push(Change::SetAttributes {
                            path,
                            mode: BINARY_MODE,
                            owner: group_owner.clone(),
                            from: existing.attributes,
                        });
                    }
                }
                _ => plan.changes.push(Change::WriteFile {
                    path,
                    contents: bytes,
                    mode: BINARY_MODE,
                    owner: group_owner.clone(),
                    previous,
                    validation: Validation::None,
                    source: Some(source.clone()),
                }),
            }
        }
        Binary::Packaged => {
            let path = layout.path(PACKAGE_BINARY_PATH);
            if attributes_of(&path)?.is_none() {
                plan.warnings.push(format!(
                    "{} does not exist; sshd will run it to verify logins",
                    path.display()
                ));
            }
        }
    }

    // SELinux (Go step 7), before anything sshd runs is configured.
    plan_selinux(&mut plan, options, machine)?;

    // 3. /etc/opk (Go step 8). A package ships the files root:root: it sets their owner.
    ensure_dir(
        &mut plan,
        machine,
        layout.path(CONFIG_DIR),
        DIR_MODE,
        &group_owner,
        packaged,
    )?;
    ensure_dir(
        &mut plan,
        machine,
        layout.path(&format!("{CONFIG_DIR}/policy.d")),
        DIR_MODE,
        &group_owner,
        packaged,
    )?;
    for (name, contents) in [
        ("auth_id", ""),
        ("config.yml", ""),
        ("providers", DEFAULT_PROVIDERS),
    ] {
        ensure_policy_file(
            &mut plan,
            machine,
            layout.path(&format!("{CONFIG_DIR}/{name}")),
            contents,
            &group_owner,
            packaged,
        )?;
    }

    // 4. The log (Go step 12: always 0660 root:<group>) and the cache (ours).
    let log = layout.path(LOG_FILE);
    match attributes_of(&log)? {
        None => plan.changes.push(Change::WriteFile {
            path: log,
            contents: Vec::new(),
            mode: LOG_MODE,
            owner: group_owner.clone(),
            previous: None,
            validation: Validation::None,
            source: None,
        }),
        Some((_, file_type)) if !file_type.is_file() => {
            return Err(InstallError::Unexpected {
                path: log,
                reason: "exists and is not a regular file".into(),
            });
        }
        Some((attributes, _)) => {
            if attributes.mode != LOG_MODE || !owner_matches(&attributes, &group_owner, machine) {
                plan.changes.push(Change::SetAttributes {
                    path: log,
                    mode: LOG_MODE,
                    owner: group_owner.clone(),
                    from: attributes,
                });
            }
        }
    }
    ensure_dir(
        &mut plan,
        machine,
        layout.path(CACHE_DIR),
        CACHE_MODE,
        &Owner::new(&options.user, &options.group),
        true,
    )?;

    // 5. Home policies (Go step 11).
    plan_sudoers(&mut plan, machine, options)?;

    // 6. sshd (Go step 9).
    let directives = Directives::new(options.binary_path(), &options.user);
    let state = read_sshd(layout)?;
    let sshd_error = |error| InstallError::Sshd {
        dir: layout.path("/etc/ssh").display().to_string(),
        error,
    };
    let sshd = sshd_config::plan_install(
        &state.files,
        &directives,
        options.overwrite_config,
        options.chain,
    )
    .map_err(sshd_error)?;
    let chain = if options.chain {
        sshd_config::find_chain(&state.files, &directives).map_err(sshd_error)?
    } else {
        Chain::default()
    };
    sshd_changes(layout, &state, sshd, &mut plan);
    // config.yml is written before sshd's files: verify never runs without the chained command.
    plan_chain(&mut plan, options, machine, &chain)?;
    for (file, line) in sshd_unit::command_line_overrides(layout) {
        plan.warnings.push(format!(
            "{}: `{line}` gives sshd an AuthorizedKeysCommand on its command line, which wins over sshd_config and its drop-ins: sshd keeps running that command, not opkssh, until the override is gone (docs/server.md: move the command into sshd_config.d, where install-server keeps it)",
            file.display()
        ));
    }
    plan.expected_command = Some(format!("{} verify %u %k %t", options.binary_path()));
    plan_relabel(&mut plan, options, machine);
    if !plan.is_empty() {
        plan.log_record = Some(format!(
            "Successfully installed opkssh (VERSION_INSTALLED: opkssh version {}, BINARY: {}, HOME_POLICY: {}, OVERWRITE_CONFIG: {})",
            env!("CARGO_PKG_VERSION"),
            options.binary_path(),
            options.home_policy != HomePolicy::Off,
            options.overwrite_config
        ));
    }
    Ok(plan)
}

/// What `uninstall-server` would change: opkssh's sshd lines and drop-ins, the sudoers rule,
/// the cache, and as asked the binary, the account, `/etc/opk` and the log.
///
/// # Errors
/// An option that breaks its rule ([`UninstallOptions::check`]), or a file that cannot be read
/// or is not what it must be.
pub fn plan_uninstall(options: &UninstallOptions, machine: &Machine) -> Result<Plan, InstallError> {
    options.check()?;
    refuse_root(machine, &options.user, &options.group)?;
    let layout = &options.layout;
    let mut plan = Plan::default();

    let state = read_sshd(layout)?;
    let sshd = sshd_config::plan_uninstall(&state.files);
    sshd_changes(layout, &state, sshd, &mut plan);
    // The chained line goes once sshd runs the command itself again.
    if !options.purge {
        unchain(&mut plan, layout)?;
    }

    let sudoers = layout.path(&options.sudoers_path);
    if let Some(existing) = read_existing(&sudoers)? {
        let text = read_text(&existing, &sudoers)?;
        let remaining = sudoers_without_opkssh(&text, &options.user);
        if only_comments(&remaining) {
            plan.changes.push(Change::Remove {
                path: sudoers,
                previous: Some(existing),
                tree: false,
            });
        } else if remaining != text {
            plan.changes.push(Change::WriteFile {
                path: sudoers,
                contents: remaining.into_bytes(),
                mode: existing.attributes.mode,
                owner: Owner::of(&existing.attributes),
                previous: Some(existing),
                validation: Validation::Sudoers,
                source: None,
            });
        }
    }

    if !options.keep_selinux_module && machine.selinux.enabled && machine.selinux.has_module() {
        plan.changes.push(Change::SelinuxRemoveModule);
    }
    if options.remove_binary {
        let binary = layout.path(&options.install_path);
        if attributes_of(&binary)?.is_some() {
            plan.changes.push(Change::Remove {
                path: binary,
                previous: None,
                tree: false,
            });
        }
    }
    let mut trees = vec![layout.path(CACHE_DIR)];
    if options.purge {
        trees.push(layout.path(CONFIG_DIR));
    }
    for tree in trees {
        if attributes_of(&tree)?.is_some() {
            plan.changes.push(Change::Remove {
                path: tree,
                previous: None,
                tree: true,
            });
        }
    }
    let log = layout.path(LOG_FILE);
    if options.purge && attributes_of(&log)?.is_some() {
        plan.changes.push(Change::Remove {
            path: log.clone(),
            previous: None,
            tree: false,
        });
    }
    // Only what opkssh created goes: root, the distribution's system accounts and people's
    // accounts stay even when named, with a warning.
    if options.remove_user {
        if machine.users.contains_key(&options.user) {
            if machine.is_own_account(&options.user) {
                plan.changes.push(Change::DeleteUser {
                    name: options.user.clone(),
                });
            } else {
                plan.warnings.push(format!(
                    "kept user {}: opkssh did not create it (not a system account with the comment '{ACCOUNT_COMMENT}'); delete it yourself if it should go",
                    options.user
                ));
            }
        }
        if machine.gid(&options.group).is_some() {
            if machine.is_own_group(&options.group, &options.user) {
                plan.changes.push(Change::DeleteGroup {
                    name: options.group.clone(),
                });
            } else {
                plan.warnings.push(format!(
                    "kept group {}: opkssh cannot tell it created it; delete it yourself if it should go",
                    options.group
                ));
            }
        }
    }
    if !options.purge {
        for kept in [layout.path(CONFIG_DIR), log] {
            if attributes_of(&kept)?.is_some() {
                plan.warnings
                    .push(format!("kept {} (--purge removes it)", kept.display()));
            }
        }
    }
    Ok(plan)
}

/// How a plan turned out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Changes made.
    pub applied: usize,
    /// Things to tell the administrator (checks skipped, how sshd was reloaded, …).
    pub notes: Vec<String>,
}

/// Carries out a plan, reporting each change through `report` as it is made. sshd's files
/// come last and are checked with `sshd -t` when `environment` has sshd: if the check fails
/// (and passed before the change), they are put back as they were and the error says why.
///
/// # Errors
/// The first change that fails (changes made before it stay; running again continues), or a
/// refused sshd configuration.
pub fn apply(
    plan: &Plan,
    environment: &Environment,
    report: &mut dyn FnMut(&str),
) -> Result<Outcome, InstallError> {
    let mut outcome = Outcome::default();
    if plan.is_empty() {
        return Ok(outcome);
    }
    if !environment.accounts
        && let Some(change) = plan.all_changes().find(|change| {
            matches!(
                change,
                Change::CreateGroup { .. }
                    | Change::CreateUser { .. }
                    | Change::AddToGroup { .. }
                    | Change::DeleteUser { .. }
                    | Change::DeleteGroup { .. }
            )
        })
    {
        return Err(InstallError::AccountsOutsideRoot(change.summary()));
    }
    let before = if plan.sshd_changes.is_empty() {
        None
    } else {
        environment.sshd_test()
    };
    for change in &plan.changes {
        system::apply_change(change, environment)?;
        report(&change.summary());
        outcome.applied += 1;
    }
    let mut done: Vec<&Change> = Vec::new();
    for change in &plan.sshd_changes {
        if let Err(error) = system::apply_change(change, environment) {
            for problem in system::roll_back(&done) {
                report(&format!("could not restore: {problem}"));
            }
            return Err(error);
        }
        report(&change.summary());
        done.push(change);
        outcome.applied += 1;
    }
    if !plan.sshd_changes.is_empty() {
        match (before, environment.sshd_test()) {
            (_, None) => outcome.notes.push(
                "sshd was not found here, so the new configuration was not checked with sshd -t"
                    .into(),
            ),
            (_, Some(Ok(()))) => {
                if let Some(expected) = &plan.expected_command
                    && let Some(note) = environment.effective_command_note(expected)
                {
                    outcome.notes.push(note);
                }
                outcome.notes.push(environment.reload_sshd());
            }
            (Some(Ok(())) | None, Some(Err(mut output))) => {
                for problem in system::roll_back(&done) {
                    output.push_str(&format!("; could not restore: {problem}"));
                }
                return Err(InstallError::SshdRejected { output });
            }
            (Some(Err(_)), Some(Err(output))) => outcome.notes.push(format!(
                "sshd -t failed before these changes too, so sshd was not reloaded; fix the configuration, then reload sshd: {output}"
            )),
        }
    }
    for change in &plan.last_changes {
        system::apply_change(change, environment)?;
        report(&change.summary());
        outcome.applied += 1;
    }
    if let Some(record) = &plan.log_record {
        let log = environment.layout.path(LOG_FILE);
        if let Err(error) = system::append_log(&log, record) {
            outcome.notes.push(format!(
                "could not record the installation in {}: {error}",
                log.display()
            ));
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
