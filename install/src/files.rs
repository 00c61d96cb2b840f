//! The installer's file writes, each through [`opk_os::atomic_file`]: the new file has its final
//! mode and owner before it is renamed over the target, so it never appears with others.

use opk_os::atomic_file::FileMode;
use std::path::Path;

pub(crate) use opk_os::atomic_file::AtomicWriteError as WriteError;

/// Replaces `path` with `contents` atomically, owned by `owner` when given (needs root).
pub(crate) fn write_atomic_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), WriteError> {
    opk_os::atomic_file::replace(path, contents, FileMode { mode, owner })
}
