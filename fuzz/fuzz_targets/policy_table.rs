//! The policy tables: `/etc/opk/providers` and `auth_id` files (parse, audit, add, match).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    policy::fuzzing::providers_file(data);
    policy::fuzzing::auth_id_file(data);
});
