//! The pool's secret as the agent takes it: from its environment variable, whose bytes are
//! overwritten in the process's environment block (not just removed: `remove_var` leaves
//! them readable in `/proc/<pid>/environ`), or else from the first line of stdin; kept only
//! in memory that is zeroed when dropped. The agent imports [`Credentials`],
//! [`credentials`] and [`take_secret_var`].

use std::io::Read;

use super::SECRET_VAR;
use crate::remote::proto::{self, KEY_LEN};
use zeroize::{Zeroize, Zeroizing};

/// The pool's secret, and with TLS its certificate's fingerprint.
pub(super) struct Credentials {
    pub(super) secret: Zeroizing<[u8; KEY_LEN]>,
    pub(super) pin: Option<[u8; KEY_LEN]>,
}

/// The credentials from the environment variable's value (taken by [`take_secret_var`]),
/// or else from stdin; their copies are zeroed when dropped.
pub(super) fn credentials(from_env: Option<Zeroizing<String>>) -> Result<Credentials, String> {
    let text = match from_env {
        Some(v) => v,
        None => {
            let mut line = Zeroizing::new(String::with_capacity(4 * KEY_LEN + 2));
            let mut byte = [0u8; 1];
            // One byte at a time: nothing past the line is taken from stdin.
            while std::io::stdin()
                .read(&mut byte)
                .map_err(|e| e.to_string())?
                == 1
            {
                if byte[0] == b'\n' {
                    break;
                }
                line.push(byte[0] as char);
                if line.len() > 4 * KEY_LEN + 1 {
                    break;
                }
            }
            byte.zeroize();
            line
        }
    };
    let (secret, pin) = proto::parse_credentials(&text).ok_or_else(|| {
        format!("no pool secret: {SECRET_VAR} is unset and stdin did not hold one")
    })?;
    Ok(Credentials {
        secret: Zeroizing::new(secret),
        pin,
    })
}

/// The secret's variable, taken out of the environment: its value (zeroed when dropped),
/// with the environment block wiped (see [`scrub_env`]).
pub(super) fn take_secret_var() -> Option<Zeroizing<String>> {
    // `var` copies the value straight from the block to the heap (no copy on the stack).
    let value = std::env::var(SECRET_VAR).ok().map(Zeroizing::new);
    scrub_env(SECRET_VAR);
    value
}

/// Removes `name` from the environment, and first overwrites its value where the kernel
/// put it: `remove_var` only takes the entry out of `environ`, and the original
/// `NAME=value` bytes stay in the process's environment block, which any code in the
/// process (and `/proc/<pid>/environ`) can read.
fn scrub_env(name: &str) {
    let prefix = format!("{name}=");
    // SAFETY: the agent has one thread (checked in `run` before this is called), so nothing
    // else reads or changes the environment meanwhile. `environ` is a null-terminated array
    // of pointers to null-terminated strings, each in writable memory (the block the kernel
    // set up at exec, or strings `setenv` allocated); the bytes written stay within the
    // string (before its terminating null), which is left in place.
    unsafe {
        let mut entry = libc::environ as *const *mut libc::c_char;
        while !entry.is_null() && !(*entry).is_null() {
            let s = *entry;
            let bytes = std::ffi::CStr::from_ptr(s).to_bytes();
            if bytes.starts_with(prefix.as_bytes()) {
                let value = s.add(prefix.len());
                let len = bytes.len() - prefix.len();
                for i in 0..len {
                    std::ptr::write_volatile(value.add(i), b'0' as libc::c_char);
                }
            }
            entry = entry.add(1);
        }
        std::env::remove_var(name);
    }
}
