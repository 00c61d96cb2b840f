//! What the installer learns from and does to the running system: accounts, tools (`useradd`,
//! `visudo`, `sshd`), and carrying out each [`Change`].

use super::{
    ACCOUNT_COMMENT, AUTH_CMD_USER, Attributes, Change, Existing, InstallError, Layout, Owner,
    SSHD_CONFIG, Validation, io_error,
};
use crate::files;
use crate::selinux::{self, SelinuxHost};
use crate::tools::{output_text, run_program, tool_path};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SUDO_PATHS: [&str; 3] = ["/usr/bin/sudo", "/bin/sudo", "/usr/local/bin/sudo"];
const NOLOGIN_SHELLS: [&str; 2] = ["/usr/sbin/nologin", "/sbin/nologin"];
const SSHD_PID_FILES: [&str; 2] = ["/run/sshd.pid", "/var/run/sshd.pid"];
const SSHD_UNITS: [&str; 2] = ["ssh.service", "sshd.service"];

/// The accounts and tools a plan depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// User name → (uid, primary gid).
    pub users: BTreeMap<String, (u32, u32)>,
    /// Group name → (gid, supplementary members).
    pub groups: BTreeMap<String, (u32, Vec<String>)>,
    /// User name → its comment (GECOS), where it has one.
    pub comments: BTreeMap<String, String>,
    /// `UID_MIN`: accounts below it are system accounts (0 in a `Machine` built by hand: then
    /// no existing account counts as opkssh's own).
    pub uid_min: u32,
    /// Whether sudo is installed.
    pub sudo: bool,
    /// The shell given to a new system account.
    pub nologin: String,
    /// SELinux's state.
    pub selinux: SelinuxHost,
}

impl Machine {
    /// Looks up `root` and `names` (users and groups) in the system's databases, and sudo and
    /// a nologin shell under the layout's root.
    pub fn probe(layout: &Layout, names: &[&str]) -> Self {
        let mut machine = Self {
            sudo: SUDO_PATHS.iter().any(|path| layout.path(path).is_file()),
            nologin: NOLOGIN_SHELLS
                .iter()
                .find(|shell| layout.path(shell).exists())
                .map_or("/bin/false", |shell| shell)
                .to_owned(),
            selinux: SelinuxHost::probe(layout),
            uid_min: policy::login_defs::uid_min(),
            ..Self::default()
        };
        for name in std::iter::once(&"root").chain(names) {
            if let Ok(Some(user)) = opk_os::account::user_by_name(name) {
                machine
                    .users
                    .insert((*name).to_owned(), (user.uid, user.gid));
                if let Some(comment) = user.comment {
                    machine.comments.insert((*name).to_owned(), comment);
                }
            }
            if let Ok(Some(group)) = opk_os::account::group_by_name(name) {
                machine
                    .groups
                    .insert((*name).to_owned(), (group.gid, group.members));
            }
        }
        machine
    }

    /// A user's uid (a number stands for itself).
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users
            .get(name)
            .map(|(uid, _)| *uid)
            .or_else(|| name.parse().ok())
    }

    /// A group's gid (a number stands for itself).
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups
            .get(name)
            .map(|(gid, _)| *gid)
            .or_else(|| name.parse().ok())
    }

    /// Whether `name` is the account opkssh made for the verifier, the only existing account
    /// it changes or deletes. `useradd --system` gave it a uid between 1 and `UID_MIN`, and
    /// opkssh's useradd gave it the comment [`ACCOUNT_COMMENT`]; an account named
    /// [`AUTH_CMD_USER`] counts too, since the Go installer creates it under that name without
    /// a comment. Root, the distribution's system accounts (daemon, sshd, nobody…) and
    /// people's accounts are none of these.
    pub fn is_own_account(&self, name: &str) -> bool {
        let Some((uid, _)) = self.users.get(name) else {
            return false;
        };
        let system = *uid != 0 && *uid < self.uid_min;
        let marked = self
            .comments
            .get(name)
            .is_some_and(|comment| comment == ACCOUNT_COMMENT);
        system && (marked || name == AUTH_CMD_USER)
    }

    /// Whether `group` is the group opkssh made with its account: not root's, and named
    /// [`AUTH_CMD_USER`] or as opkssh's own account `user` (`groups` has no comment to mark it
    /// by, so a group of another name is left alone).
    pub fn is_own_group(&self, group: &str, user: &str) -> bool {
        self.gid(group).is_some_and(|gid| gid != 0)
            && (group == AUTH_CMD_USER || (group == user && self.is_own_account(user)))
    }

    /// Whether `user` is in `group`, as its primary group or a supplementary one.
    pub fn is_member(&self, user: &str, group: &str) -> bool {
        let Some((gid, members)) = self.groups.get(group) else {
            return false;
        };
        self.users
            .get(user)
            .is_some_and(|(_, primary)| primary == gid)
            || members.iter().any(|member| member == user)
    }
}

