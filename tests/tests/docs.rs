//! The documentation is tested so it cannot drift from the code (issue 14). Every fenced block
//! in README.md, CONTRIBUTING.md and docs/*.md is checked by its info string:
//!
//! - `text providers`: a `/etc/opk/providers` example, parsed by the real loader, no problem.
//! - `text auth_id`: an `auth_id` example, every row parsed and free of errors (lint).
//! - `text auth_id-refused`: rows shown as mistakes: each must be refused (lint error).
//! - `yaml server-config`: `/etc/opk/config.yml`, parsed by `ServerConfig::parse`.
//! - `yaml client-config`: `~/.opk/config.yml`, parsed by `ClientConfig::parse`.
//! - `yaml plugin`: a `policy.d/*.yml` plugin file, parsed by `PluginConfig::parse`.
//! - `text explain`: `opkssh explain` output: every line a step (`pass`, `fail`, `skip`,
//!   `note`) or the verdict (`allow:`, `deny:` naming its check in brackets).
//! - `sh`: every line that runs `opkssh` (also `sudo opkssh`, `cargo run … -- <args>`) names a
//!   real command, and every flag it uses appears in that command's `--help`.
//!
//! And the references are complete both ways: every `config.yml` key, client config key and
//! `OPKSSH_PLUGIN_*` variable the code reads is documented, and nothing documented in those
//! tables is unknown to the code. `console` blocks are run by trycmd (opkssh-cli's cli_tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Markdown files that make up the documentation.
fn documents() -> Vec<PathBuf> {
    let root = workspace();
    let mut files = vec![root.join("README.md")];
    if root.join("CONTRIBUTING.md").exists() {
        files.push(root.join("CONTRIBUTING.md"));
    }
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A fenced code block: its file, the line of its opening fence, info string and text.
struct Block {
    file: PathBuf,
    line: usize,
    info: String,
    text: String,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

fn blocks() -> Vec<Block> {
    let mut found = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut open: Option<(usize, String, String)> = None;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            match &mut open {
                None => {
                    if let Some(info) = trimmed.strip_prefix("```") {
                        open = Some((index + 1, info.trim().to_owned(), String::new()));
                    }
                }
                Some((start, info, body)) => {
                    if trimmed.starts_with("```") {
                        found.push(Block {
                            file: file.clone(),
                            line: *start,
                            info: std::mem::take(info),
                            text: std::mem::take(body),
                        });
                        open = None;
                    } else {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
            }
        }
        assert!(open.is_none(), "{}: unclosed code block", file.display());
    }
    found
}

fn blocks_tagged(tag: &str) -> Vec<Block> {
    blocks()
        .into_iter()
        .filter(|block| block.info.split_whitespace().nth(1) == Some(tag))
        .collect()
}

#[test]
fn providers_examples_load() {
    let examples = blocks_tagged("providers");
    assert!(!examples.is_empty(), "no `text providers` example");
    for block in examples {
        let path = Path::new("/etc/opk/providers");
        let providers = policy::Providers::parse(block.text.as_bytes(), path)
            .unwrap_or_else(|error| panic!("{}: {error}", block.at()));
        assert!(
            providers.warnings().is_empty(),
            "{}: {:?}",
            block.at(),
            providers.warnings()
        );
    }
}

fn row_lints(row: &policy::AuthRow) -> Vec<policy::Lint> {
    let mut lints = policy::rule::lint_principal(&row.principal);
    lints.extend(policy::rule::lint_identity(&row.identity));
    lints.extend(policy::rule::lint_template(&row.principal, &row.identity));
    lints
        .into_iter()
        .filter(|lint| lint.severity == policy::Severity::Error)
        .collect()
}

#[test]
fn auth_id_examples_parse_without_errors() {
    let examples = blocks_tagged("auth_id");
    assert!(!examples.is_empty(), "no `text auth_id` example");
    for block in examples {
        let file = policy::AuthIdFile::parse(block.text.as_bytes(), Path::new("/etc/opk/auth_id"));
        assert!(
            file.warnings().is_empty(),
            "{}: {:?}",
            block.at(),
            file.warnings()
        );
        assert!(!file.rows().is_empty(), "{}: no row", block.at());
        for row in file.rows() {
            let errors = row_lints(row);
            assert!(errors.is_empty(), "{} {row:?}: {errors:?}", block.at());
        }
    }
}

#[test]
fn auth_id_mistakes_are_refused() {
    for block in blocks_tagged("auth_id-refused") {
        let file = policy::AuthIdFile::parse(block.text.as_bytes(), Path::new("/etc/opk/auth_id"));
        for row in file.rows() {
            assert!(
                !row_lints(row).is_empty(),
                "{}: {row:?} is shown as a mistake but is accepted",
                block.at()
            );
        }
    }
}

#[test]
fn server_config_examples_parse() {
    let examples = blocks_tagged("server-config");
    assert!(!examples.is_empty(), "no `yaml server-config` example");
    for block in examples {
        policy::ServerConfig::parse(&block.text, Path::new("/etc/opk/config.yml"))
            .unwrap_or_else(|error| panic!("{}: {error}", block.at()));
    }
}

#[test]
fn client_config_examples_parse() {
    let examples = blocks_tagged("client-config");
    assert!(!examples.is_empty(), "no `yaml client-config` example");
    for block in examples {
        opk_client::client_config::ClientConfig::parse(&block.text)
            .unwrap_or_else(|error| panic!("{}: {error:?}", block.at()));
    }
}

#[test]
fn plugin_examples_parse() {
    for block in blocks_tagged("plugin") {
        policy::plugin::PluginConfig::parse(&block.text, Path::new("/etc/opk/policy.d/x.yml"))
            .unwrap_or_else(|error| panic!("{}: {error}", block.at()));
    }
}

#[test]
fn explain_examples_are_explain_output() {
    for block in blocks_tagged("explain") {
        for line in block.text.lines() {
            let step = ["pass  ", "fail  ", "skip  ", "note  "]
                .iter()
                .any(|outcome| line.starts_with(outcome));
            let verdict =
                (line.starts_with("allow: ") || line.starts_with("deny: ")) && line.ends_with(']');
            assert!(
                step || verdict,
                "{}: not explain output: {line}",
                block.at()
            );
        }
    }
}

/// `opkssh …` command lines in `sh` blocks, as word lists without the program name.
fn command_lines() -> Vec<(String, Vec<String>)> {
    let mut lines = Vec::new();
    for block in blocks() {
        if block.info.split_whitespace().next() != Some("sh") {
            continue;
        }
        for (offset, line) in block.text.lines().enumerate() {
            let line = line.trim().trim_start_matches("$ ");
            let line = line.split(" #").next().unwrap_or(line);
            let words = match policy::table::split(line) {
                Ok(words) => words,
                Err(_) => continue,
            };
            let at = format!("{}:{}", block.file.display(), block.line + 1 + offset);
            let words: Vec<String> = words
                .into_iter()
                .skip_while(|word| word == "sudo" || word.contains('='))
                .collect();
            let args = match words.first().map(String::as_str) {
                Some("opkssh") => words[1..].to_vec(),
                Some("cargo") if words.iter().any(|word| word == "opkssh-cli") => {
                    match words.iter().position(|word| word == "--") {
                        Some(split) => words[split + 1..].to_vec(),
                        None => continue,
                    }
                }
                _ => continue,
            };
            // A pipeline or a second command on the line: only the first command counts.
            let args = args
                .into_iter()
                .take_while(|word| !matches!(word.as_str(), "|" | "||" | "&&" | ";" | ">"))
                .collect();
            lines.push((at, args));
        }
    }
    lines
}

fn help(path: &[String]) -> String {
    let output = Command::new(opkssh_tests::e2e::target_binary("opkssh"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "opkssh {path:?} --help: {output:?}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The subcommand names a `--help` text lists.
fn subcommands(help: &str) -> BTreeSet<String> {
    help.split("Commands:")
        .nth(1)
        .map(|list| {
            list.lines()
                .skip(1)
                .take_while(|line| !line.trim().is_empty())
                .filter_map(|line| line.split_whitespace().next())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn documented_commands_and_flags_exist() {
    let lines = command_lines();
    assert!(
        lines.len() > 10,
        "only {} opkssh command lines",
        lines.len()
    );
    for (at, args) in lines {
        let mut path: Vec<String> = Vec::new();
        let mut text = help(&path);
        for word in &args {
            if word.starts_with('-') {
                break;
            }
            if subcommands(&text).contains(word) {
                path.push(word.clone());
                text = help(&path);
            } else {
                break;
            }
        }
        // `opkssh --version`: flags of the program itself.
        let program_flags = args.first().is_some_and(|word| word.starts_with('-'));
        assert!(
            !path.is_empty() || program_flags,
            "{at}: `opkssh {}` names no command",
            args.join(" ")
        );
        // `opkssh ssh`'s own options are long ones; the first other word starts ssh's.
        let passes_on = path == ["ssh"];
        for word in &args {
            let flag = word.split('=').next().unwrap_or(word);
            if flag == "--" || (passes_on && !flag.starts_with("--") && !path.contains(word)) {
                break;
            }
            if flag.starts_with("--") || (flag.starts_with('-') && flag.len() == 2) {
                let long = format!("{flag} ");
                let found = text.contains(&long)
                    || text.contains(&format!("{flag}="))
                    || text.contains(&format!("{flag},"))
                    || text.contains(&format!("{flag}\n"))
                    || text.contains(&format!("{flag} <"))
                    || text.contains(&format!("{flag} ["));
                assert!(
                    found,
                    "{at}: `opkssh {}` uses {flag}, which `opkssh {} --help` does not list",
                    args.join(" "),
                    path.join(" ")
                );
            }
        }
    }
}

fn reference(name: &str) -> String {
    std::fs::read_to_string(workspace().join("docs").join(name)).unwrap()
}

/// Backquoted names in the rows of the Markdown table that follows `heading`.
fn table_keys(document: &str, heading: &str) -> BTreeSet<String> {
    let start = document
        .find(heading)
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    document[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .filter_map(|line| {
            let cell = line.split('|').nth(1)?.trim();
            Some(cell.trim_matches('`').to_owned())
        })
        .collect()
}

fn keys_of(value: serde_json::Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn server_config_reference_is_complete() {
    let code = keys_of(serde_json::to_value(policy::ServerConfig::default()).unwrap());
    let documented = table_keys(&reference("server.md"), "### `config.yml` keys");
    assert_eq!(
        documented, code,
        "docs/server.md `config.yml` keys vs the code"
    );
}

#[test]
fn client_config_reference_is_complete() {
    let config = opk_client::client_config::ClientConfig::default_config();
    let top = keys_of(serde_json::to_value(&config).unwrap());
    let document = reference("client.md");
    assert_eq!(
        table_keys(&document, "### Top-level keys"),
        top,
        "docs/client.md top-level keys vs the code"
    );
    let provider =
        keys_of(serde_json::to_value(opk_client::client_config::ProviderEntry::default()).unwrap());
    assert_eq!(
        table_keys(&document, "### Provider keys"),
        provider,
        "docs/client.md provider keys vs the code"
    );
}

#[test]
fn plugin_variables_reference_is_complete() {
    let claims = serde_json::json!({"iss": "https://op.example", "sub": "s", "aud": "c"});
    let input =
        policy::PolicyInput::danger_from_claims(claims.as_object().unwrap().clone(), "alice");
    let mut code: BTreeSet<String> = policy::plugin::environment(&input)
        .unwrap()
        .into_keys()
        .collect();
    code.insert("OPKSSH_PLUGIN_CONFIG".to_owned());
    let documented = table_keys(&reference("server.md"), "### Plugin variables");
    assert_eq!(
        documented, code,
        "docs/server.md plugin variables vs the code"
    );
}
