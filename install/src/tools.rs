//! Running the system's tools (`useradd`, `visudo`, `semodule`…): where they are and how their
//! failures read.

use crate::InstallError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Folders searched for system tools, so that a maintainer script's or sudo's `PATH` does
/// not matter.
const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// A system tool by name, from the usual folders.
pub(crate) fn tool_path(name: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

pub(crate) fn output_text(output: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(stdout.trim());
    }
    if text.is_empty() {
        text = format!("exit status {}", output.status);
    }
    text
}

/// Runs `program` (shown as `name` in errors) with `args`, no stdin; an error names the
/// command line and carries its output.
pub(crate) fn run_program(
    program: &Path,
    name: &str,
    args: &[&std::ffi::OsStr],
) -> Result<(), InstallError> {
    let command_line = std::iter::once(name.to_owned())
        .chain(args.iter().map(|arg| arg.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| InstallError::Command {
            command: command_line.clone(),
            output: format!("{}: {error}", program.display()),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(InstallError::Command {
            command: command_line,
            output: output_text(&output),
        })
    }
}
