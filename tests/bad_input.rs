//! Bad input: each broken config must exit 2, name the offending key (and where it is), and leave the
//! output directory untouched. Cases are (name, config text, extra args, env, expected fragments).
mod common;
use common::*;

struct Case {
    name: &'static str,
    config: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// Every fragment must appear in stderr.
    expect: &'static [&'static str],
}

const BASE: &str = "omni_ip_lan: 10.0.0.5\ninfra_env: lan\npublic_ip_echo_urls: []\n";

const fn c(name: &'static str, config: &'static str, expect: &'static [&'static str]) -> Case {
    Case {
        name,
        config,
        args: &[],
        env: &[],
        expect,
    }
}

const CASES: &[Case] = &[
    c("typo_key", "postgres_pasword: secret1\n", &["config.yaml:1:1", "postgres_pasword", "did you mean `postgres_password`"]),
    c("typo_key_case", "Tz: UTC\n", &["config.yaml:1:1", "Tz", "did you mean `TZ`"]),
    c("role_enum", "role: voip\n", &["config.yaml:1:7", "role", "one of aio, data, voice, app"]),
    c("infra_env_typo", "infra_env: clod\n", &["infra_env", "did you mean `cloud`"]),
    c("ipv4_octet", "omni_ip_lan: 10.0.0.300\n", &["config.yaml:1:14", "omni_ip_lan", "IPv4"]),
    c("ipv4_loopback", "omni_ip_lan: 127.0.0.1\n", &["omni_ip_lan", "loopback"]),
    c("nat_ip_text", "nat_ip_addr: my-public-ip\n", &["nat_ip_addr", "IPv4"]),
    c("port_too_big", "postgres_port: 70000\n", &["config.yaml:1:16", "postgres_port", "1–65535"]),
    c("port_zero", "redis_port: 0\n", &["redis_port", "1–65535"]),
    c("port_text", "websocket_port: 80a\n", &["websocket_port", "1–65535"]),
    c("fqdn_underscore", "fqdn: not_a_fqdn.example.com\n", &["fqdn", "fully qualified"]),
    c("fqdn_single_label", "fqdn: omnileads\n", &["fqdn", "fully qualified"]),
    c("image_uppercase", "omnileads_img: Docker.io/Omni/App:1\n", &["omnileads_img", "image reference"]),
    c("image_empty_tag", "nginx_img: \"docker.io/omnileads/nginx:\"\n", &["nginx_img", "invalid tag"]),
    c("cluster_missing_hosts", "role: voice\npostgres_password: a-b-c-d-e\nami_password: x1234567\ns3_http_admin_pass: 12345678\nbucket_secret_key: 12345678\n", &["data_host", "voice_host", "application_host", "required when role is voice"]),
    c("cluster_missing_passwords", "role: app\ndata_host: 10.0.0.1\nvoice_host: 10.0.0.2\napplication_host: 10.0.0.3\n", &["postgres_password", "ami_password", "bucket_secret_key", "s3_http_admin_pass", "same value"]),
    c("cluster_ip_mismatch", "role: data\ndata_host: 10.0.0.1\nvoice_host: 10.0.0.2\napplication_host: 10.0.0.3\npostgres_password: p12345678\nami_password: a12345678\ns3_http_admin_pass: m12345678\nbucket_secret_key: b12345678\n", &["omni_ip_lan", "data_host", "must be the same"]),
    c("certs_custom_without_files", "certs: custom\n", &["cert_file_name", "key_file_name", "required when certs is custom"]),
    c("certs_enum", "certs: letsencrypt\n", &["certs", "one of selfsigned, custom"]),
    c("bool_maybe", "scale_uwsgi: maybe\n", &["scale_uwsgi", "true or false"]),
    c("int_range", "uwsgi_processes: 0\n", &["uwsgi_processes", "1–1024"]),
    c("timezone_space", "TZ: Mars/Olympus Mons\n", &["TZ", "time zone"]),
    // issue 10, defect 2: well-formed names that are not in the IANA database.
    c("timezone_unknown", "TZ: Mars/Olympus_Mons\n", &["config.yaml:1:5", "TZ", "not in the IANA time zone database"]),
    c("timezone_typo", "TZ: America/Argentina/Cordova\n", &["TZ", "did you mean `America/Argentina/Cordoba`"]),
    c("timezone_case", "TZ: europe/madrid\n", &["TZ", "did you mean `Europe/Madrid`"]),
    // issue 10, defect 3: tenant_id becomes names and paths.
    c("tenant_id_path", "tenant_id: ../../etc\n", &["config.yaml:1:12", "tenant_id", "letters", "digits, `_` and `-`"]),
    c("tenant_id_shell", "tenant_id: \"acme; rm -rf /\"\n", &["tenant_id", "starting with a letter or digit"]),
    c("tenant_id_dash_first", "tenant_id: -acme\n", &["tenant_id", "starting with a letter or digit"]),
    c("tenant_id_too_long", "tenant_id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", &["tenant_id", "1–63 characters"]),
    c("bucket_url_scheme", "bucket_url: ftp://files.example.com\nbucket_access_key: k\nbucket_secret_key: s12345678\n", &["bucket_url", "http"]),
    c("bucket_url_without_keys", "bucket_url: https://s3.example.com\n", &["bucket_secret_key", "bucket_access_key", "external bucket_url"]),
    c("external_postgres_without_password", "postgres_host: db.example.com\n", &["postgres_password", "external postgres_host"]),
    c("minio_password_short", "s3_http_admin_pass: short\n", &["s3_http_admin_pass", "at least 8"]),
    c("secret_multiline", "ami_password: |\n  line1\n  line2\n", &["ami_password", "one line"]),
    c("yaml_syntax", "role: aio\npostgres_port: [5432\n", &["config.yaml:", "YAML syntax error"]),
    c("not_a_mapping", "- role: aio\n", &["config.yaml:1:1", "mapping"]),
    c("nested_mapping", "postgres_port:\n  value: 5432\n", &["postgres_port", "got a mapping"]),
    c("duplicate_key", "TZ: UTC\nTZ: America/Argentina/Cordoba\n", &["config.yaml:2:1", "TZ", "duplicate key"]),
    c("unsupported_ha", "omnileads_ha: true\n", &["omnileads_ha", "not supported"]),
    c("port_collision", "uwsgi_port: 8098\n", &["uwsgi_port", "already used by daphne_port"]),
    c("echo_url_scheme", "public_ip_echo_urls: [\"file:///etc/passwd\"]\n", &["public_ip_echo_urls", "http"]),
    c("nic_name", "omni_nic: eth0/1\n", &["omni_nic", "interface name"]),
    c("monitor_format", "MONITORFORMAT: ogg\n", &["MONITORFORMAT", "one of mp3, wav"]),
    c("email_without_host", "email_backend: django.core.mail.backends.smtp.EmailBackend\n", &["email_host", "required when email_backend"]),
    c("metadata_url", "metadata_url_aws: 169.254.169.254\n", &["metadata_url_aws", "http"]),
    Case { name: "set_without_equals", config: "", args: &["--set", "postgres_port"], env: &[], expect: &["--set postgres_port", "key=value"] },
    Case { name: "set_unknown_key", config: "", args: &["--set", "postgress_port=5432"], env: &[], expect: &["postgress_port", "did you mean `postgres_port`"] },
    Case { name: "set_bad_value", config: "", args: &["--set", "kamailio_wss_port=99999"], env: &[], expect: &["--set kamailio_wss_port=99999", "kamailio_wss_port", "1–65535"] },
    Case { name: "role_flag", config: "", args: &["--role", "pbx"], env: &[], expect: &["--role", "role", "one of aio"] },
    Case { name: "env_typo", config: "", args: &[], env: &[("OMLBOOT_POSTGRS_PORT", "5432")], expect: &["env OMLBOOT_POSTGRS_PORT", "did you mean `postgres_port`"] },
    Case { name: "env_bad_value", config: "", args: &[], env: &[("OMLBOOT_POSTGRES_PORT", "99999")], expect: &["env OMLBOOT_POSTGRES_PORT", "postgres_port", "1–65535"] },
    Case { name: "secret_not_echoed", config: "", args: &["--set", "s3_http_admin_pass=tiny"], env: &[], expect: &["s3_http_admin_pass=…", "at least 8"] },
];

