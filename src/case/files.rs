//! Reading the files a case names (the case itself, its model spec, its datasets) safely:
//! only regular files, and only up to a size cap. A FIFO named as a dataset would otherwise
//! block the run for ever, and a huge file would be read whole into memory.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Most bytes of a case file or model spec (64 MiB).
pub const MAX_CASE_FILE_BYTES: u64 = 64 << 20;

/// Most bytes of a dataset (prompts or an accuracy task's docs): 256 MiB.
pub const MAX_DATASET_BYTES: u64 = 256 << 20;

/// The bytes of the regular file at `path`, if it has at most `cap` of them. A directory, a
/// FIFO, a device or a socket is refused without being read (a FIFO is opened non-blocking,
/// so a missing writer cannot hang the open); so is a file larger than `cap`.
pub fn read_regular(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let refuse = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let kind_of = |meta: &std::fs::Metadata| {
        let t = meta.file_type();
        if t.is_dir() {
            "a directory"
        } else if t.is_symlink() {
            "a symbolic link"
        } else {
            "not a regular file (a FIFO, socket or device)"
        }
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(format!("{} is {}", path.display(), kind_of(&meta))));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // What was opened may differ from what was looked at (the path changed in between).
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(format!("{} is {}", path.display(), kind_of(&meta))));
    }
    if meta.len() > cap {
        return Err(refuse(format!(
            "{} has {} bytes, more than the cap of {cap}",
            path.display(),
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(refuse(format!(
            "{} grew past the cap of {cap} bytes while it was read",
            path.display()
        )));
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, cap: u64) -> std::io::Result<String> {
    String::from_utf8(read_regular(path, cap)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_others_refused_without_blocking() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        let file = dir.join("f.jsonl");
        std::fs::write(&file, b"0123456789").expect("write");
        assert_eq!(read_regular(&file, 10).expect("read"), b"0123456789");
        let message = read_regular(&file, 9).expect_err("too big").to_string();
        assert!(message.contains("more than the cap of 9"), "{message}");
        let message = read_regular(&dir, 10).expect_err("a dir").to_string();
        assert!(message.contains("is a directory"), "{message}");
        let fifo = dir.join("p.yaml");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("c path");
        // SAFETY: mkfifo only creates a file system node from a valid C string.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let message = read_regular(&fifo, 10).expect_err("a fifo").to_string();
        assert!(message.contains("not a regular file"), "{message}");
    }
}
