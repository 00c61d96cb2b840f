//! `opkssh client provider list` (behaviour.md §2.10): the aliases and issuers of the client
//! config. Unlike `login`, there is no fallback to the built-in default config.

use crate::error::CliError;
use opk_client::client_config::ClientConfig;
use opk_client::placement;
use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `opkssh client`.
#[derive(Debug, clap::Args)]
#[command(arg_required_else_help = true)]
pub(crate) struct ClientArgs {
    #[command(subcommand)]
    pub(crate) command: Option<ClientCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClientCommand {
    /// Client provider configuration
    Provider(ProviderArgs),
}

/// `opkssh client provider`.
#[derive(Debug, clap::Args)]
#[command(arg_required_else_help = true)]
pub(crate) struct ProviderArgs {
    #[command(subcommand)]
    pub(crate) command: Option<ProviderCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProviderCommand {
    /// List the providers of the client config
    List(ListArgs),
}

/// `opkssh client provider list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Client config file (default: ~/.opk/config.yml).
    #[arg(long, value_name = "FILE")]
    pub(crate) config_path: Option<PathBuf>,
}

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

pub(crate) fn run(args: &ClientArgs) -> Result<ExitCode, CliError> {
    match &args.command {
        Some(ClientCommand::Provider(ProviderArgs {
            command: Some(ProviderCommand::List(list)),
        })) => list_providers(list),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn list_providers(args: &ListArgs) -> Result<ExitCode, CliError> {
    let path = match &args.config_path {
        Some(path) => path.clone(),
        None => opk_os::dirs::client_config_path(
            &placement::home_dir().ok_or_else(|| fail("could not find the home directory"))?,
        ),
    };
    let text = std::fs::read_to_string(&path).map_err(|error| {
        fail(format!(
            "Unable to load providers. Failed to read client config file {}: {error} (create \
             one with: opkssh login --create-config)",
            path.display()
        ))
    })?;
    let config = ClientConfig::parse(&text)
        .map_err(|error| fail(format!("Unable to load providers. {error}")))?;
    let rows: Vec<(&str, &str)> = config
        .providers
        .iter()
        .flat_map(|entry| entry.aliases().map(|alias| (alias, entry.issuer.as_str())))
        .collect();
    if std::io::stdout().is_terminal() {
        let width = rows
            .iter()
            .map(|(alias, _)| alias.len())
            .chain(["Alias".len()])
            .max()
            .unwrap_or(0);
        println!("{:<width$}  Issuer", "Alias");
        println!("{:<width$}  ------", "-----");
        for (alias, issuer) in &rows {
            println!("{alias:<width$}  {issuer}");
        }
    } else {
        let width = rows.iter().map(|(alias, _)| alias.len()).max().unwrap_or(0) + 1;
        for (alias, issuer) in &rows {
            println!("{alias:<width$}{issuer}");
        }
    }
    let mut seen = BTreeSet::new();
    if let Some((alias, _)) = rows.iter().find(|(alias, _)| !seen.insert(*alias)) {
        return Err(fail(format!("duplicate provider alias found: {alias}")));
    }
    Ok(ExitCode::SUCCESS)
}
