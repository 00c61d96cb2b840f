//! Windows access control, as opkssh reads it: a file's owner and its DACL (who may do what),
//! in the form of SDDL, the text Windows itself writes for them (`O:BAD:PAI(A;;FA;;;SY)…`).
//!
//! SDDL names principals by SID (`S-1-5-18`) or by a two-letter alias (`SY`, `BA`, `WD`), never
//! by account names, which Windows translates (`NT AUTHORITY\SYSTEM` is `NT-AUTORITÄT\SYSTEM`
//! on a German system) and which `icacls` prints in the console's code page. Deciding on SIDs
//! is therefore the same on every Windows, whatever its language.
//!
//! Everything here is pure and runs on any system, so that the rules are tested everywhere:
//! - this module: the model ([`SecurityDescriptor`], [`Ace`], [`Sid`]) and the SDDL parser;
//! - [`rules`]: when a private key is private (Win32-OpenSSH's rule for `ssh.exe`), and when a
//!   server file may be trusted;
//! - [`icacls`]: the arguments opkssh gives `icacls.exe` and `whoami.exe`, and the parsers of
//!   what they write.
//!
//! Running those tools is [`crate::private_file`]'s, on Windows only.

pub mod icacls;
pub mod rules;

use std::fmt;

/// `NT AUTHORITY\SYSTEM`.
pub const SYSTEM: &str = "S-1-5-18";
/// `BUILTIN\Administrators`.
pub const ADMINISTRATORS: &str = "S-1-5-32-544";
/// `NT SERVICE\TrustedInstaller`, which owns the system's own files.
pub const TRUSTED_INSTALLER: &str =
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464";
/// `Everyone`.
pub const EVERYONE: &str = "S-1-1-0";
/// `NT AUTHORITY\Authenticated Users`.
pub const AUTHENTICATED_USERS: &str = "S-1-5-11";
/// `BUILTIN\Users`.
pub const USERS: &str = "S-1-5-32-545";
/// `CREATOR OWNER`.
pub const CREATOR_OWNER: &str = "S-1-3-0";

/// The SDDL aliases of SIDs that are the same on every machine, and what Windows calls them
/// in English (for messages only: decisions compare SIDs).
const WELL_KNOWN: &[(&str, &str, &str)] = &[
    ("AC", "S-1-15-2-1", "ALL APPLICATION PACKAGES"),
    ("AN", "S-1-5-7", "ANONYMOUS LOGON"),
    ("AO", "S-1-5-32-548", "Account Operators"),
    ("AU", AUTHENTICATED_USERS, "Authenticated Users"),
    ("BA", ADMINISTRATORS, "Administrators"),
    ("BG", "S-1-5-32-546", "Guests"),
    ("BO", "S-1-5-32-551", "Backup Operators"),
    ("BU", USERS, "Users"),
    ("CG", "S-1-3-1", "CREATOR GROUP"),
    ("CO", CREATOR_OWNER, "CREATOR OWNER"),
    ("ED", "S-1-5-9", "ENTERPRISE DOMAIN CONTROLLERS"),
    ("HI", "S-1-16-12288", "High Mandatory Level"),
    ("IU", "S-1-5-4", "INTERACTIVE"),
    ("LS", "S-1-5-19", "LOCAL SERVICE"),
    ("LW", "S-1-16-4096", "Low Mandatory Level"),
    ("ME", "S-1-16-8192", "Medium Mandatory Level"),
    ("NO", "S-1-5-32-556", "Network Configuration Operators"),
    ("NS", "S-1-5-20", "NETWORK SERVICE"),
    ("NU", "S-1-5-2", "NETWORK"),
    ("OW", "S-1-3-4", "OWNER RIGHTS"),
    ("PO", "S-1-5-32-550", "Print Operators"),
    ("PS", "S-1-5-10", "SELF"),
    ("PU", "S-1-5-32-547", "Power Users"),
    ("RC", "S-1-5-12", "RESTRICTED"),
    ("RD", "S-1-5-32-555", "Remote Desktop Users"),
    ("RE", "S-1-5-32-552", "Replicator"),
    ("RU", "S-1-5-32-554", "Pre-Windows 2000 Compatible Access"),
    ("SI", "S-1-16-16384", "System Mandatory Level"),
    ("SO", "S-1-5-32-549", "Server Operators"),
    ("SU", "S-1-5-6", "SERVICE"),
    ("SY", SYSTEM, "SYSTEM"),
    ("WD", EVERYONE, "Everyone"),
    ("WR", "S-1-5-33", "WRITE RESTRICTED"),
];

