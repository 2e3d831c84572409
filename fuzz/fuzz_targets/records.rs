//! Fuzzes the parent's outcome-record decoder: the first 2 bytes are a little-endian `u16`
//! record count, the rest is the committed record bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // At most 1 023 records: every claimed record past the bytes becomes an error outcome,
    // three times over (both decoding paths and the captured one), and a count of 65 535
    // held the fuzzer to a dozen inputs a second without finding more.
    let count = (u16::from_le_bytes([data[0], data[1]]) & 0x3ff) as usize;
    let ok = proctor::__fuzz::decode_records(&data[2..], count);
    assert!(ok <= count, "{ok} Ok outcomes from {count} records");
});
