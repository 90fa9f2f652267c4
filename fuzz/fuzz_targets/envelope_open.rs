//! Fuzz target `envelope_open`: see `tandem_tests::fuzz_targets::envelope_open`.

#![forbid(unsafe_code)]
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_tests::fuzz_targets::envelope_open(data);
});
