//! Times signatures through an ssh-agent over one connection, as ssh makes them during a
//! login: `bench/agent.sh` runs it against OpenSSH's ssh-agent and against `opkssh agent`.
//!
//!   cargo run --release -p opk-client --example agent_sign -- SOCKET KEY-TYPE COUNT
//!
//! The first identity of KEY-TYPE (`ecdsa-sha2-nistp256`,
//! `ecdsa-sha2-nistp256-cert-v01@openssh.com`) signs 64 bytes COUNT times; prints the mean,
//! median and 99th percentile per signature. A certificate is asked for by its plain key (an
//! opkssh agent signs for either), since a refresh replaces the certificate mid-run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // a benchmark: a panic is a failure

use opk_client::agent::Agent;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, socket, key_type, count] = arguments.as_slice() else {
        eprintln!("usage: agent_sign SOCKET KEY-TYPE COUNT");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let mut agent = Agent::connect(Path::new(socket)).unwrap();
    let identities = agent.identities().unwrap();
    let identity = identities
        .iter()
        .find(|identity| {
            let name_len = u32::from_be_bytes(identity.key_blob[..4].try_into().unwrap());
            let name = &identity.key_blob[4..4 + usize::try_from(name_len).unwrap()];
            name == key_type.as_bytes()
        })
        .unwrap_or_else(|| panic!("no identity of type {key_type} at {socket}"));
    let blob = match opk_core::sshcert::ssh_key::Certificate::from_bytes(&identity.key_blob) {
        Ok(certificate) => {
            use opk_core::sshcert::ssh_key::encoding::Encode as _;
            let mut plain = Vec::new();
            certificate.public_key().encode(&mut plain).unwrap();
            plain
        }
        Err(_) => identity.key_blob.clone(),
    };
    let data = [0x5a_u8; 64];
    // Warm-up, as hyperfine would.
    for _ in 0..10 {
        agent.sign(&blob, &data, 0).unwrap();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let signature = agent.sign(&blob, &data, 0).unwrap();
        times.push(start.elapsed());
        assert!(!signature.is_empty());
    }
    times.sort();
    let total: Duration = times.iter().sum();
    let mean = total / u32::try_from(count.max(1)).unwrap();
    let median = times[count / 2];
    let p99 = times[(count * 99 / 100).min(count - 1)];
    println!(
        "{count} signatures: mean {:.1} µs, median {:.1} µs, p99 {:.1} µs",
        mean.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}
