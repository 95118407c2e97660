//! The library's architecture invariant, checked: perch-ffi links perch-node and
//! perch-protocol (and perch-tls under perch-node), never the kernel, gateway, store or host,
//! and none of the desktop handlers' or mDNS's crates.

use std::process::Command;

#[test]
fn the_phone_library_pulls_no_host_or_desktop_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "perch-ffi",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let ours: std::collections::BTreeSet<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("perch-"))
        .collect();
    assert_eq!(
        ours.into_iter().collect::<Vec<_>>(),
        vec!["perch-ffi", "perch-node", "perch-protocol", "perch-tls"],
        "{tree}"
    );
    for banned in [
        "notify-rust",
        "sysinfo",
        "starship-battery",
        "mdns-sd",
        "sqlx",
        "axum",
        "zbus",
    ] {
        assert!(
            !names.contains(&banned),
            "perch-ffi pulls {banned}:\n{tree}"
        );
    }
}
