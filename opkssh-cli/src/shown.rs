//! How the client commands show what their messages quote ([`opk_core::escape`]): a path by the
//! path rule of the system it names, so that a Windows path keeps its single backslashes, and
//! every other outside value (a provider's answer, a claim, a file's contents, a library error's
//! words) by the line rule. A message is built from pieces escaped where each is put in, and is
//! then printed as it is. A library error that names files is shown with the paths it names
//! ([`escape::line_naming`]).
//!
//! The system is a value so that the Windows rule runs in tests on any machine.

use opk_client::agent::AgentError;
use opk_client::files::WriteError;
use opk_client::placement::PlacementError;
use opk_core::escape;
use opk_os::System;
use std::fmt::Display;
use std::path::Path;

/// The escaping rules of one system.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown {
    separator: char,
}

impl Shown {
    /// This system's.
    pub(crate) fn current() -> Self {
        Self::on(System::CURRENT)
    }

    /// `system`'s.
    pub(crate) fn on(system: System) -> Self {
        Self {
            separator: system.path_separator(),
        }
    }

    /// A path: controls escaped, the system's separator kept.
    pub(crate) fn path(self, path: &Path) -> String {
        escape::path_for(path, self.separator)
    }

    /// Outside text, or words made elsewhere that name no file: every control, bidirectional
    /// character and backslash escaped.
    pub(crate) fn text(self, text: &dyn Display) -> String {
        escape::line(&text.to_string()).into_owned()
    }

    /// Words made elsewhere that name the files `paths`: those print as paths, the rest as
    /// [`Self::text`].
    pub(crate) fn naming(self, text: &dyn Display, paths: &[&Path]) -> String {
        escape::line_naming_for(&text.to_string(), paths, self.separator)
    }

    /// A key-placement error, with the files it names.
    pub(crate) fn placement(self, error: &PlacementError) -> String {
        self.naming(error, &error.paths())
    }

    /// A file-writing error, with the file it names.
    pub(crate) fn write(self, error: &WriteError) -> String {
        self.naming(error, &error.path().into_iter().collect::<Vec<_>>())
    }

    /// An ssh-agent error, with the socket or pipe it names.
    pub(crate) fn agent(self, error: &AgentError) -> String {
        self.naming(error, &error.path().into_iter().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opk_client::placement::Skipped;
    use std::path::PathBuf;

    const WINDOWS: Shown = Shown { separator: '\\' };

    #[test]
    fn windows_paths_in_library_errors_keep_single_backslashes() {
        let pipe = PathBuf::from(opk_os::agent::WINDOWS_AGENT_PIPE);
        let unreachable = AgentError::Unreachable {
            path: pipe,
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert_eq!(
            WINDOWS.agent(&unreachable),
            r"cannot reach the ssh-agent at \\.\pipe\openssh-ssh-agent: entity not found"
        );

        let key = PathBuf::from(r"C:\Users\Zoë\.ssh\id_ecdsa");
        let no_free = PlacementError::NoFreeName(vec![Skipped {
            key_path: key.clone(),
            // As check_default_pair words it, quoting the certificate file's contents.
            reason: format!(
                r"could not parse certificate {}-cert.pub: comment C:\x{}",
                key.display(),
                "\u{1b}[2K"
            ),
        }]);
        let shown = WINDOWS.placement(&no_free);
        assert!(
            shown.starts_with(
                r"no default ssh key file free for openpubkey (C:\Users\Zoë\.ssh\id_ecdsa: could not parse certificate C:\Users\Zoë\.ssh\id_ecdsa-cert.pub: comment C:\\x\x1b[2K); "
            ),
            "{shown}"
        );
    }

    #[test]
    fn outside_text_is_escaped_on_every_system() {
        for shown in [WINDOWS, Shown::on(System::Unix)] {
            assert_eq!(
                shown.text(&"denied\\n\r\n\u{202e}"),
                r"denied\\n\r\n\u{202e}"
            );
        }
        assert_eq!(
            Shown::on(System::Unix).path(Path::new(r"/home/a\b")),
            r"/home/a\\b"
        );
    }

    #[test]
    fn on_unix_a_library_error_shows_as_the_line_rule_shows_it() {
        let error = AgentError::Unreachable {
            path: PathBuf::from("/tmp/a\nb/agent.sock"),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert_eq!(
            Shown::on(System::Unix).agent(&error),
            escape::line(&error.to_string())
        );
    }
}
