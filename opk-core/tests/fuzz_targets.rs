//! The fuzz targets' bodies (`opk_core::fuzzing`) on stable: over every Go vector (the seed
//! corpus) and over every input a fuzzer once crashed on (`tests/fuzz-regressions/<target>/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::fuzzing;
use std::path::{Path, PathBuf};

fn vector_files(name: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/go-opkssh");
    let mut files = Vec::new();
    for kind in ["accept", "reject"] {
        for entry in std::fs::read_dir(root.join(kind)).unwrap() {
            let path = entry.unwrap().path().join(name);
            if path.exists() {
                files.push(path);
            }
        }
    }
    assert!(
        files.len() >= 10,
        "only {} vector files {name}",
        files.len()
    );
    files
}

fn regressions(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    std::fs::read_dir(dir)
        .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn cert_line_over_vectors_and_regressions() {
    for path in vector_files("cert.pub")
        .into_iter()
        .chain(regressions("cert_line"))
    {
        fuzzing::ssh_cert_line(&std::fs::read(&path).unwrap());
    }
}

#[test]
fn pktoken_over_vectors_and_regressions() {
    let files = vector_files("pktoken.compact")
        .into_iter()
        .chain(vector_files("pktoken.json"))
        .chain(regressions("pktoken"));
    for path in files {
        let data = std::fs::read(&path).unwrap();
        fuzzing::pktoken_compact(&data);
        fuzzing::pktoken_json(&data);
    }
}

/// Fuzz find: a JSON-form signature holding `:` parsed, and its compact form was another
/// token. Such a segment is now refused as not base64.
#[test]
fn json_signature_with_colons_is_refused() {
    let data = std::fs::read_to_string(
        regressions("pktoken")
            .into_iter()
            .find(|path| path.ends_with("json-signature-with-colons"))
            .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        opk_core::pktoken::PkToken::from_json(&data),
        Err(opk_core::pktoken::PkTokenError::Jws {
            error: opk_core::jws::JwsError::SignatureNotBase64,
            ..
        })
    ));
}

/// Fuzz find: a compact token whose OP header has `"typ":""` (read as OP in the compact form)
/// writes a JSON form that the JSON parser refuses, as Go does (wire-format.md §2.1). The
/// compact form still round-trips; the shim no longer demands the JSON one for this case.
#[test]
fn compact_op_with_empty_typ_keeps_the_documented_asymmetry() {
    let path = regressions("pktoken")
        .into_iter()
        .find(|path| path.ends_with("compact-op-typ-empty"))
        .unwrap();
    let token =
        opk_core::pktoken::PkToken::from_compact(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        opk_core::pktoken::PkToken::from_json(&token.to_json()),
        Err(opk_core::pktoken::PkTokenError::UnrecognizedSignatureType(
            String::new()
        ))
    );
}