/// How changes are carried out: where, and with which checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Where the files are.
    pub layout: Layout,
    /// Whether accounts may be created or deleted (only on the real machine).
    pub accounts: bool,
    /// sshd, for `sshd -t` after sshd's files change (none: not checked).
    pub sshd: Option<PathBuf>,
    /// visudo, to check a sudoers file before it is written (none: not checked).
    pub visudo: Option<PathBuf>,
    /// Reload sshd once its new configuration passed `sshd -t`.
    pub reload: bool,
}

impl Environment {
    /// The running system's tools for `layout`. Outside `/`, sshd is neither checked nor
    /// reloaded and accounts are left alone.
    pub fn probe(layout: Layout, reload: bool) -> Self {
        let system = layout.is_system();
        Self {
            accounts: system,
            sshd: tool_path("sshd").filter(|_| system),
            visudo: tool_path("visudo"),
            reload: reload && system,
            layout,
        }
    }

    fn sshd_config(&self) -> PathBuf {
        self.layout.path(SSHD_CONFIG)
    }

    /// `sshd -t`: `None` without sshd, else whether it accepts the configuration (its
    /// output if not).
    pub(crate) fn sshd_test(&self) -> Option<Result<(), String>> {
        let sshd = self.sshd.as_ref()?;
        let output = Command::new(sshd)
            .arg("-t")
            .arg("-f")
            .arg(self.sshd_config())
            .stdin(Stdio::null())
            .output();
        Some(match output {
            Ok(output) if output.status.success() => Ok(()),
            Ok(output) => Err(output_text(&output)),
            Err(error) => Err(format!("{}: {error}", sshd.display())),
        })
    }

