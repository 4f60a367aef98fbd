//! Reading a file the job expects to be small (a rules file, a hostfile) with a cap, so that a
//! path to `/dev/zero` or a huge file by mistake is one line, not gigabytes of memory.

use std::io::Read;
use std::path::Path;

/// The most a rules file or a hostfile may hold: far beyond any real one (the built-in rules
/// are 2 KB, a hostfile a line per process).
pub const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// The bytes of `path`, or an error if it cannot be read or holds more than `limit` bytes
/// (read up to one byte past the limit, never further).
pub fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("it holds more than {limit} bytes, the most this file may be: is it the right file?"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_up_to_the_limit_is_read_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, [b'x'; 10]).expect("write");
        assert_eq!(read_small(&path, 10).expect("read").len(), 10);
        let error = read_small(&path, 9).expect_err("too large");
        assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(error.to_string().contains("more than 9 bytes"), "{error}");
    }

    #[test]
    fn an_endless_file_is_refused_after_the_limit() {
        let error = read_small(Path::new("/dev/zero"), 1024).expect_err("endless");
        assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge);
    }
}
