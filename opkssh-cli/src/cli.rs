//! The command line, as clap definitions only (so completions and man pages can be generated
//! from it). Subcommands, arguments and flags follow the Go opkssh (behaviour.md §1-2).

use crate::commands;
use clap::{Parser, Subcommand};

/// OpenID Connect single sign-on for SSH.
#[derive(Debug, Parser)]
#[command(
    name = "opkssh",
    disable_version_flag = true,
    arg_required_else_help = true,
    after_help = "Systems: the client (login, ssh, check, logout) runs on Linux, Windows and macOS; \
                  the server (verify and the admin commands) on Linux, x86_64 and arm64."
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
    /// Run an ssh-agent that logs in, holds the key in memory only and keeps the certificate
    /// fresh (eval "$(opkssh agent)")
    Agent(Box<commands::agent::AgentArgs>),
    /// Validate policy file entries against provider definitions
    Audit(commands::audit::AuditArgs),
    /// Exit 0 if an opkssh certificate is there and stays valid for --exp, else 1 with the
    /// reason (opkssh check || opkssh login)
    Check(commands::check::CheckArgs),
    /// Interact with client configuration
    Client(commands::client::ClientArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(commands::docs::CompletionsArgs),
    /// Run a complete login on this machine against a built-in OpenID provider, step by step
    Demo(commands::demo::DemoArgs),
    /// Show step by step why verify would allow or deny a certificate for a principal
    Explain(commands::explain::ExplainArgs),
    /// Show what an SSH certificate and its PK token contain.
    Inspect(InspectArgs),
    /// Set up this server for opkssh (as root): account, binary, /etc/opk, sshd, sudoers
    #[command(name = "install-server")]
    InstallServer(commands::install_server::InstallServerArgs),
    /// Authenticate with an OpenID provider to generate an SSH key for opkssh
    Login(Box<commands::login::LoginArgs>),
    /// Remove opkssh-generated SSH keys and certificates
    Logout(commands::logout::LogoutArgs),
    /// Print the manual page, or write one page per command into a folder
    Man(commands::docs::ManArgs),
    /// Check and fix filesystem permissions required by opkssh
    Permissions(commands::permissions::PermissionsArgs),
    /// Read the principal's home policy file
    Readhome(commands::readhome::ReadhomeArgs),
    /// Run ssh with the opkssh identity, logging in first if it is missing or about to expire
    Ssh(commands::ssh::SshArgs),
    /// Undo install-server (as root): sshd configuration, sudoers rule, binary, cache
    #[command(name = "uninstall-server")]
    UninstallServer(commands::install_server::UninstallServerArgs),
    /// Verify an opkssh certificate for sshd (AuthorizedKeysCommand ... verify %u %k %t)
    Verify(commands::verify::VerifyArgs),
}

/// `opkssh inspect <path-or-text>`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// A certificate file (e.g. ~/.ssh/id_ecdsa-cert.pub) or the certificate line itself.
    pub(crate) input: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}
