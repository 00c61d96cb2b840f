//! Signals a long-running process answers (`opkssh agent`): asked to stop (SIGTERM, SIGINT,
//! SIGHUP) or to log in again (SIGUSR1).
//!
//! No handler runs inside a signal: the signals are blocked in the calling thread, and so in
//! every thread it starts afterwards, and one thread takes them one at a time with `sigwait`.
//! That needs no `unsafe` and no async-signal-safe code. Child processes start with an empty
//! mask (the standard library resets it), so the programs opkssh runs see signals as usual.

/// What a signal asks of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM, SIGINT or SIGHUP: clean up and exit.
    Stop,
    /// SIGUSR1: log in again.
    LogIn,
}

/// The blocked signals, to be taken with [`Signals::wait`].
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    set: nix::sys::signal::SigSet,
}

impl Signals {
    /// Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 in this thread. Call it before starting any
    /// thread, so that none of them gets the signals' default action (which is to end the
    /// process at once).
    ///
    /// # Errors
    /// The mask could not be changed; on Windows [`Unsupported`](crate::Unsupported): there
    /// the console's Ctrl-C still ends the process, and no signal asks for a login.
    pub fn block() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use nix::sys::signal::{SigSet, Signal};
            let mut set = SigSet::empty();
            for signal in [
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGHUP,
                Signal::SIGUSR1,
            ] {
                set.add(signal);
            }
            set.thread_block().map_err(std::io::Error::from)?;
            Ok(Self { set })
        }
        #[cfg(windows)]
        {
            Err(crate::Unsupported { what: "signals" }.into())
        }
    }

    /// Waits for the next blocked signal.
    ///
    /// # Errors
    /// `sigwait` failed.
    pub fn wait(&self) -> std::io::Result<Request> {
        #[cfg(unix)]
        {
            use nix::sys::signal::Signal;
            loop {
                match self.set.wait().map_err(std::io::Error::from)? {
                    Signal::SIGUSR1 => return Ok(Request::LogIn),
                    Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP => return Ok(Request::Stop),
                    // Not in the set; sigwait does not return others.
                    _ => {}
                }
            }
        }
        #[cfg(windows)]
        {
            Err(crate::Unsupported { what: "signals" }.into())
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_blocked_signal_is_taken_by_wait_not_by_its_default_action() {
        // The test harness runs tests in threads: block here, then raise (which, in a process with
        // threads, signals the calling thread only).
        let signals = Signals::block().unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGUSR1).unwrap();
        assert_eq!(signals.wait().unwrap(), Request::LogIn);
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
        assert_eq!(signals.wait().unwrap(), Request::Stop);
    }
}
