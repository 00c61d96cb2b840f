//! `opkssh`: OpenID Connect single sign-on for SSH, a drop-in for the Go opkssh.

#![forbid(unsafe_code)]

mod args;
mod cli;
mod commands;
mod error;
mod provider;
mod report;
mod running_agent;
mod shown;

use clap::{CommandFactory as _, Parser as _};
use cli::{Cli, Command};
use error::CliError;
use std::process::ExitCode;

fn main() -> ExitCode {
    let command_line = commands::ssh::mark_ssh_arguments(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(command_line) {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    if cli.version {
        println!("opkssh version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Some(Command::Add(args)) => commands::add::run(&args).map_err(CliError::from),
        Some(Command::Agent(args)) => commands::agent::run(&args),
        Some(Command::Audit(args)) => commands::audit::run(&args).map_err(CliError::from),
        Some(Command::Check(args)) => commands::check::run(&args),
        Some(Command::Client(args)) => commands::client::run(&args),
        Some(Command::Completions(args)) => {
            commands::docs::completions(&args, Cli::command()).map_err(CliError::from)
        }
        Some(Command::Demo(args)) => commands::demo::run(&args),
        Some(Command::Explain(args)) => commands::explain::run(&args),
        Some(Command::Inspect(args)) => commands::inspect::run(&args),
        Some(Command::InstallServer(args)) => commands::install_server::run_install(&args),
        Some(Command::Login(args)) => commands::login::run(&args),
        Some(Command::Logout(args)) => commands::logout::run(&args),
        Some(Command::Man(args)) => {
            commands::docs::man(&args, Cli::command()).map_err(CliError::from)
        }
        Some(Command::Permissions(args)) => {
            commands::permissions::run(&args).map_err(CliError::from)
        }
        Some(Command::Readhome(args)) => commands::readhome::run(&args).map_err(CliError::from),
        Some(Command::Ssh(args)) => commands::ssh::run(&args),
        Some(Command::UninstallServer(args)) => commands::install_server::run_uninstall(&args),
        Some(Command::Verify(args)) => commands::verify::run(&args),
        None => Err(CliError::Usage("no command given".into())),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error}");
            error.exit_code()
        }
    }
}

/// Help and version requests print and succeed; anything else is Go's `Error: …`, exit 1,
/// without the usage text.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::InvalidSubcommand => {
            let name = match error.get(clap::error::ContextKind::InvalidSubcommand) {
                Some(clap::error::ContextValue::String(name)) => name.as_str(),
                _ => "",
            };
            eprintln!("Error: unknown command \"{name}\" for \"opkssh\"");
            ExitCode::FAILURE
        }
        _ => {
            // One line, as Go prints it, but whole: clap continues the message on the next
            // lines (the missing argument, the possible values) before a blank line.
            let rendered = error.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
                .collect();
            eprintln!("Error: {}", message.join(" ").trim_start_matches("error: "));
            ExitCode::FAILURE
        }
    }
}
