//! `perch completions SHELL` prints a script that knows perch's real subcommands, and the bash
//! one, sourced in a real bash, registers itself and completes.

use std::process::Command;

const PERCH: &str = env!("CARGO_BIN_EXE_perch");

fn script(shell: &str) -> String {
    let out = Command::new(PERCH)
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "perch completions {shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn each_shell_gets_a_script_naming_the_real_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let s = script(shell);
        assert!(s.len() > 1000, "{shell}: only {} bytes", s.len());
        for word in [
            "serve",
            "node",
            "devices",
            "setup-code",
            "service",
            "install",
            "completions",
        ] {
            assert!(s.contains(word), "{shell} script lacks {word:?}");
        }
    }
    // Shell-specific shapes: a bash function, zsh's compdef header, fish's `complete -c`.
    assert!(script("bash").contains("_perch()"));
    assert!(script("zsh").starts_with("#compdef perch"));
    assert!(script("fish").contains("complete -c perch"));
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let out = Command::new(PERCH)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bash_sources_the_script_registers_perch_and_completes_subcommands() {
    if Command::new("bash").arg("--version").output().is_err() {
        println!("note: bash not found; the bash script was checked by content only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("perch.bash");
    std::fs::write(&file, script("bash")).unwrap();
    // Completes `perch ser<TAB>` and `perch service <TAB>` the way bash's completion would.
    let program = r#"
        source "$1" || exit 1
        complete -p perch || exit 2
        COMP_WORDS=(perch ser); COMP_CWORD=1; COMP_LINE="perch ser"; COMP_POINT=9
        _perch perch ser perch
        echo "ser: ${COMPREPLY[*]}"
        COMP_WORDS=(perch service ""); COMP_CWORD=2; COMP_LINE="perch service "; COMP_POINT=14
        _perch perch "" service
        echo "service: ${COMPREPLY[*]}"
    "#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", program, "bash"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registered = stdout.lines().next().unwrap();
    assert!(
        registered.starts_with("complete ") && registered.ends_with(" perch"),
        "{stdout}"
    );
    assert!(registered.contains("-F _perch"), "{stdout}");
    let ser = stdout.lines().find(|l| l.starts_with("ser: ")).unwrap();
    let mut ser: Vec<&str> = ser["ser: ".len()..].split(' ').collect();
    ser.sort();
    assert_eq!(ser, ["serve", "service"], "{stdout}");
    let service = stdout.lines().find(|l| l.starts_with("service: ")).unwrap();
    for sub in ["install", "uninstall", "status"] {
        assert!(service.split(' ').any(|w| w == sub), "{stdout}");
    }
}