fn run_case(case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yaml");
    // Cases that test a key of BASE put it first so their line numbers hold; BASE fills the rest.
    let mut text = case.config.to_string();
    for line in BASE.lines() {
        let key = line.split(':').next().unwrap();
        if !text.lines().any(|l| l.starts_with(&format!("{key}:")))
            && !text.starts_with('-')
            && case.name != "yaml_syntax"
        {
            text.push_str(line);
            text.push('\n');
        }
    }
    std::fs::write(&cfg, &text).unwrap();
    let out = tmp.path().join("out");
    let mut args = vec![
        "render",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(case.args);
    let o = omlboot_env(&args, case.env);
    let err = stderr(&o);
    if o.status.code() != Some(2) {
        return Err(format!(
            "{}: exit {:?}, want 2; stderr: {err}",
            case.name,
            o.status.code()
        ));
    }
    for frag in case.expect {
        if !err.contains(frag) {
            return Err(format!("{}: stderr lacks {frag:?}:\n{err}", case.name));
        }
    }
    if out.exists() {
        return Err(format!("{}: output dir was created", case.name));
    }
    // The secret given on the command line must not be echoed back.
    if case.name == "secret_not_echoed" && err.contains("tiny") {
        return Err(format!("{}: secret echoed: {err}", case.name));
    }
    Ok(())
}

#[test]
fn every_bad_input_exits_2_names_the_key_and_writes_nothing() {
    assert!(
        CASES.len() >= 30,
        "the suite must hold at least 30 cases, has {}",
        CASES.len()
    );
    let failures: Vec<String> = CASES.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn all_errors_are_reported_at_once_in_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "role: aio\npostgres_port: 0\nfqdn: x\nredis_port: 99999\nomni_ip_lan: 1.2.3\n",
    )
    .unwrap();
    let o = omlboot(&["validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("4 errors"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("config.yaml:")).collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines[0].contains(":2:")
            && lines[1].contains(":3:")
            && lines[2].contains(":4:")
            && lines[3].contains(":5:"),
        "{err}"
    );
}

#[test]
fn missing_explicit_config_file_is_invalid() {
    let o = omlboot(&["plan", "--config", "/nonexistent/omlboot.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/omlboot.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn broken_units_dir_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("catalog.yaml"), "components:\n  - name: x\n    unit: x.service\n    template: missing.tera\n    container: c\n    image: nginx_img\n    hosts: [aio]\n").unwrap();
    let o = omlboot(&[
        "plan",
        "--units",
        tmp.path().to_str().unwrap(),
        "--set",
        "omni_ip_lan=10.0.0.5",
        "--set",
        "infra_env=lan",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.tera"), "{}", stderr(&o));
}

/// An empty list value disables the list (it must not fall back to the default echo services).
#[test]
fn empty_echo_list_means_none() {
    for (args, env) in [
        (
            vec![
                "validate",
                "--format",
                "json",
                "--set",
                "public_ip_echo_urls=",
            ],
            vec![],
        ),
        (
            vec!["validate", "--format", "json"],
            vec![("OMLBOOT_PUBLIC_IP_ECHO_URLS", "")],
        ),
    ] {
        let o = omlboot_env(&args, &env);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["values"]["public_ip_echo_urls"][0], "", "{v}");
    }
}

/// issue 10, defect 4: a password equal to ordinary template text (`omnileads` is also the user,
/// database and tenant name) once made plan exit 1 ("… would hold a secret"). It must plan.
#[test]
fn password_equal_to_ordinary_template_text_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yaml");
    std::fs::write(&cfg, format!("{BASE}postgres_password: omnileads\n")).unwrap();
    for cmd in [vec!["plan"], vec!["render", "--out"]] {
        let out = tmp.path().join("out");
        let mut args = cmd.clone();
        if cmd[0] == "render" {
            args.push(out.to_str().unwrap());
        }
        args.extend(["--config", cfg.to_str().unwrap()]);
        let o = omlboot(&args);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}: {}", stderr(&o));
    }
    let env = std::fs::read_to_string(tmp.path().join("out/etc/default/django.env")).unwrap();
    assert!(env.lines().any(|l| l == "PGPASSWORD=omnileads"), "{env}");
}
