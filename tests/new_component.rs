//! A component is data: a copy of units/ with one more catalog entry, a unit template and an env
//! template is planned, rendered, passes `systemd-analyze verify`, is checked for port conflicts
//! and is started by the engine (on fakes), without a line of Rust.
mod common;
use common::*;
use omlboot::apply::engine::{self, Options};
use omlboot::apply::fake::{self, Calls};
use omlboot::apply::state::Status;
use omlboot::catalog::Units;
use omlboot::config::{Config, Sources};
use omlboot::facts::{os::PkgFamily, Facts};
use omlboot::target::Target;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const IMAGE: &str = "docker.io/library/hello-omlboot:1";

/// units/ plus a `hello` component listening on `port`.
fn units_with_hello(dir: &Path, port: &str) {
    copy_dir(&repo("units"), dir);
    std::fs::write(
        dir.join("services/hello.service.tera"),
        "{% extends \"_podman.service.tera\" %}\n\
         {% block description %}hello, a component added as data{% endblock %}\n\
         {% block command %} --port PORT{% endblock %}\n"
            .replace("PORT", port),
    )
    .unwrap();
    std::fs::write(
        dir.join("env/hello.env.tera"),
        "# hello env — managed by omlboot\nHELLO_DB_PASSWORD={{ postgres_password }}\n",
    )
    .unwrap();
    let catalog = dir.join("catalog.yaml");
    let text = std::fs::read_to_string(&catalog).unwrap();
    let entry = format!(
        "  - name: hello\n    unit: hello.service\n    template: hello.service.tera\n    \
         container: oml-hello\n    image: hello_img\n    image_default: {IMAGE}\n    \
         hosts: [aio]\n    env: hello.env\n    after: [redis.service]\n    optional: true\n    \
         ports: [{port}/tcp]\n    probe: {{ tcp: \"127.0.0.1:{port}\" }}\n\n"
    );
    let at = text.find("# Bootstrap tasks:").expect("catalog layout");
    std::fs::write(&catalog, format!("{}{entry}{}", &text[..at], &text[at..])).unwrap();
}

fn aio() -> String {
    repo("tests/fixtures/config/aio.yaml")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_component_added_as_data_is_planned_rendered_verified_and_started() {
    let units = tempfile::tempdir().unwrap();
    units_with_hello(units.path(), "9999");
    let u = units.path().to_str().unwrap();

    // Planned: the component, its image (the catalog's default) and its start step.
    let o = omlboot(&["plan", "--format", "json", "--config", &aio(), "--units", u]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let comps = plan["components"].as_array().unwrap();
    let hello = comps
        .iter()
        .find(|c| c["name"] == "hello")
        .expect("planned");
    assert_eq!(hello["image"], IMAGE);
    assert_eq!(hello["optional"], true);
    let steps = plan["steps"].as_array().unwrap();
    assert!(steps
        .iter()
        .any(|s| s["kind"] == "image" && s["reference"] == IMAGE));
    assert!(steps
        .iter()
        .any(|s| s["kind"] == "start" && s["unit"] == "hello.service"));
    let env = steps
        .iter()
        .find(|s| s["path"] == "/etc/default/hello.env")
        .expect("env file planned");
    assert_eq!(env["secret"], true);
    assert_eq!(env["mode"], "0600");

    // Rendered, and systemd accepts the unit.
    let out = tempfile::tempdir().unwrap();
    let o = omlboot(&[
        "render",
        "--config",
        &aio(),
        "--units",
        u,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let unit_dir = out.path().join("etc/systemd/system");
    let unit = unit_dir.join("hello.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains(IMAGE) && text.contains("After=") && text.contains("redis.service"));
    let v = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .env("SYSTEMD_UNIT_PATH", format!("{}:", unit_dir.display()))
        .output()
        .expect("systemd-analyze must be installed");
    let complaints: Vec<String> = String::from_utf8_lossy(&v.stderr)
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.contains("Failed to connect to bus")
                && !l.contains("System has not been booted with systemd")
        })
        .map(str::to_string)
        .collect();
    assert!(
        complaints.is_empty() && v.status.success(),
        "{complaints:?}"
    );

    // Started by the engine, in its place in the plan.
    let units = Units::from_dir(units.path()).unwrap();
    let text = std::fs::read_to_string(aio()).unwrap();
    let mut cfg = Config::load(&Sources {
        file: Some(("aio.yaml".into(), text)),
        ..Default::default()
    })
    .unwrap();
    let facts = Facts::from_config_only(&cfg).unwrap();
    let plan = omlboot::plan::build(&mut cfg, &facts, &units, &Default::default()).unwrap();
    let calls = Calls::default();
    let registry = plan
        .components
        .iter()
        .map(|c| (c.image.clone(), format!("{:064x}", c.image.len())))
        .collect();
    let host = fake::host(&calls, registry, &[]);
    let root = tempfile::tempdir().unwrap();
    let opts = Options {
        target: Target::Offline(root.path().to_path_buf()),
        family: PkgFamily::Apt,
        skip_packages: true,
        image_bundle: None,
        images: Default::default(),
        packages: Default::default(),
        start_deadline: Duration::from_secs(5),
        probe_interval: Duration::from_millis(100),
        instance_id: "new-component".into(),
    };
    let state = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(engine::apply_on(&plan, &opts, &host))
        .unwrap();
    assert_eq!(state.status, Status::Done, "{:?}", state.errors);
    assert_eq!(state.components["hello"].state, "active");
    // Its probe, data too, ran once the unit was active.
    let probe = state.components["hello"].probe.as_ref().expect("probed");
    assert!(
        probe.passed && probe.probe == "tcp 127.0.0.1:9999",
        "{probe:?}"
    );
    assert!(calls.all().contains(&format!("pull {IMAGE}")));
    assert!(calls.all().contains(&"start hello.service".to_string()));
}

#[test]
fn a_new_component_port_that_clashes_is_a_config_error() {
    // 8000 is websocket_port's default: validation reads the new component's ports from the catalog.
    let units = tempfile::tempdir().unwrap();
    units_with_hello(units.path(), "8000");
    let o = omlboot(&[
        "validate",
        "--config",
        &aio(),
        "--units",
        units.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("websocket_port") && err.contains("8000"),
        "{err}"
    );
}
