//! The YAML configs: `/etc/opk/config.yml` and `policy.d` plugin files.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| policy::fuzzing::yaml_configs(data));
