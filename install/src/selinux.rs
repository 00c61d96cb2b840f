//! SELinux, as the Go installer's `check_selinux` (behaviour.md §5.1 step 7): on a host where
//! SELinux is enabled, sshd runs `opkssh verify` in the `sshd_t` domain, which may not reach
//! an OpenID provider until the `opkssh` policy module is loaded. The installer loads it
//! (`semodule -i`), turns on the module's booleans the options ask for (`setsebool -P`), and
//! relabels what it wrote (`restorecon`); the uninstaller removes the module (`semodule -r`).
//!
//! Outside `/` (tests) the tools are looked up on `PATH` only, never in the system folders, so
//! that a test's stand-ins are run and the machine's real policy is never touched.

use crate::tools::{run_program, tool_path};
use crate::{InstallError, Layout, io_error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The module's name (Go's too: loading ours replaces a module the Go installer loaded).
pub const MODULE_NAME: &str = "opkssh";
/// Where the packages put the compiled module.
pub const PACKAGED_MODULE: &str = "/usr/share/selinux/packages/opkssh.pp";
/// The module's source, compiled at install time when no package shipped it compiled.
pub const MODULE_SOURCE: &str = include_str!("../selinux/opkssh.te");
/// Lets `sshd_t` run sudo, for home policies.
pub const BOOL_HOME: &str = "opkssh_enable_home";
/// Lets `sshd_t` connect to Squid ports.
pub const BOOL_SQUID: &str = "opkssh_enable_squid";
/// Lets `sshd_t` connect to HTTP cache ports.
pub const BOOL_PROXY: &str = "opkssh_enable_proxy";

/// What the administrator asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelinuxOptions {
    /// Leave SELinux alone even where it is enabled (`--no-selinux`).
    pub skip: bool,
    /// Turn on [`BOOL_SQUID`] (`--selinux-enable-squid`).
    pub squid: bool,
    /// Turn on [`BOOL_PROXY`] (`--selinux-enable-proxy`).
    pub proxy: bool,
    /// Compile and load this type enforcement file (`--install-te-from`) instead of ours.
    pub te_file: Option<PathBuf>,
}

/// Where the module to load comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// A compiled policy package (the one a package shipped).
    Compiled(PathBuf),
    /// A type enforcement file, compiled with `checkmodule` and `semodule_package`.
    Source(PathBuf),
    /// [`MODULE_SOURCE`], compiled likewise.
    BuiltIn,
}

/// SELinux on the machine, as far as the installer needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelinuxHost {
    /// Enabled (enforcing or permissive).
    pub enabled: bool,
    /// Loaded modules, by name.
    pub modules: Vec<String>,
    /// The module's booleans and whether each is on (absent: unknown, e.g. no module yet).
    pub booleans: BTreeMap<String, bool>,
}

