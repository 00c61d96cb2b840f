//! Completions and manual pages come from the clap definitions: bash really completes with the
//! generated script, and every subcommand `--help` lists has a page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use std::path::Path;
use std::process::Command;

fn opkssh(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_opkssh"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// What bash offers for `words` (the last one being completed) with the generated script.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("opkssh.bash");
    std::fs::write(&script, opkssh(&["completions", "bash"])).unwrap();
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _opkssh opkssh '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words
            .get(words.len().wrapping_sub(2))
            .copied()
            .unwrap_or(""),
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The subcommands `opkssh --help` lists.
fn listed_subcommands() -> Vec<String> {
    let help = opkssh(&["--help"]);
    let commands = help.split("Commands:").nth(1).unwrap();
    commands
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let mut offered = bash_completes(&["opkssh", "lo"]);
    offered.sort();
    assert_eq!(offered, ["login", "logout"]);
    let offered = bash_completes(&["opkssh", "login", "--disable-b"]);
    assert_eq!(offered, ["--disable-browser-open"]);
    let offered = bash_completes(&["opkssh", "completions", "z"]);
    assert_eq!(offered, ["zsh"]);
    // Every subcommand is offered.
    let everything = bash_completes(&["opkssh", ""]);
    for name in listed_subcommands() {
        assert!(
            everything.contains(&name),
            "{name} not completed: {everything:?}"
        );
    }
}

#[test]
fn other_shells_get_their_own_scripts() {
    assert!(opkssh(&["completions", "zsh"]).starts_with("#compdef opkssh"));
    assert!(opkssh(&["completions", "fish"]).contains("complete -c opkssh"));
}

#[test]
fn one_manual_page_per_subcommand() {
    let parent = tempfile::tempdir().unwrap();
    // The folder is created if missing.
    let dir = parent.path().join("man").join("man1");
    let written = opkssh(&["man", "--out-dir", dir.to_str().unwrap()]);
    let mut expected = vec!["opkssh".to_owned()];
    expected.extend(
        listed_subcommands()
            .iter()
            .map(|name| format!("opkssh-{name}")),
    );
    for name in &expected {
        let path = dir.join(format!("{name}.1"));
        assert!(written.contains(&path.display().to_string()), "{written}");
        let page = std::fs::read_to_string(&path).unwrap();
        assert!(page.contains(&format!(".TH {name} 1")), "{name}: {page}");
        assert!(
            page.contains(&format!(".SH NAME\n{}", name.replace('-', "\\-"))),
            "{page}"
        );
        // SEE ALSO names reference documents that exist in docs/ (the packages install them).
        let see_also = page
            .split(".SH \"SEE ALSO\"\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no SEE ALSO"));
        let documents: Vec<&str> = see_also
            .lines()
            .filter_map(|line| line.strip_prefix("/usr/share/doc/opkssh/"))
            .collect();
        assert!(!documents.is_empty(), "{name}: {see_also}");
        for document in documents {
            let source = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs")
                .join(document);
            assert!(source.is_file(), "{name}: {document} is not in docs/");
        }
    }
    // Nested commands get pages too, with their full synopsis.
    let list = std::fs::read_to_string(dir.join("opkssh-client-provider-list.1")).unwrap();
    assert!(list.contains("opkssh client provider list"), "{list}");
    // Printing without a folder gives the main page, the same as the file.
    assert_eq!(
        opkssh(&["man"]),
        std::fs::read_to_string(dir.join("opkssh.1")).unwrap()
    );
}
