//! Where the TLS server puts the development CA it makes without --cert:
//! a directory only its user can enter, never a fixed shared path another
//! user could create first or read.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `$XDG_RUNTIME_DIR/netstrata` (a per-user directory by definition), else
/// `$XDG_CACHE_HOME/netstrata` or `~/.cache/netstrata`, else a fresh
/// directory in the temporary directory; made with mode 0700, or brought
/// to it if it exists.
pub(crate) fn private_dir() -> io::Result<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_RUNTIME_DIR")
        .or_else(|| absolute("XDG_CACHE_HOME"))
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")));
    match base {
        Some(base) => {
            std::fs::create_dir_all(&base)?;
            let dir = base.join("netstrata");
            match DirBuilder::new().mode(0o700).create(&dir) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => make_private(&dir)?,
                other => other?,
            }
            Ok(dir)
        }
        None => fresh_temp_dir(),
    }
}

/// An existing directory (not a link to one) with group and others
/// shut out.
fn make_private(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A directory of a name nobody could have taken before, mode 0700.
fn fresh_temp_dir() -> io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("netstrata-{}-{nanos}", std::process::id()));
    // `create` fails if the name exists: nobody else's directory is used.
    DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Writes `contents` to `path`, readable and writable by its user only
/// (0600, also when the file existed).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.write_all(contents)
}
