//! `opkssh readhome <principal>` (behaviour.md §2.5; Go: commands/readhome.go). Run by
//! `verify` through `sudo -n`; prints the principal's `~/.opk/auth_id` byte for byte after
//! the checks in [`policy::home::read_home`].

use crate::args::ConfigDirArg;
use crate::error::CommandError;
use std::io::Write;
use std::process::ExitCode;

/// `opkssh readhome <principal>`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReadhomeArgs {
    /// The account whose home policy to print.
    pub(crate) principal: String,
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
}

pub(crate) fn run(args: &ReadhomeArgs) -> Result<ExitCode, CommandError> {
    // Run as root by sudo for verify, which cannot kill a root process: never outlive
    // verify's wait, whatever the read does.
    std::thread::spawn(|| {
        std::thread::sleep(policy::home::READHOME_DEADLINE);
        eprintln!(
            "Failed to read user's home policy file: gave up after {:?}",
            policy::home::READHOME_DEADLINE
        );
        std::process::exit(1);
    });
    match policy::home::read_home(&args.principal) {
        Ok(content) => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&content)
                .and_then(|()| stdout.flush())
                .map_err(|error| CommandError::new(format!("failed to write output: {error}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("Failed to read user's home policy file: {error}");
            Err(CommandError::new(error.to_string()))
        }
    }
}