/// SDDL aliases of accounts relative to a domain or to this machine (`LA` is the machine's own
/// Administrator account, `DU` the domain's users): their SIDs depend on the machine, so they
/// stay aliases here.
const RELATIVE: &[(&str, &str)] = &[
    ("CA", "Cert Publishers"),
    ("CN", "Cloneable Domain Controllers"),
    ("DA", "Domain Admins"),
    ("DC", "Domain Computers"),
    ("DD", "Domain Controllers"),
    ("DG", "Domain Guests"),
    ("DU", "Domain Users"),
    ("EA", "Enterprise Admins"),
    ("LA", "the local Administrator account"),
    ("LG", "the local Guest account"),
    ("PA", "Group Policy Creator Owners"),
    ("RO", "Enterprise Read-only Domain Controllers"),
    ("RS", "RAS and IAS Servers"),
    ("SA", "Schema Admins"),
];

/// A principal: a SID (`S-1-5-21-…-1001`), or one of SDDL's machine-relative aliases (`LA`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sid(String);

impl Sid {
    /// A SID in string form (`S-1-5-18`, any case) or an SDDL alias (`SY`, `BA`, `LA`): the
    /// aliases of well-known SIDs become their SIDs.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(rest) = text.strip_prefix("S-").or_else(|| text.strip_prefix("s-")) {
            let parts: Vec<&str> = rest.split('-').collect();
            let numeric = parts
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()));
            return (parts.len() >= 2 && numeric).then(|| Self(format!("S-{rest}")));
        }
        if let Some((_, sid, _)) = WELL_KNOWN.iter().find(|(alias, _, _)| *alias == text) {
            return Some(Self((*sid).to_owned()));
        }
        RELATIVE
            .iter()
            .any(|(alias, _)| *alias == text)
            .then(|| Self(text.to_owned()))
    }

    /// The SID as text, or the alias of a machine-relative account.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the SID `sid` (`S-1-5-18`…).
    pub fn is(&self, sid: &str) -> bool {
        self.0 == sid
    }

    /// Whether this is a SID string, not a machine-relative alias.
    pub fn is_numeric(&self) -> bool {
        self.0.starts_with("S-")
    }

    /// What Windows calls the principal in English, where it is well known.
    pub fn well_known_name(&self) -> Option<&'static str> {
        WELL_KNOWN
            .iter()
            .find(|(_, sid, _)| *sid == self.0)
            .map(|(_, _, name)| *name)
            .or_else(|| {
                RELATIVE
                    .iter()
                    .find(|(alias, _)| *alias == self.0)
                    .map(|(_, name)| *name)
            })
            .or_else(|| self.is(TRUSTED_INSTALLER).then_some("TrustedInstaller"))
    }

    /// Whether this names `user` (a SID string): the same SID, or SDDL's `LA`/`LG` alias for
    /// the machine's built-in Administrator (RID 500) or Guest (RID 501) account, which is how
    /// SDDL writes those accounts.
    pub fn names(&self, user: &Sid) -> bool {
        if self == user {
            return true;
        }
        let rid = match self.0.as_str() {
            "LA" => "-500",
            "LG" => "-501",
            _ => return false,
        };
        user.0.starts_with("S-1-5-21-") && user.0.ends_with(rid)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.well_known_name() {
            Some(name) => write!(formatter, "{} ({name})", self.0),
            None => formatter.write_str(&self.0),
        }
    }
}

