//! Property tests: random and mutated inputs to every parser give errors, never panics, and
//! a mutated Go-made token never verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::claims::Claims;
use opk_core::jwk::Jwks;
use opk_core::jws::Jws;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::OpksshCertificate;
use opk_core::verify::{ExpirationPolicy, Provider};
use opk_core::{b64, gojson};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn vector_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/go-opkssh/accept")
        .join(name)
}

fn read(name: &str, file: &str) -> String {
    let path = vector_dir(name).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .trim_end()
        .to_owned()
}

struct Fixture {
    compact: String,
    json: String,
    jwks: Jwks,
    provider: Provider,
}

fn fixture(name: &str) -> Fixture {
    Fixture {
        compact: read(name, "pktoken.compact"),
        json: read(name, "pktoken.json"),
        jwks: Jwks::from_json(read(name, "jwks.json").as_bytes()).unwrap(),
        provider: Provider::new(
            &read(name, "issuer.txt"),
            &read(name, "client_id.txt"),
            ExpirationPolicy::Oidc,
        ),
    }
}

fn mutate(text: &str, edits: &[(usize, u8)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for (position, value) in edits {
        if let Some(len) = std::num::NonZeroUsize::new(bytes.len()) {
            let index = position % len.get();
            bytes[index] = *value;
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text_never_panics(text in ".{0,400}") {
        let _ = PkToken::from_compact(&text);
        let _ = PkToken::from_json(&text);
        let _ = Jws::parse(&text);
        let _ = Jwks::from_json(text.as_bytes());
        let _ = Claims::from_segment(&text);
        let _ = b64::decode_url_strict(&text);
        let _ = b64::decode_std(&text);
        let _ = OpksshCertificate::from_line(&text);
        let _ = opk_core::sshcert::private_key_from_openssh(&text);
    }

    #[test]
    fn mutated_certificates_never_verify(name in prop::sample::select(vec!["rs256-ecdsa", "es256-ed25519", "rs256-gq-ecdsa"]),
                                          edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let line = read(name, "cert.pub");
        let original = OpksshCertificate::from_line(&line).unwrap();
        let (key_type, base64) = line.split_once(' ').unwrap();
        let mut blob = b64::decode_std(base64).unwrap();
        for (position, value) in &edits {
            let index = position % blob.len();
            blob[index] ^= value | 1;
        }
        let mutated = b64::encode_std(&blob);
        if let Ok(certificate) = OpksshCertificate::from_type_and_base64(key_type, &mutated) {
            prop_assert!(certificate.verify_self_signature().is_err() || certificate.as_bytes() == original.as_bytes());
        }
    }

    #[test]
    fn random_structured_tokens_never_panic(parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,40}", 0..9), fresh in proptest::option::of("[A-Za-z0-9_.-]{0,60}")) {
        let mut text = parts.join(":");
        if let Some(fresh) = fresh {
            text.push('.');
            text.push_str(&fresh);
        }
        let _ = PkToken::from_compact(&text);
    }

    #[test]
    fn mutated_go_tokens_never_verify(name in prop::sample::select(vec!["rs256-ecdsa", "es256-ed25519", "rs256-gq-ecdsa", "rs256-refreshed"]),
                                       edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let fixture = fixture(name);
        let mutated = mutate(&fixture.compact, &edits);
        let parsed = String::from_utf8(mutated).ok().and_then(|text| PkToken::from_compact(&text).ok());
        if let Some(token) = parsed
            && token.verify_at(SystemTime::now(), &fixture.provider, &fixture.jwks).is_ok()
        {
            // Only a mutation of bits no signature covers may still verify: the last
            // character of a signature segment carries bits jwx ignores. Everything signed
            // must be unchanged.
            let original = PkToken::from_compact(&fixture.compact).unwrap();
            prop_assert_eq!(token.payload_segment(), original.payload_segment());
            prop_assert_eq!(token.op().header_segment(), original.op().header_segment());
            prop_assert_eq!(token.cic().header_segment(), original.cic().header_segment());
        }
        let mutated_json = mutate(&fixture.json, &edits);
        if let Ok(text) = String::from_utf8(mutated_json) {
            let _ = PkToken::from_json(&text).map(|token| token.verify_at(SystemTime::now(), &fixture.provider, &fixture.jwks));
        }
    }

    #[test]
    fn mutated_jwks_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let jwks = read("rs256-ecdsa", "jwks.json");
        let _ = Jwks::from_json(&mutate(&jwks, &edits));
    }

    /// GoJSON output is JSON that parses back to the same value, and is a fixed point.
    #[test]
    fn gojson_round_trips(value in json_value()) {
        let text = gojson::to_string(&value);
        let reparsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(gojson::to_string(&reparsed), text);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(|number| serde_json::json!(number)),
        any::<f64>()
            .prop_filter("finite", |number| number.is_finite())
            .prop_map(|number| serde_json::json!(number)),
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}
