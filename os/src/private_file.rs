//! Private keys only their user can read, as `ssh` demands before it uses one, and the same
//! check made ahead of `ssh`.
//!
//! - **Unix:** the mode. A key is written 0600 ([`crate::atomic_file`] gives the mode before
//!   any byte is written); `ssh` refuses a key its user owns whose mode lets the group or
//!   others in, and so does [`check`].
//! - **Windows:** the ACL. Win32-OpenSSH's `ssh.exe` refuses a key that anyone but the user,
//!   SYSTEM, Administrators or TrustedInstaller may use ([`crate::acl::rules::private_key`]).
//!   [`restrict`] gives the file an ACL of the user and SYSTEM only with `icacls`, named by SID
//!   (the user's from `whoami /user`), then reads it back (`icacls /save`) and checks it; the
//!   code stays free of `unsafe`, which the Win32 security API would need. Where those tools
//!   do not work, nothing can be made sure of: Wine's `icacls` changes and saves nothing and its
//!   `whoami` prints no SID. The answer is then [`Privacy::Unchecked`], saying why, so that the
//!   caller warns instead of failing a login over a check it cannot make; the file keeps the
//!   ACL it inherited from its folder (in `%USERPROFILE%\.ssh`, the user's, SYSTEM's and
//!   Administrators').

use std::path::{Path, PathBuf};

/// How far a file is known to be private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privacy {
    /// Checked: only the user (and on Windows SYSTEM, Administrators, TrustedInstaller) may
    /// use it.
    Private,
    /// This system could not tell (Windows whose `icacls` or `whoami` does not work): why.
    Unchecked(String),
}

/// Why a file is not private, or could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// Others may use it.
    #[error("{path}: others may use this private key: {why}")]
    NotPrivate {
        /// The file.
        path: PathBuf,
        /// Who, or what else is wrong.
        why: String,
    },
    /// It could not be inspected.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Makes the (new, still empty) file at `path` private to its user. Unix: nothing to do, the
/// mode given at creation does it. Windows: the ACL of the user and SYSTEM only, set and read
/// back.
///
/// # Errors
/// [`PrivacyError::NotPrivate`] when the ACL read back still lets others in.
pub fn restrict(path: &Path) -> Result<Privacy, PrivacyError> {
    #[cfg(unix)]
    {
        let _ = path;
        Ok(Privacy::Private)
    }
    #[cfg(windows)]
    {
        steps::restrict_with(&steps::SystemTools, path)
    }
}