/// Access mask bits (winnt.h).
pub mod rights {
    /// `FILE_READ_DATA` (a folder: list it).
    pub const READ_DATA: u32 = 0x1;
    /// `FILE_WRITE_DATA` (a folder: add a file).
    pub const WRITE_DATA: u32 = 0x2;
    /// `FILE_APPEND_DATA` (a folder: add a subfolder).
    pub const APPEND_DATA: u32 = 0x4;
    /// `FILE_WRITE_EA`.
    pub const WRITE_EA: u32 = 0x10;
    /// `FILE_DELETE_CHILD` (a folder: delete what is in it).
    pub const DELETE_CHILD: u32 = 0x40;
    /// `FILE_WRITE_ATTRIBUTES`.
    pub const WRITE_ATTRIBUTES: u32 = 0x100;
    /// `DELETE`.
    pub const DELETE: u32 = 0x1_0000;
    /// `WRITE_DAC`: change the DACL, and so grant oneself anything.
    pub const WRITE_DAC: u32 = 0x4_0000;
    /// `WRITE_OWNER`: take the file, and so its DACL.
    pub const WRITE_OWNER: u32 = 0x8_0000;
    /// `GENERIC_ALL`.
    pub const GENERIC_ALL: u32 = 0x1000_0000;
    /// `GENERIC_WRITE`.
    pub const GENERIC_WRITE: u32 = 0x4000_0000;
    /// `FILE_ALL_ACCESS` (SDDL `FA`, icacls `F`).
    pub const FILE_ALL: u32 = 0x1f_01ff;
    /// Every right that changes a file or folder, its DACL or its owner.
    pub const ANY_WRITE: u32 = WRITE_DATA
        | APPEND_DATA
        | WRITE_EA
        | DELETE_CHILD
        | WRITE_ATTRIBUTES
        | DELETE
        | WRITE_DAC
        | WRITE_OWNER
        | GENERIC_ALL
        | GENERIC_WRITE;
}

/// SDDL's two-letter access rights and their masks.
const RIGHT_CODES: &[(&str, u32)] = &[
    ("GA", rights::GENERIC_ALL),
    ("GR", 0x8000_0000),
    ("GW", rights::GENERIC_WRITE),
    ("GX", 0x2000_0000),
    ("RC", 0x2_0000),
    ("SD", rights::DELETE),
    ("WD", rights::WRITE_DAC),
    ("WO", rights::WRITE_OWNER),
    ("RP", 0x10),
    ("WP", 0x20),
    ("CC", 0x1),
    ("DC", 0x2),
    ("LC", 0x4),
    ("SW", 0x8),
    ("LO", 0x80),
    ("DT", 0x40),
    ("CR", 0x100),
    ("FA", rights::FILE_ALL),
    ("FR", 0x12_0089),
    ("FW", 0x12_0116),
    ("FX", 0x12_00a0),
    ("KA", 0xf_003f),
    ("KR", 0x2_0019),
    ("KW", 0x2_0006),
    ("KX", 0x2_0019),
    // Mandatory label policies (no write, read, execute up).
    ("NW", 0x1),
    ("NR", 0x2),
    ("NX", 0x4),
];

/// What an access control entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AceKind {
    /// Grants its rights: `A`, and the conditional, object and resource forms that grant
    /// (`XA`, `OA`, `ZA`), since under some condition they do.
    Allow,
    /// Denies its rights (`D`, `XD`, `OD`).
    Deny,
    /// Anything else (audit, label, policy entries): its SDDL type.
    Other(String),
}

/// One access control entry of a DACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// Grant, deny or other.
    pub kind: AceKind,
    /// Inherited from the folder (`ID`; icacls shows `(I)`).
    pub inherited: bool,
    /// Applies only to what is created inside the folder, not to the object itself (`IO`).
    pub inherit_only: bool,
    /// The access mask.
    pub mask: u32,
    /// Whom it is about.
    pub trustee: Sid,
}

/// A DACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dacl {
    /// No DACL at all (`D:NO_ACCESS_CONTROL`): everyone may do everything.
    Null,
    /// These entries (none: nobody but the owner, through its implicit rights, gets in).
    Entries(Vec<Ace>),
}

