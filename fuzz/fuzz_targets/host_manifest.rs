#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keyrack_fuzz::host_manifest(data));
