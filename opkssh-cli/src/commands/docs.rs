//! `opkssh completions <shell>` and `opkssh man`: shell completions and manual pages generated
//! from the clap definitions in `cli.rs`, so they never drift from the real command line.
//! `main.rs` hands the whole command line's definition in (this module does not import `cli`,
//! which imports it).

use crate::error::CommandError;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `opkssh completions <shell>`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// `opkssh man [--out-dir DIR]`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// Write opkssh.1 and one page per subcommand (opkssh-login.1, …) into DIR instead of
    /// printing opkssh.1.
    #[arg(long = "out-dir", value_name = "DIR")]
    pub(crate) out_dir: Option<PathBuf>,
}

fn write_failed(error: std::io::Error) -> CommandError {
    CommandError::new(format!("failed to write output: {error}"))
}

pub(crate) fn completions(
    args: &CompletionsArgs,
    mut command: clap::Command,
) -> Result<ExitCode, CommandError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "opkssh", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(write_failed)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn man(args: &ManArgs, mut command: clap::Command) -> Result<ExitCode, CommandError> {
    // Building names every subcommand as clap shows it (`opkssh-login`, `opkssh login`).
    command.build();
    match &args.out_dir {
        None => {
            let page = render(&command, "opkssh")?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&page)
                .and_then(|()| stdout.flush())
                .map_err(write_failed)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|error| {
                CommandError::new(format!("failed to create {}: {error}", dir.display()))
            })?;
            for (name, page) in pages(&command)? {
                let path = dir.join(format!("{name}.1"));
                write_page(&path, &page)?;
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render(command: &clap::Command, title: &str) -> Result<Vec<u8>, CommandError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(title.to_owned())
        .source(format!("opkssh {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .map_err(write_failed)?;
    page.extend_from_slice(see_also(title).as_bytes());
    Ok(page)
}

/// Where the manual pages installed the user reference (the packages put docs/ there).
const DOC_DIR: &str = "/usr/share/doc/opkssh";

/// The reference documents that explain a page's command, most specific first.
fn references(title: &str) -> &'static [&'static str] {
    let command = title.strip_prefix("opkssh-").unwrap_or("");
    match command.split('-').next().unwrap_or("") {
        "" => &[
            "client.md",
            "server.md",
            "providers.md",
            "migrating-from-go.md",
            "troubleshooting.md",
        ],
        "login" | "logout" | "inspect" | "client" | "demo" => &["client.md", "providers.md"],
        "explain" | "verify" | "audit" => &["server.md", "troubleshooting.md"],
        _ => &["server.md", "migrating-from-go.md"],
    }
}

/// A SEE ALSO section naming the main page (on subcommand pages) and the reference documents.
fn see_also(title: &str) -> String {
    let mut roff = String::from(".SH \"SEE ALSO\"\n");
    if title != "opkssh" {
        roff.push_str("\\fBopkssh\\fR(1)\n.br\n");
    }
    for document in references(title) {
        roff.push_str(&format!("{DOC_DIR}/{document}\n.br\n"));
    }
    roff
}

/// The page of a built `command` (named like `opkssh-client-provider`), then those of its
/// subcommands, skipping clap's generated `help`.
fn pages(command: &clap::Command) -> Result<Vec<(String, Vec<u8>)>, CommandError> {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned();
    let mut pages = vec![(name.clone(), render(command, &name)?)];
    for subcommand in command.get_subcommands() {
        if subcommand.get_name() != "help" && !subcommand.is_hide_set() {
            pages.extend(self::pages(subcommand)?);
        }
    }
    Ok(pages)
}

fn write_page(path: &Path, page: &[u8]) -> Result<(), CommandError> {
    opk_client::files::write_atomic(path, page, 0o644)
        .map_err(|error| CommandError::new(error.to_string()))
}
