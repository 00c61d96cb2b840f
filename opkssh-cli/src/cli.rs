//! The command line, as clap definitions only. Subcommands, arguments and flags follow the
//! Go opkssh (behaviour.md §1-2).
//!
//! Policy branch wiring: the lead's `cli.rs` already has `Inspect`; this adds the policy
//! subcommands, whose argument structs live in their command files.

use crate::commands;
use clap::{Parser, Subcommand};

/// OpenID Connect single sign-on for SSH.
#[derive(Debug, Parser)]
#[command(
    name = "opkssh",
    disable_version_flag = true,
    arg_required_else_help = true
)]
pub(crate) struct Cli {
    /// Print the version and exit.
    #[arg(short = 'v', long = "version", global = false)]
    pub(crate) version: bool,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Appends new rule to the policy file
    Add(commands::add::AddArgs),
    /// Validate policy file entries against provider definitions
    Audit(commands::audit::AuditArgs),
    /// Check and fix filesystem permissions required by opkssh
    Permissions(commands::permissions::PermissionsArgs),
    /// Read the principal's home policy file
    Readhome(commands::readhome::ReadhomeArgs),
}
