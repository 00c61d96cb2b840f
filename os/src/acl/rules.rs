//! When a file's owner and DACL are acceptable, decided on SIDs only.
//!
//! - [`private_key`]: Win32-OpenSSH's rule for a private key, which `ssh.exe` applies before
//!   using one (`check_secure_file_permission` in its `w32-sshfileperm.c`, called with reads
//!   not allowed): the owner is the user, SYSTEM, Administrators or TrustedInstaller, and no one
//!   else holds a grant of any right. Denials change nothing. Unlike `ssh.exe`, conditional and
//!   object grants (`XA`, `OA`) count too: under some condition they grant.
//! - [`server_file`]: the rule for the server's files under `%ProgramData%\opk` (`providers`,
//!   `auth_id`, `config.yml`, `policy.d` and the folder itself), the Windows form of "owned by
//!   root, writable by root only": owned by Administrators or SYSTEM, and no one else may change
//!   the file, its DACL or its owner. Reading is not restricted (Go's installer lets `Users` and
//!   `opksshuser` read them). It is stricter than Go's check, which wants the owner named
//!   `Administrators` and the grants it needs but does not look for other writers.

use super::{ADMINISTRATORS, AceKind, Dacl, SYSTEM, SecurityDescriptor, Sid, TRUSTED_INSTALLER};
use std::fmt;

/// The first thing in a security descriptor that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The owner is not one the rule accepts (`accepted` says which are).
    Owner {
        /// The owner.
        owner: Sid,
        /// Who may own it, in words.
        accepted: &'static str,
    },
    /// The owner could not be read, and the rule needs it.
    UnknownOwner,
    /// No DACL could be read.
    NoDacl,
    /// The file has no DACL at all: everyone may do anything.
    NullDacl,
    /// Someone else holds a grant (a private key may be used by no one else).
    Grant {
        /// Whom the entry grants.
        trustee: Sid,
        /// The rights it grants.
        mask: u32,
        /// Inherited from the folder.
        inherited: bool,
    },
    /// Someone else may change the file, its DACL or its owner.
    Write {
        /// Whom the entry grants.
        trustee: Sid,
        /// The rights it grants.
        mask: u32,
        /// Inherited from the folder.
        inherited: bool,
    },
    /// An entry of a kind this rule cannot judge (an audit or label entry in a DACL).
    UnknownEntry {
        /// Its SDDL type.
        kind: String,
    },
}

fn from_folder(inherited: bool) -> &'static str {
    if inherited {
        ", inherited from the folder"
    } else {
        ""
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Owner { owner, accepted } => {
                write!(formatter, "it is owned by {owner}, not by {accepted}")
            }
            Self::UnknownOwner => formatter.write_str("its owner could not be read"),
            Self::NoDacl => formatter.write_str("its access control list could not be read"),
            Self::NullDacl => {
                formatter.write_str("it has no access control list, so everyone may use it")
            }
            Self::Grant {
                trustee,
                mask,
                inherited,
            } => write!(
                formatter,
                "{trustee} is granted access (rights 0x{mask:x}{})",
                from_folder(*inherited)
            ),
            Self::Write {
                trustee,
                mask,
                inherited,
            } => write!(
                formatter,
                "{trustee} may change it (rights 0x{mask:x}{})",
                from_folder(*inherited)
            ),
            Self::UnknownEntry { kind } => write!(
                formatter,
                "its access control list holds an entry of type {kind}, which opkssh cannot judge"
            ),
        }
    }
}

fn is_system_or_administrators(sid: &Sid) -> bool {
    sid.is(SYSTEM) || sid.is(ADMINISTRATORS)
}

/// Whether a private key file with `descriptor` is one only `user` (a SID string) can use, as
/// `ssh.exe` requires. An unknown owner (`icacls` does not show it) is not held against it:
/// a file that opkssh creates is owned by the user who runs it.
///
/// # Errors
/// The first [`Violation`].
pub fn private_key(descriptor: &SecurityDescriptor, user: &Sid) -> Result<(), Violation> {
    let trusted = |sid: &Sid| {
        is_system_or_administrators(sid) || sid.is(TRUSTED_INSTALLER) || sid.names(user)
    };
    if let Some(owner) = &descriptor.owner
        && !trusted(owner)
    {
        return Err(Violation::Owner {
            owner: owner.clone(),
            accepted: "you, SYSTEM, Administrators or TrustedInstaller",
        });
    }
    let aces = match &descriptor.dacl {
        None => return Err(Violation::NoDacl),
        Some(Dacl::Null) => return Err(Violation::NullDacl),
        Some(Dacl::Entries(aces)) => aces,
    };
    for ace in aces {
        if ace.kind == AceKind::Allow && !trusted(&ace.trustee) {
            return Err(Violation::Grant {
                trustee: ace.trustee.clone(),
                mask: ace.mask,
                inherited: ace.inherited,
            });
        }
    }
    Ok(())
}