    /// A note if `sshd -T` shows another `AuthorizedKeysCommand` than `expected` in force.
    pub(crate) fn effective_command_note(&self, expected: &str) -> Option<String> {
        let sshd = self.sshd.as_ref()?;
        let output = Command::new(sshd)
            .arg("-T")
            .arg("-f")
            .arg(self.sshd_config())
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|output| output.status.success())?;
        let text = String::from_utf8_lossy(&output.stdout);
        let effective = text
            .lines()
            .find_map(|line| line.strip_prefix("authorizedkeyscommand "))
            .unwrap_or("none");
        (effective != expected).then(|| {
            format!(
                "warning: sshd -T reports AuthorizedKeysCommand {effective}, not {expected}: another setting takes precedence (a Match block or an Include elsewhere?)"
            )
        })
    }

    /// Makes a running sshd read its new configuration: `systemctl reload` under systemd, else
    /// SIGHUP to the pid in `/run/sshd.pid`. Returns what it did (or why not) for the
    /// administrator. The Go installer restarts sshd; a reload is enough, since sshd re-reads
    /// its configuration on SIGHUP and open sessions are not touched either way.
    pub(crate) fn reload_sshd(&self) -> String {
        if !self.reload {
            return "sshd was not reloaded: its new configuration applies once it is reloaded (systemctl reload ssh, or SIGHUP to sshd)".into();
        }
        if Path::new("/run/systemd/system").is_dir()
            && let Some(systemctl) = tool_path("systemctl")
        {
            for unit in SSHD_UNITS {
                let active = Command::new(&systemctl)
                    .args(["is-active", "--quiet", unit])
                    .stdin(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success());
                if !active {
                    continue;
                }
                return match Command::new(&systemctl)
                    .args(["reload", unit])
                    .stdin(Stdio::null())
                    .output()
                {
                    Ok(output) if output.status.success() => {
                        format!("reloaded sshd (systemctl reload {unit})")
                    }
                    Ok(output) => format!(
                        "warning: systemctl reload {unit} failed: {}",
                        output_text(&output)
                    ),
                    Err(error) => format!("warning: running systemctl: {error}"),
                };
            }
            return "no ssh or sshd service is active: sshd reads the new configuration when it starts".into();
        }
        for pid_file in SSHD_PID_FILES {
            let Ok(text) = std::fs::read_to_string(pid_file) else {
                continue;
            };
            let Ok(pid) = text.trim().parse::<i32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !comm.trim().starts_with("sshd") {
                continue;
            }
            return match opk_os::process::hang_up(pid) {
                Ok(()) => format!("reloaded sshd (SIGHUP to pid {pid} from {pid_file})"),
                Err(error) => format!("warning: SIGHUP to sshd pid {pid}: {error}"),
            };
        }
        "found no running sshd (no systemd, no /run/sshd.pid): sshd reads the new configuration when it starts".into()
    }
}

fn run(name: &str, args: &[&str]) -> Result<(), InstallError> {
    let program = tool_path(name).unwrap_or_else(|| PathBuf::from(name));
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    run_program(&program, name, &args)
}

fn resolve(owner: &Owner) -> Result<(u32, u32), InstallError> {
    let uid = match owner.user.parse() {
        Ok(uid) => uid,
        Err(_) => match opk_os::account::user_by_name(&owner.user) {
            Ok(Some(user)) => user.uid,
            _ => {
                return Err(InstallError::NoAccount {
                    kind: "user",
                    name: owner.user.clone(),
                });
            }
        },
    };
    let gid = match owner.group.parse() {
        Ok(gid) => gid,
        Err(_) => match opk_os::account::group_by_name(&owner.group) {
            Ok(Some(group)) => group.gid,
            _ => {
                return Err(InstallError::NoAccount {
                    kind: "group",
                    name: owner.group.clone(),
                });
            }
        },
    };
    Ok((uid, gid))
}

