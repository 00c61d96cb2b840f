//! CLI behaviour pinned by data: one `.toml` per situation under `tests/cmd/<subcommand>/`.

#[test]
fn cli_tests() {
    let vectors =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/go-opkssh");
    assert!(
        vectors.is_dir(),
        "the Go vectors are missing at {}",
        vectors.display()
    );
    trycmd::TestCases::new().case("tests/cmd/**/*.toml");
}