impl SelinuxHost {
    /// Reads SELinux's state: enabled if `sys/fs/selinux/enforce` exists under the root or, on
    /// the real machine, `getenforce` says Enforcing or Permissive.
    pub fn probe(layout: &Layout) -> Self {
        let enabled = layout.path("/sys/fs/selinux/enforce").exists()
            || (layout.is_system()
                && tool(layout, "getenforce")
                    .and_then(|getenforce| read_output(&getenforce, &[]))
                    .is_some_and(|mode| matches!(mode.trim(), "Enforcing" | "Permissive")));
        if !enabled {
            return Self::default();
        }
        let modules = tool(layout, "semodule")
            .and_then(|semodule| read_output(&semodule, &["-l"]))
            .map(|text| {
                text.lines()
                    .filter_map(|line| line.split_whitespace().next())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut booleans = BTreeMap::new();
        if let Some(getsebool) = tool(layout, "getsebool") {
            for name in [BOOL_HOME, BOOL_SQUID, BOOL_PROXY] {
                // "opkssh_enable_home --> on"; fails while the module is not loaded.
                if let Some(text) = read_output(&getsebool, &[name]) {
                    booleans.insert(name.to_owned(), text.trim().ends_with("--> on"));
                }
            }
        }
        Self {
            enabled,
            modules,
            booleans,
        }
    }

    /// Whether the `opkssh` module is loaded.
    pub fn has_module(&self) -> bool {
        self.modules.iter().any(|module| module == MODULE_NAME)
    }
}

fn read_output(program: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    String::from_utf8(output.stdout).ok()
}

/// An SELinux tool: from the system folders on the real machine, else only from `PATH`.
pub(crate) fn tool(layout: &Layout, name: &str) -> Option<PathBuf> {
    if layout.is_system() {
        return tool_path(name);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The tools a change needs; the error names the missing ones and the Debian/RHEL package.
pub(crate) fn require_tools(layout: &Layout, names: &[&str]) -> Result<(), InstallError> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| tool(layout, name).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(InstallError::SelinuxTools {
            missing: missing.join(", "),
        })
    }
}

fn run(layout: &Layout, name: &str, args: &[&std::ffi::OsStr]) -> Result<(), InstallError> {
    let program = tool(layout, name).ok_or_else(|| InstallError::SelinuxTools {
        missing: name.to_owned(),
    })?;
    run_program(&program, name, args)
}

/// A private folder for compiling the module, removed when dropped. semodule names a module
/// after its file, so the files inside must be called `opkssh.*`.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Result<Self, InstallError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("opkssh-selinux-{}-{nanos}", std::process::id()));
        opk_os::file::dir_builder(0o700)
            .create(&path)
            .map_err(io_error(&path))?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `semodule -i` of the module, compiled first from source if need be.
pub(crate) fn install_module(layout: &Layout, source: &ModuleSource) -> Result<(), InstallError> {
    let compiled;
    let work;
    let package: &Path = match source {
        ModuleSource::Compiled(path) => path,
        ModuleSource::Source(_) | ModuleSource::BuiltIn => {
            work = WorkDir::new()?;
            let te = work.0.join("opkssh.te");
            let text = match source {
                ModuleSource::Source(path) => std::fs::read(path).map_err(io_error(path))?,
                _ => MODULE_SOURCE.as_bytes().to_vec(),
            };
            std::fs::write(&te, text).map_err(io_error(&te))?;
            let module = work.0.join("opkssh.mod");
            compiled = work.0.join("opkssh.pp");
            run(
                layout,
                "checkmodule",
                &[
                    "-M".as_ref(),
                    "-m".as_ref(),
                    "-o".as_ref(),
                    module.as_os_str(),
                    te.as_os_str(),
                ],
            )?;
            run(
                layout,
                "semodule_package",
                &[
                    "-o".as_ref(),
                    compiled.as_os_str(),
                    "-m".as_ref(),
                    module.as_os_str(),
                ],
            )?;
            &compiled
        }
    };
    run(layout, "semodule", &["-i".as_ref(), package.as_os_str()])
}

/// `setsebool -P <name> on`.
pub(crate) fn enable_boolean(layout: &Layout, name: &str) -> Result<(), InstallError> {
    run(
        layout,
        "setsebool",
        &["-P".as_ref(), name.as_ref(), "on".as_ref()],
    )
}

/// `restorecon` on those of `paths` that exist.
pub(crate) fn relabel(layout: &Layout, paths: &[PathBuf]) -> Result<(), InstallError> {
    let existing: Vec<&std::ffi::OsStr> = paths
        .iter()
        .filter(|path| std::fs::symlink_metadata(path).is_ok())
        .map(|path| path.as_os_str())
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    run(layout, "restorecon", &existing)
}

/// `semodule -r opkssh`.
pub(crate) fn remove_module(layout: &Layout) -> Result<(), InstallError> {
    run(layout, "semodule", &["-r".as_ref(), MODULE_NAME.as_ref()])
}
