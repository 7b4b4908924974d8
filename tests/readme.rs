//! README.md stays true: its config reference is the schema's, and the commands it shows exist.
//! After changing the schema run `OMLBOOT_BLESS=1 cargo test --test readme` to refresh the README.
mod common;
use common::*;

const START: &str = "<!-- config-reference:start -->";
const END: &str = "<!-- config-reference:end -->";

#[test]
fn config_reference_matches_schema() {
    let path = repo("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the config reference markers")
    };
    let want = omlboot::config::schema::markdown_reference();
    let have = &readme[a + START.len()..b];
    if std::env::var_os("OMLBOOT_BLESS").is_some() {
        let new = format!("{}{START}{want}{}", &readme[..a], &readme[b..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    pretty_assertions::assert_eq!(have, want.as_str(), "README config reference is stale");
}

#[test]
fn readme_commands_exist() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    for sub in [
        "validate", "detect", "plan", "render", "apply", "run", "status", "bake", "upgrade",
        "rollback",
    ] {
        assert!(
            readme.contains(&format!("omlboot {sub}")),
            "README does not show `omlboot {sub}`"
        );
        let o = omlboot(&[sub, "--help"]);
        assert!(o.status.success(), "omlboot {sub} --help failed");
    }
    assert!(
        readme.contains("cargo test"),
        "README must show how to run the tests"
    );
}

/// issue 10, defect 5: a newcomer reads, before running anything, that `cargo test` apt-installs
/// packages (and may upgrade systemd), and that the static musl build needs musl-tools.
#[test]
fn readme_tells_the_setup_facts() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let try_it = &readme[readme.find("## Try it").unwrap()..readme.find("## Commands").unwrap()];
    for pkg in ["podman", "docker-registry", "systemd-container"] {
        assert!(
            try_it.contains(pkg),
            "`Try it` does not say cargo test installs {pkg}"
        );
    }
    assert!(
        try_it.contains("upgrade systemd"),
        "`Try it` does not warn about systemd"
    );
    assert!(
        try_it.contains("apt-get install musl-tools"),
        "the static build does not say it needs musl-tools"
    );
}