/// What opkssh reads of a file's security descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// The owner, when the source shows it (`icacls /save` does not).
    pub owner: Option<Sid>,
    /// The DACL; `None` when the source has no `D:` part.
    pub dacl: Option<Dacl>,
    /// The DACL does not inherit from the folder (`D:P…`).
    pub protected: bool,
}

/// Why SDDL text was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDDL {sddl:?}: {what}")]
pub struct SddlError {
    /// The text (a security descriptor holds SIDs and rights, nothing secret).
    pub sddl: String,
    /// What is wrong in it.
    pub what: String,
}

/// Parses a security descriptor in SDDL (`O:…G:…D:…S:…`, each part optional). The group and
/// the SACL are skipped; an unknown alias, right or flag is an error, so nothing is guessed.
///
/// # Errors
/// [`SddlError`] saying what was not understood.
pub fn parse_sddl(sddl: &str) -> Result<SecurityDescriptor, SddlError> {
    let fail = |what: String| SddlError {
        sddl: sddl.to_owned(),
        what,
    };
    let mut descriptor = SecurityDescriptor {
        owner: None,
        dacl: None,
        protected: false,
    };
    let mut rest = sddl.trim();
    while !rest.is_empty() {
        let (tag, after) = match rest.get(..2) {
            Some(tag @ ("O:" | "G:" | "D:" | "S:")) => (tag, rest.get(2..).unwrap_or_default()),
            _ => return Err(fail(format!("expected O:, G:, D: or S: at {rest:?}"))),
        };
        match tag {
            "O:" | "G:" => {
                let (sid_text, remaining) = split_sid(after);
                let sid = Sid::parse(sid_text)
                    .ok_or_else(|| fail(format!("unknown principal {sid_text:?}")))?;
                if tag == "O:" {
                    descriptor.owner = Some(sid);
                }
                rest = remaining;
            }
            _ => {
                let (acl_flags, aces, remaining) = split_acl(after).map_err(fail)?;
                if tag == "D:" {
                    let (dacl, protected) = parse_dacl(acl_flags, &aces).map_err(fail)?;
                    descriptor.dacl = Some(dacl);
                    descriptor.protected = protected;
                }
                rest = remaining;
            }
        }
    }
    Ok(descriptor)
}

/// Splits a SID or alias off the front of `text`: `S-` and digits and dashes, or two letters.
fn split_sid(text: &str) -> (&str, &str) {
    let length = if text.starts_with("S-") || text.starts_with("s-") {
        2 + text
            .bytes()
            .skip(2)
            .take_while(|byte| byte.is_ascii_digit() || *byte == b'-')
            .count()
    } else {
        text.chars().take(2).map(char::len_utf8).sum()
    };
    (
        text.get(..length).unwrap_or(text),
        text.get(length..).unwrap_or_default(),
    )
}

/// Splits an ACL (`PAI(…)(…)`) off the front of `text`: its flags, its entries (without their
/// outer parentheses) and what follows.
fn split_acl(text: &str) -> Result<(&str, Vec<&str>, &str), String> {
    let flags_end = text.find(['(', ':']).map_or(text.len(), |at| {
        // A following `S:` or `G:` tag: its letter belongs to it, not to the flags.
        if text.get(at..=at) == Some(":") {
            at.saturating_sub(1)
        } else {
            at
        }
    });
    let flags = text.get(..flags_end).unwrap_or_default();
    let mut aces = Vec::new();
    let mut rest = text.get(flags_end..).unwrap_or_default();
    while rest.starts_with('(') {
        let mut depth = 0_usize;
        let mut end = None;
        for (at, character) in rest.char_indices() {
            match character {
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = Some(at);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| "an entry is not closed".to_owned())?;
        aces.push(rest.get(1..end).unwrap_or_default());
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    Ok((flags, aces, rest))
}

fn parse_dacl(flags: &str, aces: &[&str]) -> Result<(Dacl, bool), String> {
    let mut protected = false;
    let mut null = false;
    let mut rest = flags;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("NO_ACCESS_CONTROL") {
            null = true;
            rest = after;
        } else if let Some(after) = rest.strip_prefix('P') {
            protected = true;
            rest = after;
        } else if let Some(after) = rest.strip_prefix("AI").or_else(|| rest.strip_prefix("AR")) {
            rest = after;
        } else {
            return Err(format!("unknown DACL flags {flags:?}"));
        }
    }
    if null {
        return Ok((Dacl::Null, protected));
    }
    let entries = aces
        .iter()
        .map(|ace| parse_ace(ace))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Dacl::Entries(entries), protected))
}

