//! The rules every value given to the installer must pass before anything is planned: account
//! names, paths and booleans, from flags or from `install-linux.sh`'s `OPKSSH_INSTALL_*`
//! variables. Each value ends up in sshd's configuration, a sudoers rule, a `useradd` or
//! `userdel` command line or a path written as root, so one with a newline, a space or a `..`
//! would say more than the administrator meant (issue 18, item 6).

use std::fmt;

/// The longest account name `useradd` accepts.
pub const ACCOUNT_NAME_MAX: usize = 32;

/// What is wrong with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueError {
    /// Not an account name `useradd` would create by default.
    AccountName,
    /// A path that does not start with `/`.
    NotAbsolute,
    /// A path with a `..` component (it could leave the folder it names, or the install root).
    ParentComponent,
    /// A control character (a newline ends a line of sshd_config or sudoers).
    ControlCharacter,
    /// Whitespace in a path sshd and sudo run (their lines split at it).
    Whitespace,
    /// Not a plain file name (`/`, `.` or `..`).
    FileName,
    /// Neither `true` nor `false`.
    NotBoolean,
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// Root's account or group (uid or gid 0).
    Root,
}

impl fmt::Display for ValueError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::AccountName => {
                "must be an account name: a lowercase letter or _, then up to 31 lowercase letters, digits, _ or -"
            }
            Self::NotAbsolute => "must be an absolute path",
            Self::ParentComponent => "must not contain a .. component",
            Self::ControlCharacter => "must not contain control characters",
            Self::Whitespace => "must not contain spaces (sshd and sudo split the command at them)",
            Self::FileName => "must be a file name, without / and not . or ..",
            Self::NotBoolean => "must be true or false",
            Self::NotUtf8 => "must be UTF-8 text",
            Self::Root => {
                "must not be root's account or group: sshd never runs opkssh verify as root, and opkssh never changes or deletes root"
            }
        })
    }
}

impl std::error::Error for ValueError {}

/// An account (user or group) name as `useradd` and `groupadd` accept it without `--badname`:
/// `[a-z_][a-z0-9_-]{0,31}`. Stricter than [`policy::is_safe_principal`] (which every such name
/// also passes): no `.`, `@`, `+` or `$`, which sudoers reads as syntax, and no name made of
/// digits only, which tools read as a uid.
///
/// # Errors
/// [`ValueError::AccountName`].
pub fn check_account_name(name: &str) -> Result<(), ValueError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if first_ok && rest_ok && name.len() <= ACCOUNT_NAME_MAX && policy::is_safe_principal(name) {
        Ok(())
    } else {
        Err(ValueError::AccountName)
    }
}

/// A path on the machine: absolute, no `..` component, no control character.
///
/// # Errors
/// The first rule it breaks.
pub fn check_path(path: &str) -> Result<(), ValueError> {
    if path.chars().any(char::is_control) {
        return Err(ValueError::ControlCharacter);
    }
    if !path.starts_with('/') {
        return Err(ValueError::NotAbsolute);
    }
    if path.split('/').any(|component| component == "..") {
        return Err(ValueError::ParentComponent);
    }
    Ok(())
}

/// A folder sshd and sudo run the binary from: [`check_path`], and no whitespace, since
/// `AuthorizedKeysCommand` and a sudoers command split at it.
///
/// # Errors
/// The first rule it breaks.
pub fn check_command_dir(path: &str) -> Result<(), ValueError> {
    check_path(path)?;
    if path.contains(char::is_whitespace) {
        return Err(ValueError::Whitespace);
    }
    Ok(())
}

/// The binary's file name inside its folder.
///
/// # Errors
/// The first rule it breaks.
pub fn check_file_name(name: &str) -> Result<(), ValueError> {
    if name.chars().any(char::is_control) {
        return Err(ValueError::ControlCharacter);
    }
    if name.contains(char::is_whitespace) {
        return Err(ValueError::Whitespace);
    }
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(ValueError::FileName);
    }
    Ok(())
}

/// `true` or `false`, exactly. `install-linux.sh` reads anything but `true` as false, so `yes`
/// or `1` silently meant false there; here it is refused.
///
/// # Errors
/// [`ValueError::NotBoolean`].
pub fn parse_boolean(value: &str) -> Result<bool, ValueError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ValueError::NotBoolean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for good in ["opksshuser", "_opk", "fleet-verify2", "a", &"a".repeat(32)] {
            assert_eq!(check_account_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "opksshuser\nPermitRootLogin yes",
            "opk user",
            "Opk",
            "1000",
            "-opk",
            "opk.user",
            "opk@example",
            "+netgroup",
            "%group",
            "opk$",
            "opk:x",
            "ópk",
            &"a".repeat(33),
        ] {
            assert_eq!(
                check_account_name(bad),
                Err(ValueError::AccountName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths() {
        assert_eq!(check_path("/etc/sudoers.d/opkssh"), Ok(()));
        assert_eq!(check_path("/opt/my tools/opkssh"), Ok(()));
        assert_eq!(check_path("etc/sudoers.d/x"), Err(ValueError::NotAbsolute));
        assert_eq!(check_path(""), Err(ValueError::NotAbsolute));
        assert_eq!(
            check_path("/etc/sudoers.d/../shadow"),
            Err(ValueError::ParentComponent)
        );
        assert_eq!(
            check_path("/etc/x\nPermitRootLogin yes"),
            Err(ValueError::ControlCharacter)
        );
        assert_eq!(
            check_path("/etc/\x1b[2Jx"),
            Err(ValueError::ControlCharacter)
        );
        assert_eq!(
            check_command_dir("/opt/my tools"),
            Err(ValueError::Whitespace)
        );
        assert_eq!(check_command_dir("/opt/bin/"), Ok(()));
        assert_eq!(check_file_name("opk-verify"), Ok(()));
        for bad in ["", ".", "..", "a/b"] {
            assert_eq!(check_file_name(bad), Err(ValueError::FileName), "{bad:?}");
        }
        assert_eq!(check_file_name("a b"), Err(ValueError::Whitespace));
        assert_eq!(check_file_name("a\tb"), Err(ValueError::ControlCharacter));
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_boolean("true"), Ok(true));
        assert_eq!(parse_boolean("false"), Ok(false));
        for bad in ["yes", "1", "TRUE", "True", "true ", "no", "0"] {
            assert_eq!(parse_boolean(bad), Err(ValueError::NotBoolean), "{bad:?}");
        }
    }
}