/// Whether a server file or folder with `descriptor` can be trusted: owned by Administrators
/// or SYSTEM, and changeable by no one else. Entries that apply only to what is created inside
/// a folder (`IO`) are checked on those files, not here.
///
/// # Errors
/// The first [`Violation`]; an unknown owner is one ([`Violation::UnknownOwner`]).
pub fn server_file(descriptor: &SecurityDescriptor) -> Result<(), Violation> {
    match &descriptor.owner {
        None => return Err(Violation::UnknownOwner),
        Some(owner) if !is_system_or_administrators(owner) => {
            return Err(Violation::Owner {
                owner: owner.clone(),
                accepted: "Administrators or SYSTEM",
            });
        }
        Some(_) => {}
    }
    let aces = match &descriptor.dacl {
        None => return Err(Violation::NoDacl),
        Some(Dacl::Null) => return Err(Violation::NullDacl),
        Some(Dacl::Entries(aces)) => aces,
    };
    for ace in aces {
        match &ace.kind {
            AceKind::Deny => {}
            AceKind::Other(kind) => return Err(Violation::UnknownEntry { kind: kind.clone() }),
            AceKind::Allow => {
                if !ace.inherit_only
                    && !is_system_or_administrators(&ace.trustee)
                    && ace.mask & super::rights::ANY_WRITE != 0
                {
                    return Err(Violation::Write {
                        trustee: ace.trustee.clone(),
                        mask: ace.mask,
                        inherited: ace.inherited,
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::parse_sddl;

    const ALICE: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";
    const BOB: &str = "S-1-5-21-1004336348-1177238915-682003330-1002";

    fn key(sddl: &str) -> Result<(), Violation> {
        let descriptor = parse_sddl(sddl).unwrap();
        private_key(&descriptor, &Sid::parse(ALICE).unwrap())
    }

    fn server(sddl: &str) -> Result<(), Violation> {
        server_file(&parse_sddl(sddl).unwrap())
    }

    #[test]
    fn a_key_as_opkssh_leaves_it_is_private() {
        // icacls /inheritance:r /grant:r *<alice>:F *S-1-5-18:F, read back with /save (no owner).
        assert_eq!(key(&format!("D:PAI(A;;FA;;;{ALICE})(A;;FA;;;SY)")), Ok(()));
        // The profile's inherited ACL: SYSTEM, Administrators and the user.
        assert_eq!(
            key(&format!(
                "O:{ALICE}D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;{ALICE})"
            )),
            Ok(())
        );
        // Owned by Administrators (an elevated session), or by TrustedInstaller.
        assert_eq!(key(&format!("O:BAD:P(A;;FA;;;{ALICE})")), Ok(()));
        let installer = crate::acl::TRUSTED_INSTALLER;
        assert_eq!(
            key(&format!("O:{installer}D:P(A;;FR;;;{installer})")),
            Ok(())
        );
        // Nobody granted anything: only the owner's implicit rights remain.
        assert_eq!(key("O:SYD:P"), Ok(()));
        // The built-in Administrator account, which SDDL writes as LA.
        let descriptor = parse_sddl("O:LAD:P(A;;FA;;;LA)").unwrap();
        let administrator = Sid::parse("S-1-5-21-1-2-3-500").unwrap();
        assert_eq!(private_key(&descriptor, &administrator), Ok(()));
    }

    #[test]
    fn a_key_others_may_read_is_not() {
        for (sddl, trustee, inherited) in [
            // Folders outside the profile hand Users and Authenticated Users read access.
            (
                format!("D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)(A;ID;FA;;;{ALICE})"),
                crate::acl::USERS,
                true,
            ),
            (
                format!("D:AI(A;ID;FA;;;{ALICE})(A;ID;0x1301bf;;;AU)"),
                crate::acl::AUTHENTICATED_USERS,
                true,
            ),
            (
                format!("D:P(A;;FA;;;{ALICE})(A;;FR;;;WD)"),
                crate::acl::EVERYONE,
                false,
            ),
            // Another user, even with a single right.
            (
                format!("D:P(A;;FA;;;{ALICE})(A;;0x100000;;;{BOB})"),
                BOB,
                false,
            ),
            // A conditional grant grants under its condition.
            (
                format!("D:P(A;;FA;;;{ALICE})(XA;;FR;;;IU;(Member_of {{SID(BA)}}))"),
                "S-1-5-4",
                false,
            ),
            // CREATOR OWNER, inherit-only: ssh.exe counts it too.
            (
                format!("D:P(A;;FA;;;{ALICE})(A;OICIIO;GA;;;CO)"),
                crate::acl::CREATOR_OWNER,
                false,
            ),
        ] {
            let Err(Violation::Grant {
                trustee: got,
                inherited: got_inherited,
                ..
            }) = key(&sddl)
            else {
                panic!("{sddl}: {:?}", key(&sddl));
            };
            assert_eq!(
                (got.as_str(), got_inherited),
                (trustee, inherited),
                "{sddl}"
            );
        }
        let message = key(&format!("D:P(A;;FA;;;{ALICE})(A;ID;FR;;;WD)"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "S-1-1-0 (Everyone) is granted access (rights 0x120089, inherited from the folder)"
        );
    }

    #[test]
    fn a_key_owned_by_someone_else_is_not_private() {
        assert_eq!(
            key(&format!("O:{BOB}D:P(A;;FA;;;{ALICE})")),
            Err(Violation::Owner {
                owner: Sid::parse(BOB).unwrap(),
                accepted: "you, SYSTEM, Administrators or TrustedInstaller",
            })
        );
        assert!(matches!(key("O:BUD:P"), Err(Violation::Owner { .. })));
    }

    #[test]
    fn denials_do_not_matter_and_a_missing_dacl_does() {
        assert_eq!(
            key(&format!("D:P(D;;FA;;;WD)(D;;FA;;;{BOB})(A;;FA;;;{ALICE})")),
            Ok(())
        );
        assert_eq!(key("D:NO_ACCESS_CONTROL"), Err(Violation::NullDacl));
        assert_eq!(key(&format!("O:{ALICE}")), Err(Violation::NoDacl));
    }

    #[test]
    fn server_files_as_an_administrator_leaves_them_are_trusted() {
        // icacls /setowner *S-1-5-32-544, /inheritance:r /grant:r Administrators, SYSTEM full
        // and opksshuser read.
        assert_eq!(
            server(&format!(
                "O:BAG:SYD:PAI(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;{BOB})"
            )),
            Ok(())
        );
        // ProgramData's inherited ACL on a file: Users read, CREATOR OWNER's grant went to BA.
        assert_eq!(
            server("O:BAD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)"),
            Ok(())
        );
        // A folder may pass CREATOR OWNER on: it applies to the files, checked on their own.
        assert_eq!(
            server("O:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;FR;;;BU)"),
            Ok(())
        );
        // Nobody else may write even where someone else is denied.
        assert_eq!(server("O:BAD:P(D;;FA;;;WD)(A;;FA;;;BA)"), Ok(()));
    }

    #[test]
    fn a_server_file_others_may_change_is_refused() {
        let admin = "S-1-5-21-1004336348-1177238915-682003330-500";
        for (sddl, trustee) in [
            // Go's installer on %ProgramData%\opk: Users may add files (CI, not inherit-only).
            (
                "O:BAD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)(A;CIID;0x116;;;BU)",
                crate::acl::USERS,
            ),
            // A file created by an administrator's own account gets CREATOR OWNER's grant.
            (
                &*format!("O:BAD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;{admin})"),
                admin,
            ),
            (
                "O:BAD:P(A;;FA;;;BA)(A;;0x40000;;;AU)",
                crate::acl::AUTHENTICATED_USERS,
            ),
            ("O:BAD:P(A;;FA;;;BA)(A;;GW;;;WD)", crate::acl::EVERYONE),
            ("O:BAD:P(A;;FA;;;BA)(A;;SD;;;IU)", "S-1-5-4"),
        ] {
            let Err(Violation::Write { trustee: got, .. }) = server(sddl) else {
                panic!("{sddl}: {:?}", server(sddl));
            };
            assert_eq!(got.as_str(), trustee, "{sddl}");
        }
    }

    #[test]
    fn a_server_file_needs_an_administrative_owner_it_can_see() {
        assert!(matches!(
            server(&format!("O:{BOB}D:P(A;;FA;;;BA)")),
            Err(Violation::Owner { .. })
        ));
        // icacls /save shows no owner: not enough for the server.
        assert_eq!(server("D:P(A;;FA;;;BA)"), Err(Violation::UnknownOwner));
        assert_eq!(server("O:BAD:NO_ACCESS_CONTROL"), Err(Violation::NullDacl));
        assert_eq!(server("O:BA"), Err(Violation::NoDacl));
        assert_eq!(
            server("O:BAD:P(A;;FA;;;BA)(AU;SA;FA;;;WD)"),
            Err(Violation::UnknownEntry { kind: "AU".into() })
        );
        // Reading is not restricted (Go's installer grants it to Users and opksshuser).
        assert_eq!(server("O:SYD:P(A;;FA;;;SY)(A;;FR;;;WD)"), Ok(()));
    }
}
