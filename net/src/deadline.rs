//! One deadline for a whole verify, far below sshd's LoginGraceTime: every network call gets at
//! most what is left of it.

use std::time::{Duration, Instant};

/// The point in time by which a verify must have decided.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
        }
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The time a single step may take: its own cap, or what is left, whichever is smaller.
    pub fn cap(&self, step: Duration) -> Duration {
        self.remaining().min(step)
    }
}
