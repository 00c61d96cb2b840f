//! Requests to `opkssh agent` (the ssh-agent server) as one connection's byte stream: framed,
//! parsed and answered with a held certificate and no upstream.
#![no_main]

use opk_client::agent_server::Held;
use opk_client::agent_server::fuzzing::{held_identity, messages};
use std::sync::OnceLock;

fn held() -> Held {
    static HELD: OnceLock<Held> = OnceLock::new();
    // The harness's own set-up, not fuzzed input: without an identity there is nothing to fuzz.
    HELD.get_or_init(|| held_identity().expect("a certificate for the fuzzing key"))
        .clone()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    messages(data, Some(held()));
});