/// `visudo -c -f -` on `contents`.
fn check_sudoers(visudo: &Path, path: &Path, contents: &[u8]) -> Result<(), InstallError> {
    let rejected = |output: String| InstallError::SudoersRejected {
        path: path.to_owned(),
        output,
    };
    let mut child = Command::new(visudo)
        .args(["-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| rejected(format!("running {}: {error}", visudo.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(contents)
            .map_err(|error| rejected(format!("writing to visudo: {error}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| rejected(format!("waiting for visudo: {error}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(rejected(output_text(&output)))
    }
}

fn restore(path: &Path, existing: &Existing) -> Result<(), InstallError> {
    let Attributes { mode, uid, gid } = existing.attributes;
    files::write_atomic_owned(path, &existing.contents, mode, Some((uid, gid)))
        .map_err(InstallError::from)
}

/// Gives the file or folder at `path` its owner, then its mode, through one descriptor opened
/// without following a symlink: path-based `chown`/`chmod` follow one, so whoever can write to
/// the folder (a group-writable `/var/log`) could swap the log for a link to `/etc/shadow`
/// between the plan's check and this change, and have it handed to opkssh's group.
fn set_attributes(path: &Path, mode: u32, (uid, gid): (u32, u32)) -> Result<(), InstallError> {
    // No blocking on a FIFO put in its place; it is refused below.
    let (file, metadata) = opk_os::file::open_for_reading(path, true).map_err(|error| match error {
        opk_os::file::OpenError::Symlink => InstallError::Unexpected {
            path: path.to_owned(),
            reason: "is a symlink (put there since the plan was made); its owner and mode were left alone".into(),
        },
        opk_os::file::OpenError::Io(error) => io_error(path)(error),
    })?;
    let file_type = metadata.file_type();
    if !(file_type.is_file() || file_type.is_dir()) {
        return Err(InstallError::Unexpected {
            path: path.to_owned(),
            reason: "is neither a regular file nor a folder; its owner and mode were left alone"
                .into(),
        });
    }
    opk_os::file::set_owner_and_mode(&file, Some((uid, gid)), mode).map_err(io_error(path))
}

/// Carries out one change.
pub(crate) fn apply_change(change: &Change, environment: &Environment) -> Result<(), InstallError> {
    match change {
        Change::CreateGroup { name } => run("groupadd", &["--system", name]),
        Change::CreateUser { name, group, shell } => run(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--comment",
                ACCOUNT_COMMENT,
                "--shell",
                shell,
                "--gid",
                group,
                name,
            ],
        ),
        Change::AddToGroup { user, group } => run("usermod", &["-aG", group, user]),
        Change::CreateDir { path, mode, owner } => {
            let owner = resolve(owner)?;
            // Private until it has its owner, then its mode.
            opk_os::file::dir_builder(0o700)
                .create(path)
                .map_err(io_error(path))?;
            set_attributes(path, *mode, owner)
        }
        Change::WriteFile {
            path,
            contents,
            mode,
            owner,
            validation,
            ..
        } => {
            if *validation == Validation::Sudoers
                && let Some(visudo) = &environment.visudo
            {
                check_sudoers(visudo, path, contents)?;
            }
            let owner = resolve(owner)?;
            files::write_atomic_owned(path, contents, *mode, Some(owner))
                .map_err(InstallError::from)
        }
        Change::SetAttributes {
            path, mode, owner, ..
        } => set_attributes(path, *mode, resolve(owner)?),
        Change::Remove { path, tree, .. } => {
            let result = if *tree {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            match result {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    Err(io_error(path)(error))
                }
                _ => Ok(()),
            }
        }
        Change::DeleteUser { name } => run("userdel", &[name]),
        Change::SelinuxModule { source } => selinux::install_module(&environment.layout, source),
        Change::SelinuxBoolean { name } => selinux::enable_boolean(&environment.layout, name),
        Change::SelinuxRelabel { paths } => selinux::relabel(&environment.layout, paths),
        Change::SelinuxRemoveModule => selinux::remove_module(&environment.layout),
        Change::DeleteGroup { name } => {
            if matches!(opk_os::account::group_by_name(name), Ok(Some(_))) {
                run("groupdel", &[name])
            } else {
                Ok(())
            }
        }
    }
}

/// Undoes applied sshd changes, newest first; returns what could not be undone.
pub(crate) fn roll_back(done: &[&Change]) -> Vec<String> {
    let mut problems = Vec::new();
    for change in done.iter().rev() {
        let result = match change {
            Change::WriteFile {
                path,
                previous: Some(existing),
                ..
            }
            | Change::Remove {
                path,
                previous: Some(existing),
                ..
            } => restore(path, existing),
            Change::WriteFile {
                path,
                previous: None,
                ..
            } => std::fs::remove_file(path).map_err(io_error(path)),
            Change::CreateDir { path, .. } => std::fs::remove_dir(path).map_err(io_error(path)),
            _ => Ok(()),
        };
        if let Err(error) = result {
            problems.push(error.to_string());
        }
    }
    problems
}

/// Appends one timestamped line to the log, never through a symlink put in its place.
pub(crate) fn append_log(path: &Path, record: &str) -> std::io::Result<()> {
    let mut file = opk_os::file::Guards::CAREFUL
        .options()
        .append(true)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let line = format!(
        "{} {record}\n",
        opk_os::time::timestamp(std::time::SystemTime::now())
    );
    file.write_all(line.as_bytes())
}
