//! The network side of verify: redirects to another host at discovery or JWKS, a discovery
//! document for another issuer, a `jwks_uri` that leaves TLS or loopback, a JWKS of another
//! issuer. A local issuer server (the e2e harness's) plays the IdP.

use crate::cache::{CacheDir, pipeline};
use crate::*;
use opk_core::sshcert::CertComment;
use opkssh_tests::e2e::{DISCOVERY_PATH, Fault, IssuerServer, JWKS_PATH};
use verifier::http::FetchError;
use verifier::jwks_cache::KeysError;
use verifier::pipeline::Denial;

struct Idp {
    server: IssuerServer,
    login: Login,
}

fn jwks_json(jwks: &Jwks) -> String {
    jwks.to_json()
}

impl Idp {
    fn start() -> Self {
        let server = IssuerServer::start_custom().unwrap();
        let issuer = server.issuer().to_owned();
        let login = Login::with(es_key(), es_key(), |p| p["iss"] = issuer.clone().into());
        let idp = Self { server, login };
        idp.serve(
            &issuer,
            &format!("{issuer}/jwks.json"),
            &jwks_json(&idp.login.jwks()),
        );
        idp
    }

    fn serve(&self, issuer: &str, jwks_uri: &str, jwks: &str) {
        let discovery = serde_json::json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string();
        self.server
            .set_documents(discovery.as_bytes(), jwks.as_bytes());
    }

    fn verify(&self) -> Result<String, Denial> {
        let cache = CacheDir::empty(self.server.issuer());
        pipeline(
            &cache,
            &self
                .login
                .certificate(Principals::Default)
                .to_line(CertComment::None),
        )
    }
}

/// Control: the honest IdP lets the login in.
#[test]
fn control_the_honest_idp_allows() {
    let idp = Idp::start();
    idp.verify().unwrap();
}

#[test]
fn discovery_redirects_to_another_host() {
    let idp = Idp::start();
    idp.server.set_path_fault(
        DISCOVERY_PATH,
        Fault::Redirect("http://127.0.0.2:1/.well-known/openid-configuration"),
    );
    let denial = idp.verify().unwrap_err();
    assert!(
        matches!(
            denial,
            Denial::Keys(KeysError::Fetch(FetchError::Status { status: 302, .. }))
        ),
        "{denial:?}"
    );
}

#[test]
fn jwks_redirects_to_another_host() {
    let idp = Idp::start();
    idp.server.set_path_fault(
        JWKS_PATH,
        Fault::Redirect("https://attacker.example/jwks.json"),
    );
    let denial = idp.verify().unwrap_err();
    assert!(
        matches!(
            denial,
            Denial::Keys(KeysError::Fetch(FetchError::Status { status: 302, .. }))
        ),
        "{denial:?}"
    );
}

#[test]
fn discovery_document_of_another_issuer() {
    let idp = Idp::start();
    let issuer = idp.server.issuer().to_owned();
    idp.serve(
        "https://accounts.google.com",
        &format!("{issuer}/jwks.json"),
        &jwks_json(&idp.login.jwks()),
    );
    let denial = idp.verify().unwrap_err();
    assert!(
        matches!(denial, Denial::Keys(KeysError::DiscoveryIssuer { .. })),
        "{denial:?}"
    );
}

#[test]
fn discovery_issuer_with_a_trailing_slash() {
    let idp = Idp::start();
    let issuer = idp.server.issuer().to_owned();
    idp.serve(
        &format!("{issuer}/"),
        &format!("{issuer}/jwks.json"),
        &jwks_json(&idp.login.jwks()),
    );
    let denial = idp.verify().unwrap_err();
    assert!(
        matches!(denial, Denial::Keys(KeysError::DiscoveryIssuer { .. })),
        "{denial:?}"
    );
}

#[test]
fn jwks_uri_to_plain_http_on_another_host() {
    let idp = Idp::start();
    let issuer = idp.server.issuer().to_owned();
    for uri in [
        "http://attacker.example/jwks.json",
        "http://localhost@attacker.example/jwks.json",
        "http://localhost.attacker.example/jwks.json",
        "file:///etc/passwd",
        "ftp://localhost/jwks",
    ] {
        idp.serve(&issuer, uri, &jwks_json(&idp.login.jwks()));
        let denial = idp.verify().unwrap_err();
        assert!(
            matches!(denial, Denial::Keys(KeysError::Discovery(_))),
            "{uri}: {denial:?}"
        );
    }
}

/// The IdP (or a proxy) serves the JWKS of another issuer.
#[test]
fn jwks_of_another_issuer() {
    let idp = Idp::start();
    let issuer = idp.server.issuer().to_owned();
    idp.serve(
        &issuer,
        &format!("{issuer}/jwks.json"),
        &jwks_json(&Login::new().jwks()),
    );
    let denial = idp.verify().unwrap_err();
    assert!(
        matches!(denial, Denial::Verify(VerifyError::OpSignature(_))),
        "{denial:?}"
    );
}
