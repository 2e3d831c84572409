//! Fuzzes the pool's decoders of what other hosts send: the bytes as a caller's handshake
//! (its claim and proof, then its first message), as sealed records, as an agent's
//! control messages (and the pool's, as an agent reads them), and as a remote worker's
//! stream of finished jobs copied into a mirror arena.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (messages, jobs) = proctor::__fuzz::decode_remote(data);
    // Each message takes at least its 4-byte length, each job its 28-byte header.
    assert!(messages * 4 <= data.len(), "{messages} messages from {} bytes", data.len());
    assert!(jobs * 28 <= data.len(), "{jobs} jobs from {} bytes", data.len());
});
