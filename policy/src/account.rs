//! What the system says about the account a template row would grant. A template turns any
//! email at a domain into the account of the same name, so it must never reach root, a system
//! account (uid below `UID_MIN`) or the account `verify` itself runs as; those still work
//! through rows that name them. The decision takes these facts as an input ([`AccountFacts`]),
//! read from the system by [`AccountFacts::of_system`] or given by a test.

use crate::login_defs;
use std::fmt;

/// The account the installer creates for `verify` (sshd's `AuthorizedKeysCommandUser`): it
/// holds the `readhome` sudo rule.
pub const VERIFY_ACCOUNT: &str = "opksshuser";

/// The kernel's overflow uid, `nobody`'s on Linux: above `UID_MIN`, yet nobody's own account,
/// and file systems map unknown owners to it.
pub const OVERFLOW_UID: u32 = 65534;

/// The principal's account in the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// It exists, with this uid.
    Uid(u32),
    /// There is no such account.
    Missing,
    /// The lookup failed, or was never made; the text says why.
    Unknown(String),
}

/// The facts a template row is checked against before it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    /// The principal's account.
    pub account: Account,
    /// `UID_MIN` (`/etc/login.defs`): accounts below it are the system's.
    pub uid_min: u32,
    /// The accounts `verify` runs as or is installed to run as, by name.
    pub verify_accounts: Vec<String>,
    /// The uid `verify` runs as, if known.
    pub verify_uid: Option<u32>,
}

impl AccountFacts {
    /// No facts: every template row is refused. What an input gets until its caller gives
    /// facts, so a caller that forgets fails closed.
    pub fn unknown() -> Self {
        Self {
            account: Account::Unknown("no account facts were given to the policy".to_owned()),
            uid_min: login_defs::DEFAULT_UID_MIN,
            verify_accounts: vec![VERIFY_ACCOUNT.to_owned()],
            verify_uid: None,
        }
    }

    /// This machine's facts about `principal`: its uid (through NSS, as sshd sees it),
    /// `UID_MIN` from `/etc/login.defs`, and the verify accounts ([`VERIFY_ACCOUNT`] and the
    /// account this process runs as).
    pub fn of_system(principal: &str) -> Self {
        let account = match opk_os::account::user_by_name(principal) {
            Ok(Some(user)) => Account::Uid(user.uid),
            Ok(None) => Account::Missing,
            Err(error) => Account::Unknown(error.to_string()),
        };
        let euid = opk_os::account::effective_uid();
        let mut verify_accounts = vec![VERIFY_ACCOUNT.to_owned()];
        if let Some(name) = euid.and_then(opk_os::account::user_name)
            && name != VERIFY_ACCOUNT
        {
            verify_accounts.push(name);
        }
        Self {
            account,
            uid_min: login_defs::uid_min(),
            verify_accounts,
            verify_uid: euid,
        }
    }

    /// Why a template row may not grant `principal`, or `None` when it may.
    pub fn template_refusal(&self, principal: &str) -> Option<TemplateRefusal> {
        let uid = match &self.account {
            Account::Uid(uid) => Some(*uid),
            Account::Missing | Account::Unknown(_) => None,
        };
        if principal == "root" || uid == Some(0) {
            return Some(TemplateRefusal::Root);
        }
        if self.verify_accounts.iter().any(|name| name == principal)
            || uid.is_some_and(|uid| Some(uid) == self.verify_uid)
        {
            return Some(TemplateRefusal::VerifyAccount);
        }
        match &self.account {
            Account::Missing => Some(TemplateRefusal::NoAccount),
            Account::Unknown(why) => Some(TemplateRefusal::LookupFailed(why.clone())),
            Account::Uid(uid) if *uid < self.uid_min => Some(TemplateRefusal::SystemAccount {
                uid: *uid,
                uid_min: self.uid_min,
            }),
            Account::Uid(OVERFLOW_UID) => Some(TemplateRefusal::Nobody),
            Account::Uid(_) => None,
        }
    }
}

