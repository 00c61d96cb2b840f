//! A PK token in the compact form (certificates) and in the JWS JSON form.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    opk_core::fuzzing::pktoken_compact(data);
    opk_core::fuzzing::pktoken_json(data);
});
