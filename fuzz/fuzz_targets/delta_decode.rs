//! Fuzz target `delta_decode`: see `tandem_tests::fuzz_targets::delta_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_tests::fuzz_targets::delta_decode(data);
});
