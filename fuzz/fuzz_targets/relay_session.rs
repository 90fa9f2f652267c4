//! Fuzz target `relay_session`: see `tandem_tests::fuzz_targets::relay_session`.

#![forbid(unsafe_code)]
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_tests::fuzz_targets::relay_session(data);
});
