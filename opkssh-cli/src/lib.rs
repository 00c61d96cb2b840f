//! Building blocks of the `opkssh` command that are shared between subcommands and tested on
//! their own: how files are written.

#![forbid(unsafe_code)]

pub mod files;
