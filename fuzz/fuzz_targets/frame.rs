//! Fuzzes the pool's wire-frame decoder (`proctor::__fuzz::decode_frame`) with arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(n)) = proctor::__fuzz::decode_frame(data) {
        assert!(n <= data.len(), "frame used {n} bytes of {}", data.len());
        assert!(n >= 4, "frame used {n} bytes, less than its length prefix");
    }
});