/// Why a template row that matched the token still does not grant the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRefusal {
    /// The account is `root`, or has uid 0.
    Root,
    /// `verify` runs as this account, or is installed to.
    VerifyAccount,
    /// A system account.
    SystemAccount {
        /// Its uid.
        uid: u32,
        /// `UID_MIN`.
        uid_min: u32,
    },
    /// `nobody`: the overflow uid ([`OVERFLOW_UID`]).
    Nobody,
    /// No such account.
    NoAccount,
    /// The account could not be looked up.
    LookupFailed(String),
}

impl fmt::Display for TemplateRefusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => formatter.write_str(
                "a template never grants root (or a uid 0 account); write a row naming it",
            ),
            Self::VerifyAccount => formatter.write_str(
                "a template never grants the account opkssh verify runs as; write a row naming it",
            ),
            Self::SystemAccount { uid, uid_min } => write!(
                formatter,
                "a template never grants a system account (uid {uid}, below UID_MIN {uid_min} of {}); write a row naming it",
                login_defs::LOGIN_DEFS
            ),
            Self::Nobody => write!(
                formatter,
                "a template never grants nobody's account (uid {OVERFLOW_UID}); write a row naming it"
            ),
            Self::NoAccount => {
                formatter.write_str("a template never grants an account that does not exist")
            }
            Self::LookupFailed(why) => write!(
                formatter,
                "a template grants no account it cannot look up ({why})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(account: Account) -> AccountFacts {
        AccountFacts {
            account,
            uid_min: 1000,
            verify_accounts: vec![VERIFY_ACCOUNT.to_owned(), "sshkeys".to_owned()],
            verify_uid: Some(990),
        }
    }

    #[test]
    fn refusals_in_order() {
        let people = facts(Account::Uid(1000));
        assert_eq!(people.template_refusal("alice"), None);
        assert_eq!(people.template_refusal("root"), Some(TemplateRefusal::Root));
        assert_eq!(
            facts(Account::Uid(0)).template_refusal("toor"),
            Some(TemplateRefusal::Root)
        );
        assert_eq!(
            people.template_refusal(VERIFY_ACCOUNT),
            Some(TemplateRefusal::VerifyAccount)
        );
        assert_eq!(
            people.template_refusal("sshkeys"),
            Some(TemplateRefusal::VerifyAccount)
        );
        // Another name for verify's own uid.
        assert_eq!(
            facts(Account::Uid(990)).template_refusal("alias"),
            Some(TemplateRefusal::VerifyAccount)
        );
        assert_eq!(
            facts(Account::Uid(999)).template_refusal("daemon"),
            Some(TemplateRefusal::SystemAccount {
                uid: 999,
                uid_min: 1000
            })
        );
        // nobody sits above UID_MIN on Debian and Red Hat alike.
        assert_eq!(
            facts(Account::Uid(OVERFLOW_UID)).template_refusal("nobody"),
            Some(TemplateRefusal::Nobody)
        );
        assert_eq!(facts(Account::Uid(65533)).template_refusal("big"), None);
        assert_eq!(
            facts(Account::Missing).template_refusal("alice"),
            Some(TemplateRefusal::NoAccount)
        );
        assert!(matches!(
            facts(Account::Unknown("nss down".into())).template_refusal("alice"),
            Some(TemplateRefusal::LookupFailed(_))
        ));
        assert!(matches!(
            AccountFacts::unknown().template_refusal("alice"),
            Some(TemplateRefusal::LookupFailed(_))
        ));
        // UID_MIN is whatever the facts say.
        let low = AccountFacts {
            uid_min: 500,
            ..facts(Account::Uid(600))
        };
        assert_eq!(low.template_refusal("alice"), None);
        let zero = AccountFacts {
            uid_min: 0,
            ..facts(Account::Uid(0))
        };
        assert_eq!(zero.template_refusal("toor"), Some(TemplateRefusal::Root));
    }

    #[test]
    fn this_machine_has_root() {
        let facts = AccountFacts::of_system("root");
        assert_eq!(facts.account, Account::Uid(0));
        assert_eq!(facts.template_refusal("root"), Some(TemplateRefusal::Root));
        assert!(facts.verify_accounts.contains(&VERIFY_ACCOUNT.to_owned()));
        let missing = AccountFacts::of_system("no-such-account-opkssh-test");
        assert_eq!(missing.account, Account::Missing);
    }
}
