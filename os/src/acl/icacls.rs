//! What opkssh asks of Windows' own tools, and how it reads their answers: `icacls.exe` sets a
//! file's DACL and saves it as SDDL (`/save`: the file's name, then its DACL, in UTF-16), and
//! `whoami.exe /user` names the user's SID.
//!
//! The tools are named by SID (`*S-1-5-18`), never by account names, which Windows
//! translates. `icacls` prints its ACL listing with names in the console's code page and
//! without the owner, so opkssh reads only what `/save` writes.

use super::{Ace, AceKind, Dacl, SYSTEM, SddlError, SecurityDescriptor, Sid, parse_sddl};
use std::ffi::OsString;
use std::path::Path;

/// A principal as `icacls` takes a SID: `*S-1-5-18`.
fn principal(sid: &Sid) -> String {
    format!("*{}", sid.as_str())
}

/// The arguments of `icacls` that leave `path` usable by `user` (a SID string) and SYSTEM only,
/// as `ssh.exe` wants a private key:
/// - `/inheritance:r` drops what the folder hands down;
/// - `/remove:g` drops the grants of anyone else that `current` (the DACL read before) shows
///   as the file's own; principals known only by a machine-relative alias cannot be named to
///   `icacls` and stay, for the check after to find;
/// - `/grant:r` gives the user and SYSTEM full control, replacing what they had.
pub fn make_private_args(path: &Path, user: &Sid, current: Option<&Dacl>) -> Vec<OsString> {
    let mut args = vec![path.as_os_str().to_owned(), "/inheritance:r".into()];
    let mut others: Vec<&Sid> = Vec::new();
    if let Some(Dacl::Entries(aces)) = current {
        for Ace {
            kind,
            trustee,
            inherited,
            ..
        } in aces
        {
            let other = *kind == AceKind::Allow
                && !inherited
                && trustee.is_numeric()
                && !trustee.names(user)
                && !trustee.is(SYSTEM)
                && !others.contains(&trustee);
            if other {
                others.push(trustee);
            }
        }
    }
    if !others.is_empty() {
        args.push("/remove:g".into());
        args.extend(others.into_iter().map(|sid| principal(sid).into()));
    }
    args.push("/grant:r".into());
    args.push(format!("{}:F", principal(user)).into());
    args.push(format!("*{SYSTEM}:F").into());
    args.push("/q".into());
    args
}

/// The arguments of `icacls` that save the DACL of `path` into `acl_file`.
pub fn save_args(path: &Path, acl_file: &Path) -> Vec<OsString> {
    vec![
        path.as_os_str().to_owned(),
        "/save".into(),
        acl_file.as_os_str().to_owned(),
        "/q".into(),
    ]
}

/// The arguments of `whoami` that print the user's name and SID as CSV, without a header.
pub const WHOAMI_USER_ARGS: [&str; 4] = ["/user", "/fo", "csv", "/nh"];

/// Why what `icacls /save` wrote was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedError {
    /// It wrote nothing (the ACL-less `icacls` of Wine, for one).
    #[error("icacls saved no access control list")]
    Empty,
    /// The text is neither UTF-16 nor UTF-8.
    #[error("icacls saved text that is neither UTF-16 nor UTF-8")]
    Encoding,
    /// Not one file's name and DACL.
    #[error("icacls saved {lines} lines, not a name and an access control list")]
    Shape {
        /// How many non-empty lines.
        lines: usize,
    },
    /// The DACL is not SDDL opkssh understands.
    #[error(transparent)]
    Sddl(#[from] SddlError),
}

/// Reads what `icacls <file> /save <acl file>` wrote for one file: its name on one line and its
/// DACL in SDDL on the next, in UTF-16LE (with or without a byte-order mark; UTF-8 is taken
/// too). The owner is not in it.
///
/// # Errors
/// [`SavedError`].
pub fn parse_saved(bytes: &[u8]) -> Result<SecurityDescriptor, SavedError> {
    let text = decode(bytes)?;
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}'))
        .filter(|line| !line.is_empty())
        .collect();
    match lines.as_slice() {
        [] => Err(SavedError::Empty),
        [_name, dacl] if dacl.starts_with("D:") => Ok(parse_sddl(dacl)?),
        _ => Err(SavedError::Shape { lines: lines.len() }),
    }
}

fn decode(bytes: &[u8]) -> Result<String, SavedError> {
    if bytes.is_empty() {
        return Err(SavedError::Empty);
    }
    let utf16 = bytes.starts_with(&[0xff, 0xfe])
        || (bytes.len().is_multiple_of(2) && bytes.get(1) == Some(&0) && bytes.first() != Some(&0));
    if utf16 {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|pair| match pair {
                [low, high] => u16::from_le_bytes([*low, *high]),
                _ => 0,
            })
            .collect();
        String::from_utf16(&units).map_err(|_| SavedError::Encoding)
    } else {
        String::from_utf8(bytes.to_vec()).map_err(|_| SavedError::Encoding)
    }
}