/// Whether the private key at `path` is one `ssh` accepts as private: on Unix (as `ssh` does)
/// a key of the user's with no group or other permission bits, or a key of someone else's
/// (which `ssh` does not check); on Windows, Win32-OpenSSH's rule on its ACL.
///
/// # Errors
/// [`PrivacyError`].
pub fn check(path: &Path) -> Result<Privacy, PrivacyError> {
    #[cfg(unix)]
    {
        let metadata = std::fs::metadata(path).map_err(|source| PrivacyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let attributes =
            crate::file::attributes(&metadata).map_err(|unsupported| PrivacyError::Io {
                path: path.to_owned(),
                source: unsupported.into(),
            })?;
        unix_rule(attributes, crate::account::real_uid())
            .map(|()| Privacy::Private)
            .map_err(|why| PrivacyError::NotPrivate {
                path: path.to_owned(),
                why,
            })
    }
    #[cfg(windows)]
    {
        steps::check_with(&steps::SystemTools, path)
    }
}

/// `ssh`'s rule on Unix: a key owned by the user running it has no group or other bits.
#[cfg_attr(not(unix), allow(dead_code))]
fn unix_rule(attributes: crate::file::Attributes, user: Option<u32>) -> Result<(), String> {
    if Some(attributes.uid) == user && attributes.mode & 0o077 != 0 {
        return Err(format!(
            "its mode is {:04o}, which lets the group or others read it; ssh wants 0600",
            attributes.mode
        ));
    }
    Ok(())
}

/// The Windows steps, over the tools they run, so that their order and their answers are
/// tested on any system.
#[cfg(any(windows, test))]
mod steps {
    use super::{Privacy, PrivacyError};
    use crate::acl::{SecurityDescriptor, Sid, icacls, rules};
    use std::ffi::OsString;
    use std::path::Path;

    /// What the steps ask of the system.
    pub(super) trait AclTools {
        /// The user's SID.
        fn user(&self) -> Result<Sid, String>;
        /// The file's DACL (and owner, where the tool shows it).
        fn read(&self, path: &Path) -> Result<SecurityDescriptor, String>;
        /// Runs `icacls` with these arguments.
        fn icacls(&self, args: &[OsString]) -> Result<(), String>;
    }

    fn not_private(path: &Path, why: String) -> PrivacyError {
        PrivacyError::NotPrivate {
            path: path.to_owned(),
            why,
        }
    }

    pub(super) fn restrict_with(
        tools: &impl AclTools,
        path: &Path,
    ) -> Result<Privacy, PrivacyError> {
        let user = match tools.user() {
            Ok(user) => user,
            Err(why) => return Ok(Privacy::Unchecked(why)),
        };
        let before = tools.read(path).ok();
        let args = icacls::make_private_args(
            path,
            &user,
            before
                .as_ref()
                .and_then(|descriptor| descriptor.dacl.as_ref()),
        );
        let set = tools.icacls(&args);
        let with_set_error = |why: String| match &set {
            Ok(()) => why,
            Err(error) => format!("{why} (setting it: {error})"),
        };
        match tools.read(path) {
            Ok(after) => match rules::private_key(&after, &user) {
                Ok(()) => Ok(Privacy::Private),
                Err(violation) => Err(not_private(path, with_set_error(violation.to_string()))),
            },
            Err(why) => Ok(Privacy::Unchecked(with_set_error(why))),
        }
    }

    pub(super) fn check_with(tools: &impl AclTools, path: &Path) -> Result<Privacy, PrivacyError> {
        let user = match tools.user() {
            Ok(user) => user,
            Err(why) => return Ok(Privacy::Unchecked(why)),
        };
        let descriptor = match tools.read(path) {
            Ok(descriptor) => descriptor,
            Err(why) => return Ok(Privacy::Unchecked(why)),
        };
        rules::private_key(&descriptor, &user)
            .map(|()| Privacy::Private)
            .map_err(|violation| not_private(path, violation.to_string()))
    }

    /// `icacls.exe` and `whoami.exe` from `%SystemRoot%\System32`, so that no program of the
    /// same name earlier in `PATH` answers.
    #[cfg(windows)]
    pub(super) struct SystemTools;

    #[cfg(windows)]
    impl SystemTools {
        fn program(name: &str) -> std::path::PathBuf {
            std::env::var_os("SystemRoot")
                .filter(|root| !root.is_empty())
                .map_or_else(
                    || name.into(),
                    |root| Path::new(&root).join("System32").join(name),
                )
        }

        /// Runs a tool and returns its standard output, or says how it failed.
        fn run<I, S>(name: &str, args: I) -> Result<Vec<u8>, String>
        where
            I: IntoIterator<Item = S>,
            S: AsRef<std::ffi::OsStr>,
        {
            let program = Self::program(name);
            let output = std::process::Command::new(&program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
            if output.status.success() {
                return Ok(output.stdout);
            }
            let said = [&output.stderr, &output.stdout]
                .into_iter()
                .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
                .find(|text| !text.is_empty())
                .unwrap_or_default();
            Err(format!("{name} failed ({}): {said}", output.status))
        }
    }

    #[cfg(windows)]
    impl AclTools for SystemTools {
        fn user(&self) -> Result<Sid, String> {
            static USER: std::sync::OnceLock<Result<Sid, String>> = std::sync::OnceLock::new();
            USER.get_or_init(|| {
                let stdout = Self::run("whoami.exe", icacls::WHOAMI_USER_ARGS)?;
                icacls::parse_whoami_user(&stdout)
                    .ok_or_else(|| "whoami /user printed no SID".to_owned())
            })
            .clone()
        }

        fn read(&self, path: &Path) -> Result<SecurityDescriptor, String> {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // In the user's own temporary folder, where no one else can put a file.
            let acl_file =
                std::env::temp_dir().join(format!("opkssh-acl-{}-{n}.txt", std::process::id()));
            let _ = std::fs::remove_file(&acl_file);
            let ran = Self::run("icacls.exe", icacls::save_args(path, &acl_file));
            let saved = std::fs::read(&acl_file);
            let _ = std::fs::remove_file(&acl_file);
            ran?;
            let bytes = match saved {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(error) => return Err(format!("{}: {error}", acl_file.display())),
            };
            icacls::parse_saved(&bytes).map_err(|error| error.to_string())
        }

        fn icacls(&self, args: &[OsString]) -> Result<(), String> {
            Self::run("icacls.exe", args).map(drop)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::acl::{Dacl, parse_sddl};
        use std::cell::RefCell;

        const ALICE: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

        /// A stand-in for the Windows tools (none runs here: Wine's do nothing), holding one
        /// file's DACL and applying to it what the arguments say, as `icacls` does.
        struct Tools {
            user: Result<Sid, String>,
            dacl: RefCell<Option<String>>,
            calls: RefCell<Vec<Vec<String>>>,
            honour: bool,
        }

        impl Tools {
            fn new(dacl: Option<&str>, honour: bool) -> Self {
                Self {
                    user: Ok(Sid::parse(ALICE).unwrap()),
                    dacl: RefCell::new(dacl.map(str::to_owned)),
                    calls: RefCell::default(),
                    honour,
                }
            }
        }

        impl AclTools for Tools {
            fn user(&self) -> Result<Sid, String> {
                self.user.clone()
            }
            fn read(&self, _: &Path) -> Result<SecurityDescriptor, String> {
                match &*self.dacl.borrow() {
                    Some(sddl) => parse_sddl(sddl).map_err(|error| error.to_string()),
                    None => Err("icacls saved no access control list".into()),
                }
            }
            fn icacls(&self, args: &[OsString]) -> Result<(), String> {
                let args: Vec<String> = args
                    .iter()
                    .map(|arg| arg.to_string_lossy().into_owned())
                    .collect();
                self.calls.borrow_mut().push(args.clone());
                if !self.honour {
                    return Err("icacls failed (exit code: 5): Access is denied.".into());
                }
                let mut dacl = self.dacl.borrow_mut();
                let Some(sddl) = dacl.as_mut() else {
                    return Ok(());
                };
                // What the arguments leave: the grants they name, and the aliases no SID
                // can remove.
                let descriptor = parse_sddl(sddl).unwrap();
                let Some(Dacl::Entries(aces)) = descriptor.dacl else {
                    return Ok(());
                };
                let mut kept = String::from("D:PAI");
                for ace in aces.iter().filter(|ace| !ace.trustee.is_numeric()) {
                    kept.push_str(&format!("(A;;0x{:x};;;{})", ace.mask, ace.trustee.as_str()));
                }
                let grants = args.iter().skip_while(|arg| *arg != "/grant:r").skip(1);
                for grant in grants.take_while(|arg| *arg != "/q") {
                    let sid = grant.trim_start_matches('*').trim_end_matches(":F");
                    kept.push_str(&format!("(A;;FA;;;{sid})"));
                }
                *sddl = kept;
                Ok(())
            }
        }

        #[test]
        fn an_inherited_acl_is_replaced_and_read_back() {
            let tools = Tools::new(
                Some(&format!(
                    "D:AI(A;ID;FA;;;SY)(A;ID;0x1200a9;;;BU)(A;;FR;;;WD)(A;ID;FA;;;{ALICE})"
                )),
                true,
            );
            let path = Path::new(r"C:\Users\alice\.ssh\.id_ecdsa.opkssh-tmp.7.0");
            assert_eq!(restrict_with(&tools, path).unwrap(), Privacy::Private);
            let calls = tools.calls.borrow();
            assert_eq!(calls.len(), 1);
            assert_eq!(
                calls[0][1..5],
                ["/inheritance:r", "/remove:g", "*S-1-1-0", "/grant:r"]
            );
            assert_eq!(check_with(&tools, path).unwrap(), Privacy::Private);
        }

        #[test]
        fn a_grant_icacls_cannot_remove_fails_the_write() {
            // The machine's Administrator account, known to SDDL only as LA.
            let tools = Tools::new(Some(&format!("D:AI(A;;FR;;;LA)(A;;FA;;;{ALICE})")), true);
            let error = restrict_with(&tools, Path::new("key")).unwrap_err();
            assert_eq!(
                error.to_string(),
                "key: others may use this private key: LA (the local Administrator account) is \
                 granted access (rights 0x120089)"
            );
        }

        #[test]
        fn a_refused_icacls_is_named_when_the_key_stays_open() {
            let tools = Tools::new(Some("D:AI(A;ID;FA;;;SY)(A;ID;0x1200a9;;;BU)"), false);
            let error = restrict_with(&tools, Path::new("key")).unwrap_err();
            assert!(
                error
                    .to_string()
                    .ends_with("(setting it: icacls failed (exit code: 5): Access is denied.)"),
                "{error}"
            );
            assert!(matches!(
                check_with(&tools, Path::new("key")),
                Err(PrivacyError::NotPrivate { .. })
            ));
        }

        #[test]
        fn tools_that_answer_nothing_leave_it_unchecked() {
            // Wine: whoami prints no SID.
            let mut tools = Tools::new(None, true);
            tools.user = Err("whoami /user printed no SID".into());
            let unchecked = Privacy::Unchecked("whoami /user printed no SID".into());
            assert_eq!(restrict_with(&tools, Path::new("key")).unwrap(), unchecked);
            assert_eq!(check_with(&tools, Path::new("key")).unwrap(), unchecked);
            assert!(tools.calls.borrow().is_empty());
            // An icacls that saves nothing.
            let tools = Tools::new(None, true);
            assert_eq!(
                restrict_with(&tools, Path::new("key")).unwrap(),
                Privacy::Unchecked("icacls saved no access control list".into())
            );
            assert_eq!(tools.calls.borrow().len(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::Attributes;

    #[test]
    fn ssh_s_unix_rule() {
        let key = |mode, uid| Attributes { mode, uid, gid: 0 };
        assert_eq!(unix_rule(key(0o600, 1000), Some(1000)), Ok(()));
        assert_eq!(unix_rule(key(0o400, 1000), Some(1000)), Ok(()));
        assert_eq!(
            unix_rule(key(0o644, 1000), Some(1000)),
            Err("its mode is 0644, which lets the group or others read it; ssh wants 0600".into())
        );
        assert!(unix_rule(key(0o640, 1000), Some(1000)).is_err());
        // ssh does not look at the mode of someone else's key.
        assert_eq!(unix_rule(key(0o644, 0), Some(1000)), Ok(()));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused_as_ssh_refuses_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ecdsa");
        std::fs::write(&path, "key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(check(&path).unwrap(), Privacy::Private);
        assert_eq!(restrict(&path).unwrap(), Privacy::Private);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = check(&path).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "{}: others may use this private key: its mode is 0644",
                path.display()
            )),
            "{error}"
        );
        assert!(matches!(
            check(&dir.path().join("missing")),
            Err(PrivacyError::Io { .. })
        ));
    }
}
