//! A certificate line (`<type> <base64> [comment]`), as `opkssh verify` and `login` read it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| opk_core::fuzzing::ssh_cert_line(data));
