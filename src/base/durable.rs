//! Durable file writes: a file that exists is complete, and it survives a
//! power cut once the call returned. Write a temporary file beside the
//! target, fsync it, move it into place, then fsync the folder so the move
//! itself is on disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What happens when the target already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it atomically.
    Replace,
    /// Keep it: the call fails with `AlreadyExists` (create-once files
    /// such as a signing key, where two writers must not both win).
    Keep,
}

/// Writes `bytes` to `path` durably; `mode` sets Unix permissions of a new
/// file (else those of the file replaced, else the default).
pub fn write(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    existing: Existing,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().to_string());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if let Some(m) = mode {
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, m);
        }
        let mut f = opts.open(&tmp)?;
        if mode.is_none()
            && let Ok(meta) = std::fs::metadata(path)
        {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        match existing {
            Existing::Replace => std::fs::rename(&tmp, path)?,
            // A hard link fails if the target exists: create-if-absent,
            // atomically, with the content already complete.
            Existing::Keep => std::fs::hard_link(&tmp, path)?,
        }
        sync_dir(&dir)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Makes the folder's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_keeps_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write(&p, b"one", Some(0o600), Existing::Keep).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let err = write(&p, b"two", None, Existing::Keep).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write(&p, b"three", None, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "replacing keeps the permissions");
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