/// One entry: `type;flags;rights;object;inherited object;SID[;condition or attribute]`.
fn parse_ace(text: &str) -> Result<Ace, String> {
    let fields: Vec<&str> = text.splitn(7, ';').collect();
    let [kind, flags, mask, _, _, trustee, ..] = fields.as_slice() else {
        return Err(format!("entry ({text}) has fewer than six fields"));
    };
    let kind = match *kind {
        "A" | "XA" | "OA" | "ZA" => AceKind::Allow,
        "D" | "XD" | "OD" => AceKind::Deny,
        other => AceKind::Other(other.to_owned()),
    };
    let mut inherited = false;
    let mut inherit_only = false;
    for flag in pairs(flags).ok_or_else(|| format!("odd flags {flags:?}"))? {
        match flag {
            "ID" => inherited = true,
            "IO" => inherit_only = true,
            "OI" | "CI" | "NP" | "SA" | "FA" | "TP" | "CR" => {}
            other => return Err(format!("unknown entry flag {other:?}")),
        }
    }
    let trustee = Sid::parse(trustee).ok_or_else(|| format!("unknown principal {trustee:?}"))?;
    Ok(Ace {
        kind,
        inherited,
        inherit_only,
        mask: parse_mask(mask)?,
        trustee,
    })
}

/// `text` cut into two-character pieces, if its length is even.
fn pairs(text: &str) -> Option<Vec<&str>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        pieces.push(rest.get(..2)?);
        rest = rest.get(2..)?;
    }
    Some(pieces)
}

