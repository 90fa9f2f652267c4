//! Fuzz target `frame_decode`: see `tandem_tests::fuzz_targets::frame_decode`.

#![forbid(unsafe_code)]
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_tests::fuzz_targets::frame_decode(data);
});
