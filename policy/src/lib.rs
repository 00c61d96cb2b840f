//! opkssh server policy: `/etc/opk/providers`, `auth_id` files, `/etc/opk/config.yml`,
//! `policy.d` plugins, and the allow/deny decision with a trace of why.
//!
//! Parsing works on bytes and strings; reading files and checking their modes is a thin edge
//! ([`perms`], [`Enforcer`]). The decision takes a [`PolicyInput`] built from a verified PK
//! token, so nothing reaches [`Decision::Allow`] without one.
//!
//! # Use from `verify`
//! ```no_run
//! use opk_core::verify::VerifiedPkToken;
//! use policy::{AccountFacts, ConfigDir, Enforcer, HomeAccess, PolicyInput, SshRequest};
//!
//! fn decide(token: &VerifiedPkToken, principal: &str, log: &mut Vec<String>) -> bool {
//!     let dir = ConfigDir::new(policy::DEFAULT_CONFIG_DIR);
//!     // A config.yml that exists but cannot be trusted denies (Go would drop the deny lists).
//!     let config = match dir.load_server_config_if_present() {
//!         Ok(config) => config.unwrap_or_default(),
//!         Err(error) => {
//!             log.push(format!("deny: {error}"));
//!             return false;
//!         }
//!     };
//!     let program = std::env::current_exe().unwrap_or_default();
//!     let enforcer = Enforcer::new(dir)
//!         .with_deny_lists(config.deny_lists())
//!         .with_env_vars(config.env_vars.clone())
//!         .with_home_access(HomeAccess::sudo(program));
//!     let input = PolicyInput::new(token, principal)
//!         .with_ssh(SshRequest {
//!             cert_b64: "%k".into(),
//!             key_type: "%t".into(),
//!             extra_args: Vec::new(),
//!         })
//!         // Template rows grant only people's accounts; without facts they grant nothing.
//!         .with_account_facts(AccountFacts::of_system(principal));
//!     let evaluation = enforcer.evaluate(&input);
//!     log.extend(evaluation.notes);
//!     // Every step, e.g. "fail  auth_id row /etc/opk/auth_id:3: principal root != alice".
//!     log.extend(evaluation.decision.trace().steps.iter().map(ToString::to_string));
//!     log.push(evaluation.decision.to_string()); // one line: "allow: … [check: file:line]"
//!     evaluation.decision.is_allow()
//! }
//! ```
//! Then every certificate principal must pass [`is_safe_principal`] before it is echoed.
//!
//! # Differences from Go
//! Same files, same meaning; stricter where Go is lenient in a way that can hurt:
//! - system files must also be owned by root (Go checks only their mode);
//! - owners and modes are read from the open file (`fstat`), not by running `stat`;
//! - an empty identity attribute, and an empty `email`/`sub` claim, never match (Go lets an
//!   empty attribute match a token without an email);
//! - an `oidc-match-end:email:` suffix without `@` (a domain) matches only at a label boundary:
//!   `example.com` lets in `@example.com` and `@eu.example.com`, not `@evil-example.com`;
//! - plugins run after the `auth_id` rows, and only if no row allows (Go runs them first;
//!   both only allow, so outcomes are the same, but no plugin runs for a login a row grants);
//! - a plugin has a timeout (default 5 s, `timeout:` per plugin) and a timeout denies; its
//!   command must be an absolute path; its output is read from stdout and stderr together,
//!   capped at 64 KiB;
//! - the home policy read through `sudo readhome` uses stdout only (Go merges stderr, so sudo
//!   warnings became rows) and is bounded in time;
//! - a line that is not UTF-8 is skipped with a warning, like a line with unbalanced quotes;
//! - errors name the file and line (a bad providers row says which one).
//!
//! Beyond Go:
//! - principal templates: a row `* %u@example.com <issuer>` lets `alice@example.com` in as
//!   `alice` only ([`Template`]); Go compares `*` with the login name, so it never matches
//!   such a row, and a fleet that mixes Go and Rust servers stays safe (Go just denies);
//!   `%u` in a row with any other principal is refused, not read literally; the account name
//!   is compared byte for byte (`Alice` is another account), only the rest of an email
//!   template ignores ASCII case; a template never grants root, an account below `UID_MIN`
//!   ([`login_defs`]), `nobody`, the account verify runs as, or an account that does not exist
//!   ([`AccountFacts`]); rows naming those accounts still grant them; an email template does
//!   not match when the provider sets `email_verified` to anything but true (Go and email
//!   rows only warn), and `add` and `audit` warn about templates over claims users choose
//!   themselves (`preferred_username`, `nickname`, `name`, ...);
//! - `oidc-refreshed`, the spelling upstream's docs use, is accepted as `oidc_refreshed`.
//! - `chain_authorized_keys_command` in `config.yml` ([`chain`]): another
//!   `AuthorizedKeysCommand` (EC2 Instance Connect, SSSD) run for keys opkssh does not let in,
//!   only its well-formed `authorized_keys` lines passed on; Go has no chain.

#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(missing_docs)]

pub mod account;
pub mod audit;
pub mod auth_id;
pub mod chain;
pub mod decision;
pub mod edit;
mod enforcer;
pub mod error;
pub mod fuzzing;
pub mod home;
pub mod login_defs;
pub mod perms;
pub mod plugin;
pub mod providers;
pub mod rule;
pub mod server_config;
pub mod table;

pub use account::{Account, AccountFacts, TemplateRefusal};
pub use auth_id::{AuthIdFile, AuthRow};
pub use decision::{
    AllowProof, Check, Decision, Evaluation, Outcome, PolicyInput, SshRequest, Step, Trace,
    TraceSource, evaluate_rows,
};
pub use enforcer::{ConfigDir, DEFAULT_CONFIG_DIR, Enforcer};
pub use error::{FileError, FileErrorKind, Location};
pub use home::HomeAccess;
pub use providers::{ProviderRow, Providers};
pub use rule::{
    ClaimSet, ClaimSource, Identity, Lint, MatchKind, Severity, TEMPLATE_MARK, TEMPLATE_PRINCIPAL,
    Template, is_safe_principal, match_identity, match_template,
};
pub use server_config::{DenyLists, ServerConfig, parse_duration, parse_size};