/// The user's SID in what `whoami /user /fo csv /nh` printed (`"pc\alice","S-1-5-21-…"`): the
/// last field that is a SID. The name before it is in the console's code page, and not used.
pub fn parse_whoami_user(stdout: &[u8]) -> Option<Sid> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|line| !line.trim().is_empty())?;
    line.rsplit(',')
        .map(|field| field.trim().trim_matches('"'))
        .filter(|field| field.starts_with("S-"))
        .find_map(Sid::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

    fn utf16(text: &str, bom: bool) -> Vec<u8> {
        let mut bytes = if bom { vec![0xff, 0xfe] } else { Vec::new() };
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|arg| arg.to_str().unwrap()).collect()
    }

    #[test]
    fn making_private_names_everyone_by_sid() {
        let alice = Sid::parse(ALICE).unwrap();
        let path = Path::new(r"C:\Users\José Núñez\.ssh\.id_ecdsa.opkssh-tmp.4242.0");
        assert_eq!(
            strings(&make_private_args(path, &alice, None)),
            [
                r"C:\Users\José Núñez\.ssh\.id_ecdsa.opkssh-tmp.4242.0",
                "/inheritance:r",
                "/grant:r",
                &format!("*{ALICE}:F"),
                "*S-1-5-18:F",
                "/q",
            ]
        );
        // The explicit grants seen before go; inherited ones go with the inheritance, and
        // aliases (LA) cannot be named.
        let current = parse_sddl(&format!(
            "D:AI(A;;FR;;;WD)(A;;FA;;;{ALICE})(A;;FA;;;SY)(D;;FA;;;BG)(A;;FR;;;LA)\
             (A;ID;FR;;;BU)(A;;FW;;;WD)(A;;FA;;;BA)"
        ))
        .unwrap()
        .dacl;
        assert_eq!(
            strings(&make_private_args(Path::new("k"), &alice, current.as_ref())),
            [
                "k",
                "/inheritance:r",
                "/remove:g",
                "*S-1-1-0",
                "*S-1-5-32-544",
                "/grant:r",
                &format!("*{ALICE}:F"),
                "*S-1-5-18:F",
                "/q",
            ]
        );
    }

    #[test]
    fn saved_acls_are_read_in_utf16_or_utf8() {
        let saved = format!("id_ecdsa\r\nD:PAI(A;;FA;;;{ALICE})(A;;FA;;;SY)\r\n");
        for bytes in [
            utf16(&saved, false),
            utf16(&saved, true),
            saved.clone().into_bytes(),
        ] {
            let descriptor = parse_saved(&bytes).unwrap();
            assert_eq!(descriptor.owner, None);
            assert!(descriptor.protected);
            let Some(Dacl::Entries(aces)) = descriptor.dacl else {
                panic!();
            };
            assert_eq!(aces.len(), 2);
        }
        // A name with spaces and letters beyond ASCII, UTF-16 only.
        let descriptor = parse_saved(&utf16(
            "clé privée\r\nD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)\r\n",
            false,
        ))
        .unwrap();
        assert!(!descriptor.protected);
    }

    #[test]
    fn what_is_not_one_saved_acl_is_an_error() {
        assert_eq!(parse_saved(b""), Err(SavedError::Empty));
        assert_eq!(parse_saved(&utf16("\r\n", true)), Err(SavedError::Empty));
        assert_eq!(
            parse_saved(b"id_ecdsa\r\n"),
            Err(SavedError::Shape { lines: 1 })
        );
        assert_eq!(
            parse_saved(b"a\r\nD:P\r\nb\r\nD:P\r\n"),
            Err(SavedError::Shape { lines: 4 })
        );
        assert_eq!(
            parse_saved(b"a\r\nO:BA\r\n"),
            Err(SavedError::Shape { lines: 2 })
        );
        assert!(matches!(
            parse_saved(b"a\r\nD:(A;;FA;;;nobody)\r\n"),
            Err(SavedError::Sddl(_))
        ));
        assert_eq!(
            parse_saved(&[0xff, 0xfe, 0x00, 0xd8]),
            Err(SavedError::Encoding)
        );
        assert_eq!(parse_saved(&[b'a', b'\n', 0xc3]), Err(SavedError::Encoding));
    }

    #[test]
    fn whoami_names_the_sid_last() {
        let sid = |text: &[u8]| parse_whoami_user(text).map(|sid| sid.as_str().to_owned());
        assert_eq!(
            sid(format!("\"desktop-4c7\\alice\",\"{ALICE}\"\r\n").as_bytes()),
            Some(ALICE.to_owned())
        );
        // A German name in code page 850 (not UTF-8), a comma in the name.
        let mut german = b"\"pc\\J\x94rg, M\",\"".to_vec();
        german.extend_from_slice(ALICE.as_bytes());
        german.extend_from_slice(b"\"\r\n\r\n");
        assert_eq!(sid(&german), Some(ALICE.to_owned()));
        // Wine's whoami prints only the name.
        assert_eq!(sid(b"VM\\root\r\n"), None);
        assert_eq!(sid(b""), None);
        // whoami writes SIDs, never SDDL aliases; SYSTEM is S-1-5-18.
        assert_eq!(sid(b"\"nt authority\\system\",\"SY\""), None);
        assert_eq!(
            sid(b"\"nt authority\\system\",\"S-1-5-18\""),
            Some(crate::acl::SYSTEM.to_owned())
        );
    }
}