/// Rights as a number (`0x1200a9`, or decimal) or as SDDL's two-letter codes (`FRFW`).
fn parse_mask(text: &str) -> Result<u32, String> {
    let unknown = || format!("unknown rights {text:?}");
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).map_err(|_| unknown());
    }
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.parse().map_err(|_| unknown());
    }
    let mut mask = 0;
    for code in pairs(text).ok_or_else(unknown)? {
        let (_, bits) = RIGHT_CODES
            .iter()
            .find(|(name, _)| *name == code)
            .ok_or_else(unknown)?;
        mask |= bits;
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(text: &str) -> Sid {
        Sid::parse(text).unwrap()
    }

    #[test]
    fn sids_and_aliases() {
        assert_eq!(sid("SY"), sid("S-1-5-18"));
        assert_eq!(sid("s-1-5-32-544").as_str(), ADMINISTRATORS);
        assert_eq!(sid("LA").as_str(), "LA");
        assert!(!sid("LA").is_numeric());
        for bad in ["", "S-", "S-1", "S-1-x", "S-1--5", "XX", "sy", "S-1-5-18 "] {
            assert_eq!(Sid::parse(bad), None, "{bad:?}");
        }
        assert_eq!(sid("WD").to_string(), "S-1-1-0 (Everyone)");
        assert_eq!(
            sid("S-1-5-21-1-2-3-1001").to_string(),
            "S-1-5-21-1-2-3-1001"
        );
        let administrator = sid("S-1-5-21-11-22-33-500");
        assert!(sid("LA").names(&administrator));
        assert!(!sid("LG").names(&administrator));
        assert!(!sid("LA").names(&sid("S-1-5-21-11-22-33-1500")));
    }

    #[test]
    fn a_profile_folder_file_as_windows_writes_it() {
        // A file created in C:\Users\alice\.ssh: everything inherited from the profile.
        let descriptor = parse_sddl(
            "O:S-1-5-21-1004336348-1177238915-682003330-1001G:S-1-5-21-1004336348-1177238915-\
             682003330-513D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)\
             (A;ID;FA;;;S-1-5-21-1004336348-1177238915-682003330-1001)",
        )
        .unwrap();
        let user = sid("S-1-5-21-1004336348-1177238915-682003330-1001");
        assert_eq!(descriptor.owner.as_ref(), Some(&user));
        assert!(!descriptor.protected);
        let Some(Dacl::Entries(aces)) = &descriptor.dacl else {
            panic!("{descriptor:?}");
        };
        assert_eq!(aces.len(), 3);
        assert!(
            aces.iter()
                .all(|ace| ace.inherited && ace.mask == rights::FILE_ALL)
        );
        assert_eq!(aces[0].trustee.as_str(), SYSTEM);
        assert_eq!(aces[2].trustee, user);
    }

    #[test]
    fn owner_aliases_run_into_the_next_part() {
        let descriptor = parse_sddl("O:BAG:SYD:P(A;;FA;;;SY)S:AI(AU;SA;FA;;;WD)").unwrap();
        assert_eq!(descriptor.owner, Some(sid("BA")));
        assert!(descriptor.protected);
        assert_eq!(
            descriptor.dacl,
            Some(Dacl::Entries(vec![Ace {
                kind: AceKind::Allow,
                inherited: false,
                inherit_only: false,
                mask: rights::FILE_ALL,
                trustee: sid("SY"),
            }]))
        );
        let descriptor = parse_sddl("O:SYD:(A;;0x1200a9;;;BU)").unwrap();
        assert_eq!(descriptor.owner, Some(sid("SY")));
        let descriptor = parse_sddl("O:S-1-5-18D:PAI").unwrap();
        assert_eq!(descriptor.owner, Some(sid("SY")));
        assert_eq!(descriptor.dacl, Some(Dacl::Entries(Vec::new())));
    }

    #[test]
    fn rights_flags_and_kinds() {
        let descriptor = parse_sddl(
            "D:(D;;WDWO;;;WD)(A;OICIIO;GA;;;CO)(A;CI;0x116;;;BU)(XA;;FR;;;AU;(Member_of {SID(BA)}))\
             (A;;1179817;;;IU)(ML;;NW;;;HI)",
        )
        .unwrap();
        let Some(Dacl::Entries(aces)) = descriptor.dacl else {
            panic!();
        };
        assert_eq!(aces[0].kind, AceKind::Deny);
        assert_eq!(aces[0].mask, rights::WRITE_DAC | rights::WRITE_OWNER);
        assert!(aces[1].inherit_only && !aces[1].inherited);
        assert_eq!(aces[1].mask, rights::GENERIC_ALL);
        assert_eq!(aces[2].mask, 0x116);
        assert_eq!(aces[3].kind, AceKind::Allow);
        assert_eq!(aces[3].trustee.as_str(), AUTHENTICATED_USERS);
        assert_eq!(aces[4].mask, 0x1200a9);
        assert_eq!(aces[5].kind, AceKind::Other("ML".into()));
    }

    #[test]
    fn a_null_dacl_is_not_an_empty_one() {
        assert_eq!(
            parse_sddl("D:NO_ACCESS_CONTROL").unwrap().dacl,
            Some(Dacl::Null)
        );
        assert_eq!(
            parse_sddl("D:P").unwrap().dacl,
            Some(Dacl::Entries(Vec::new()))
        );
        assert_eq!(parse_sddl("O:BA").unwrap().dacl, None);
    }

    #[test]
    fn what_is_not_understood_is_an_error() {
        for bad in [
            "X:BA",
            "O:XX",
            "D:(A;;FA;;;XX)",
            "D:(A;;QQ;;;SY)",
            "D:(A;;F;;;SY)",
            "D:(A;ZZ;FA;;;SY)",
            "D:(A;;FA;;SY)",
            "D:(A;;FA;;;SY",
            "D:Q(A;;FA;;;SY)",
            "D:(A;;0xzz;;;SY)",
        ] {
            assert!(parse_sddl(bad).is_err(), "{bad:?}");
        }
    }
}
