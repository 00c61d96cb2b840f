//! The `agent_message` fuzz target's body on stable, over its seed corpus: each seed gets the
//! replies the agent server gives a real client, and an oversized or broken frame ends the
//! stream without a reply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_client::agent_server::fuzzing::{held_identity, messages};
use std::collections::BTreeMap;
use std::path::Path;

fn seeds() -> BTreeMap<String, Vec<u8>> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/agent_message"
    ));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path
                .file_name()?
                .to_str()?
                .strip_prefix("seed-")?
                .to_owned();
            Some((name, std::fs::read(&path).unwrap()))
        })
        .collect()
}

/// The message number of each reply.
fn kinds(data: &[u8]) -> Vec<u8> {
    messages(data, Some(held_identity().unwrap()))
        .iter()
        .map(|reply| reply[0])
        .collect()
}

#[test]
fn every_seed_gets_the_replies_a_client_would() {
    let seeds = seeds();
    let expected: &[(&str, &[u8])] = &[
        ("request-identities", &[12]),
        // The fuzzing key's plain blob: signed here, whatever the RSA flags say.
        ("sign-held-plain-key", &[14]),
        ("sign-held-rsa-flags", &[14]),
        // Anything else would go upstream; there is none.
        ("sign-other-key", &[5]),
        ("lock-then-unlock", &[6, 12, 5, 6, 12]),
        ("status-and-login", &[6, 6]),
        ("other-extension", &[5]),
        ("add-remove-forwarded", &[5, 5, 5]),
        ("truncated-sign", &[5]),
        ("oversized-length", &[]),
        ("zero-length", &[]),
        ("half-frame", &[]),
    ];
    for (name, kinds_expected) in expected {
        let data = seeds.get(*name).unwrap_or_else(|| panic!("no seed-{name}"));
        assert_eq!(kinds(data), *kinds_expected, "seed-{name}");
    }
    assert_eq!(seeds.len(), expected.len(), "a seed without an expectation");
}

#[test]
fn the_locked_list_is_empty_and_the_unlocked_one_holds_ours() {
    let data = &seeds()["lock-then-unlock"];
    let replies = messages(data, Some(held_identity().unwrap()));
    assert_eq!(replies[1], [12, 0, 0, 0, 0]);
    assert_eq!(&replies[4][..5], [12, 0, 0, 0, 1]);
}
