//! Reading a traced process's memory: the path or socket address a system call points at.
//!
//! Read with `process_vm_readv` while the call is suspended in the kernel. Another thread of
//! the target may rewrite the bytes after we read them and before the kernel does
//! (seccomp_unotify(2), "Caveats"): what is read is evidence of what the call asked for, never
//! a decision the sandbox relies on. Reads stop at page boundaries so that a string that
//! ends just before an unmapped page is still read.

use std::io::IoSliceMut;

use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

/// Longest path read (PATH_MAX).
pub const MAX_PATH: usize = 4096;
const PAGE: usize = 4096;

/// Why memory could not be read (the process died, the pointer is bad).
#[derive(Debug, thiserror::Error)]
#[error("cannot read the traced process's memory at {address:#x}: {source}")]
pub struct MemoryError {
    /// The address.
    pub address: u64,
    /// What the kernel said.
    #[source]
    pub source: nix::Error,
}

/// Reads up to `len` bytes at `address` of `pid`; fewer when the range ends in unmapped
/// memory.
pub fn read_bytes(pid: Pid, address: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
    let mut out = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let at = address.saturating_add(done as u64);
        // Never cross a page in one read: a partial read would lose the whole chunk.
        let in_page = PAGE - (at as usize % PAGE);
        let want = in_page.min(len - done);
        let mut local = [IoSliceMut::new(&mut out[done..done + want])];
        let remote = [RemoteIoVec {
            base: at as usize,
            len: want,
        }];
        match process_vm_readv(pid, &mut local, &remote) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(source) if done > 0 => {
                let _ = source;
                break;
            }
            Err(source) => {
                return Err(MemoryError {
                    address: at,
                    source,
                });
            }
        }
    }
    out.truncate(done);
    Ok(out)
}

/// Reads the NUL-terminated string at `address` (at most [`MAX_PATH`] bytes); `None` when
/// it has no NUL within that length.
pub fn read_c_string(pid: Pid, address: u64) -> Result<Option<Vec<u8>>, MemoryError> {
    let mut out = Vec::new();
    let mut at = address;
    while out.len() < MAX_PATH {
        let in_page = PAGE - (at as usize % PAGE);
        let chunk = read_bytes(pid, at, in_page.min(MAX_PATH - out.len()))?;
        if chunk.is_empty() {
            return Ok(None);
        }
        if let Some(end) = chunk.iter().position(|b| *b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(Some(out));
        }
        at = at.saturating_add(chunk.len() as u64);
        out.extend_from_slice(&chunk);
    }
    Ok(None)
}

/// Reads a little-endian u64 at `address`.
pub fn read_u64(pid: Pid, address: u64) -> Result<Option<u64>, MemoryError> {
    let bytes = read_bytes(pid, address, 8)?;
    Ok(bytes.try_into().ok().map(u64::from_le_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_and_words_of_this_process() {
        let me = Pid::this();
        let text = b"/work/src/main.c\0trailing";
        let at = text.as_ptr() as u64;
        assert_eq!(
            read_c_string(me, at).unwrap().as_deref(),
            Some(&b"/work/src/main.c"[..])
        );
        let word: u64 = 0x0102_0304_0506_0708;
        assert_eq!(read_u64(me, &raw const word as u64).unwrap(), Some(word));
        // A string with no NUL within PATH_MAX is not a path.
        let long = vec![b'a'; MAX_PATH + 10];
        assert_eq!(read_c_string(me, long.as_ptr() as u64).unwrap(), None);
        // Address 0 is never mapped.
        assert!(read_c_string(me, 0).is_err());
    }
}
