//! Every config key omlboot understands, by its omldeploytool inventory name.
//!
//! The table is the single source of truth for parsing, validation, defaults, "did you mean"
//! suggestions and the README's config reference (a test keeps the README in step).

/// What kind of value a key holds; drives parsing and validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text on one line.
    Text,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// Dotted IPv4 address.
    Ipv4,
    /// IPv4 address or DNS host name.
    Host,
    /// TCP/UDP port, 1–65535.
    Port,
    /// Unsigned integer within bounds.
    Int { min: u64, max: u64 },
    /// true/false (also yes/no, on/off).
    Bool,
    /// Fully qualified domain name (at least two labels).
    Fqdn,
    /// Container image reference: `[registry[:port]/]path[:tag][@digest]`.
    Image,
    /// A secret: never printed, written only to 0600 files.
    Secret,
    /// http(s) URL.
    Url,
    /// Absolute path on the host.
    Path,
    /// IANA time zone name such as America/Argentina/Cordoba or UTC.
    TimeZone,
    /// Network interface name.
    Nic,
    /// Memory size such as 512M or 1G.
    Size,
    /// A list of http(s) URLs (YAML sequence, or comma-separated in env/--set).
    UrlList,
    /// A key omldeploytool knows but omlboot does not implement; an error when it asks for something.
    Unsupported(&'static str),
    /// A key that only matters to Ansible; accepted and ignored with a warning.
    AnsibleOnly,
}

/// How a missing secret is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretPolicy {
    /// Not a secret.
    None,
    /// aio: generated once and kept; cluster roles: required (every host must agree).
    Generated,
    /// Supplied by the operator when the feature that needs it is used.
    Given,
}

#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Option<&'static str>,
    pub secret: SecretPolicy,
    pub group: &'static str,
    pub doc: &'static str,
}

const fn k(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    group: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        name,
        kind,
        default,
        secret: SecretPolicy::None,
        group,
        doc,
    }
}

const fn gen(name: &'static str, group: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Secret,
        default: None,
        secret: SecretPolicy::Generated,
        group,
        doc,
    }
}

const fn given(name: &'static str, group: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Secret,
        default: None,
        secret: SecretPolicy::Given,
        group,
        doc,
    }
}

pub const ROLES: &[&str] = &["aio", "data", "voice", "app"];
pub const INFRA_ENVS: &[&str] = &["cloud", "lan", "nat", "hybrid", "all"];
const NONE: Option<&str> = None;

/// Image defaults are omldeploytool release 2.2.2 (group_vars/all and inventory.yml), fully qualified
/// because Podman refuses short names when it cannot prompt.
pub const KEYS: &[Key] = &[
    // --- host and layout
    k("role", Kind::Enum(ROLES), Some("aio"), "host", "What this host runs: aio, or data/voice/app of a 3-host cluster."),
    k("tenant_id", Kind::Text, Some("omnileads"), "host", "Tenant name passed to Asterisk (TENANT_ID)."),
    k("infra_env", Kind::Enum(INFRA_ENVS), NONE, "host", "SIP/RTP addressing: cloud, lan, nat, hybrid or all. Detected when unset."),
    k("omni_ip_lan", Kind::Ipv4, NONE, "host", "This host's private IPv4. Detected when unset (omni_nic, then the default-route NIC)."),
    k("omni_nic", Kind::Nic, NONE, "host", "NIC whose IPv4 becomes omni_ip_lan when omni_ip_lan is unset."),
    k("nat_ip_addr", Kind::Ipv4, NONE, "host", "Public/NAT IPv4. Detected (cloud-init, metadata, echo service) when unset and needed."),
    k("fqdn", Kind::Fqdn, NONE, "host", "Public name of the web UI; also switches S3_ENDPOINT to https://<fqdn>."),
    k("certs", Kind::Enum(&["selfsigned", "custom"]), Some("selfsigned"), "host", "TLS for nginx/kamailio: generate a self-signed pair, or install cert_file_name/key_file_name."),
    k("cert_file_name", Kind::Path, NONE, "host", "certs=custom: path of the PEM certificate to install."),
    k("key_file_name", Kind::Path, NONE, "host", "certs=custom: path of the PEM private key to install."),
    k("TZ", Kind::TimeZone, Some("UTC"), "host", "Time zone of the host and the containers."),
    k("data_host", Kind::Ipv4, NONE, "cluster", "Cluster: private IPv4 of the data host (postgres, redis, rabbitmq, minio)."),
    k("voice_host", Kind::Ipv4, NONE, "cluster", "Cluster: private IPv4 of the voice host (asterisk, rtpengine)."),
    k("application_host", Kind::Ipv4, NONE, "cluster", "Cluster: private IPv4 of the app host (django, nginx, kamailio)."),
    // --- postgres
    k("postgres_host", Kind::Host, NONE, "postgres", "External PostgreSQL; when set no postgresql.service is run."),
    k("postgres_port", Kind::Port, Some("5432"), "postgres", "PostgreSQL port."),
    k("postgres_user", Kind::Text, Some("omnileads"), "postgres", "PostgreSQL user."),
    gen("postgres_password", "postgres", "PostgreSQL password."),
    k("postgres_database", Kind::Text, Some("omnileads"), "postgres", "PostgreSQL database."),
    k("postgres_maintenance_db", Kind::Text, Some("postgres"), "postgres", "Maintenance database (defaultdb on DigitalOcean managed PostgreSQL)."),
    k("postgres_ssl", Kind::Bool, Some("false"), "postgres", "Connect to PostgreSQL with TLS."),
    k("postgres_utc", Kind::Bool, Some("false"), "postgres", "Log in UTC; when false TZ is passed to ami/fastagi and UTC_LOGS=False."),
    // --- asterisk manager
    k("ami_user", Kind::Text, Some("omnileads"), "asterisk", "Asterisk AMI/ARI user."),
    gen("ami_password", "asterisk", "Asterisk AMI/ARI password."),
    // --- object storage
    k("bucket_url", Kind::Text, NONE, "storage", "External S3 endpoint URL, or `aws` for AWS S3; when set no minio.service is run."),
    k("bucket_name", Kind::Text, Some("omnileads"), "storage", "Bucket for recordings."),
    k("bucket_region", Kind::Text, Some("us-east-1"), "storage", "Bucket region."),
    k("bucket_access_key", Kind::Text, Some("omlminio"), "storage", "S3 access key (with MinIO: the app user omlboot creates)."),
    gen("bucket_secret_key", "storage", "S3 secret key."),
    k("bucket_ssl_selfsigned", Kind::Bool, Some("false"), "storage", "External S3 has a self-signed certificate (CALLREC_DEVICE=s3-no-check-cert)."),
    k("s3_http_admin_user", Kind::Text, Some("minio"), "storage", "MinIO root user."),
    gen("s3_http_admin_pass", "storage", "MinIO root password (at least 8 characters)."),
    // --- dialer
    k("dialer_host", Kind::Host, Some("localhost"), "dialer", "Wombat dialer host."),
    k("dialer_user", Kind::Text, Some("demoadmin"), "dialer", "Wombat dialer API user."),
    k("dialer_password", Kind::Text, Some("demo"), "dialer", "Wombat dialer API password (omldeploytool's default is demo)."),
    // --- external services
    k("rtpengine_host", Kind::Host, NONE, "integrations", "External RTPengine; when set no rtpengine.service is run."),
    k("loki_host", Kind::Host, NONE, "integrations", "Loki server; when set promtail.service ships the journal there."),
    k("homer_host", Kind::Host, NONE, "integrations", "Homer HEP collector (port 9060) for Asterisk."),
    // --- application
    k("SCA", Kind::Int { min: 60, max: 31_536_000 }, Some("3600"), "app", "Session cookie age, seconds."),
    k("api_token_expired_after", Kind::Int { min: 1, max: 31_536_000 }, NONE, "app", "API token lifetime, seconds."),
    k("ECCTL", Kind::Int { min: 60, max: 31_536_000 }, Some("28800"), "app", "Ephemeral credentials TTL, seconds."),
    k("LOGIN_FAILURE_LIMIT", Kind::Int { min: 1, max: 1000 }, Some("10"), "app", "Failed logins before lock-out."),
    k("schedule", Kind::Text, Some("Agenda"), "app", "Name of the reschedule disposition (CALIFICACION_REAGENDA)."),
    k("MONITORFORMAT", Kind::Enum(&["mp3", "wav"]), Some("mp3"), "app", "Call recording format."),
    k("google_maps_api_key", Kind::Text, NONE, "app", "Google Maps API key."),
    k("google_maps_center", Kind::Text, NONE, "app", "Google Maps initial center."),
    given("google_api_key", "app", "Google API key (TTS/ASR)."),
    k("google_cloud_projectid", Kind::Text, NONE, "app", "Google Cloud project id."),
    given("openai_api_key", "app", "OpenAI API key."),
    k("email_backend", Kind::Text, NONE, "email", "Django email backend; when set the SMTP settings below are used."),
    k("email_default_from", Kind::Text, NONE, "email", "DEFAULT_FROM_EMAIL."),
    k("email_host", Kind::Host, NONE, "email", "SMTP host."),
    given("email_password", "email", "SMTP password."),
    k("email_user", Kind::Text, NONE, "email", "SMTP user."),
    k("email_port", Kind::Port, NONE, "email", "SMTP port."),
    k("email_ssl_certfile", Kind::Path, NONE, "email", "SMTP client certificate."),
    k("email_ssl_keyfile", Kind::Path, NONE, "email", "SMTP client key."),
    k("email_use_ssl", Kind::Bool, Some("false"), "email", "SMTP over SSL."),
    k("email_use_tls", Kind::Bool, Some("false"), "email", "SMTP STARTTLS."),
    k("custom_cors_allowed_origins", Kind::Text, NONE, "app", "CUSTOM_CORS_ALLOWED_ORIGINS."),
    k("custom_cors_allow_headers", Kind::Text, NONE, "app", "CUSTOM_CORS_ALLOW_HEADERS."),
    k("proxy_url", Kind::Url, NONE, "app", "HTTP(S) proxy for the Django containers."),
    // --- scale
    k("scale_uwsgi", Kind::Bool, Some("false"), "scale", "Use the uwsgi_* settings below."),
    k("uwsgi_processes", Kind::Int { min: 1, max: 1024 }, Some("8"), "scale", "uWSGI processes."),
    k("uwsgi_threads", Kind::Int { min: 1, max: 1024 }, Some("1"), "scale", "uWSGI threads per process."),
    k("uwsgi_listen_queue_size", Kind::Int { min: 1, max: 65535 }, Some("2048"), "scale", "uWSGI listen queue."),
    k("uwsgi_worker_reload_mercy", Kind::Int { min: 1, max: 3600 }, Some("60"), "scale", "uWSGI worker reload mercy, seconds."),
    k("uwsgi_evil_reload_on_rss", Kind::Int { min: 1, max: 1 << 20 }, Some("3096"), "scale", "uWSGI evil reload on RSS, MB."),
    k("scale_asterisk", Kind::Bool, Some("false"), "scale", "Use the asterisk scale settings below."),
    k("asterisk_mem_limit", Kind::Size, Some("1G"), "scale", "MemoryMax of asterisk.service."),
    k("pjsip_threadpool_idle_timeout", Kind::Int { min: 1, max: 86400 }, Some("120"), "scale", "PJSIP threadpool idle timeout."),
    k("pjsip_threadpool_max_size", Kind::Int { min: 1, max: 10000 }, Some("150"), "scale", "PJSIP threadpool max size."),
    k("scale_rtpengine", Kind::Bool, Some("false"), "scale", "Use the rtpengine timeouts below."),
    k("rtpengine_timeout", Kind::Int { min: 1, max: 86400 }, Some("15"), "scale", "RTPengine TIMEOUT."),
    k("rtpengine_offer_timeout", Kind::Int { min: 1, max: 86400 }, Some("15"), "scale", "RTPengine OFFER_TIMEOUT."),
    k("rtpengine_silent_timeout", Kind::Int { min: 1, max: 86400 }, Some("120"), "scale", "RTPengine SILENT_TIMEOUT."),
    k("rtpengine_final_timeout", Kind::Int { min: 1, max: 864000 }, Some("3600"), "scale", "RTPengine FINAL_TIMEOUT."),
    k("kamailio_shm_size", Kind::Int { min: 8, max: 65536 }, Some("64"), "scale", "Kamailio shared memory, MB."),
    k("kamailio_pkg_size", Kind::Int { min: 1, max: 4096 }, Some("8"), "scale", "Kamailio private memory, MB."),
    k("scale_postgres", Kind::Bool, Some("false"), "scale", "Render /etc/omnileads/postgresql.conf from the postgres_* settings below."),
    k("postgres_max_connections", Kind::Int { min: 10, max: 100_000 }, Some("300"), "scale", "max_connections."),
    k("postgres_shared_buffers", Kind::Size, Some("512MB"), "scale", "shared_buffers."),
    k("postgres_statement_timeout", Kind::Int { min: 0, max: 86_400_000 }, Some("0"), "scale", "statement_timeout, ms (0 = off)."),
    k("postgres_effective_cache_size", Kind::Size, Some("1GB"), "scale", "effective_cache_size."),
    k("postgres_wal_buffers", Kind::Size, Some("16MB"), "scale", "wal_buffers."),
    k("postgres_checkpoint_timeout", Kind::Text, Some("15min"), "scale", "checkpoint_timeout."),
    k("postgres_work_mem", Kind::Size, Some("8MB"), "scale", "work_mem."),
    k("postgres_maintenance_work_mem", Kind::Size, Some("128MB"), "scale", "maintenance_work_mem."),
    k("scale_redis", Kind::Bool, Some("false"), "scale", "Render /etc/omnileads/redis.conf from the redis_* settings below."),
    k("redis_maxmemory", Kind::Size, Some("1gb"), "scale", "maxmemory."),
    k("redis_maxmemory_policy", Kind::Enum(&["noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "allkeys-random", "volatile-random", "volatile-ttl"]), Some("allkeys-lru"), "scale", "maxmemory-policy."),
    k("redis_tcp_backlog", Kind::Int { min: 1, max: 65535 }, Some("511"), "scale", "tcp-backlog."),
    k("redis_maxclients", Kind::Int { min: 1, max: 1_000_000 }, Some("10000"), "scale", "maxclients."),
    k("redis_lazyfree_lazy_eviction", Kind::Enum(&["yes", "no"]), Some("no"), "scale", "lazyfree-lazy-eviction."),
    k("redis_lazyfree_lazy_expire", Kind::Enum(&["yes", "no"]), Some("no"), "scale", "lazyfree-lazy-expire."),
    // --- ports (omldeploytool group_vars/all)
    k("websocket_port", Kind::Port, Some("8000"), "ports", "websockets port."),
    k("uwsgi_port", Kind::Port, Some("8099"), "ports", "uWSGI port."),
    k("daphne_port", Kind::Port, Some("8098"), "ports", "Daphne (ASGI) port."),
    k("redis_port", Kind::Port, Some("6379"), "ports", "Redis port."),
    k("fastagi_port", Kind::Port, Some("4573"), "ports", "FastAGI port."),
    k("kamailio_wss_port", Kind::Port, Some("14443"), "ports", "Kamailio WSS/TLS port."),
    // --- images (omldeploytool 2.2.2)
    k("omnileads_img", Kind::Image, Some("docker.io/omnileads/omlapp:241121.01"), "images", "Django app image (omnileads, daphne, omlcron)."),
    k("nginx_img", Kind::Image, Some("docker.io/omnileads/nginx:241009.01"), "images", "nginx image."),
    k("websockets_img", Kind::Image, Some("docker.io/omnileads/websockets:240705.01"), "images", "websockets image."),
    k("kamailio_img", Kind::Image, Some("docker.io/omnileads/kamailio:240625.01"), "images", "Kamailio image."),
    k("astami_img", Kind::Image, Some("docker.io/omnileads/astami:241017.01"), "images", "AMI bridge image."),
    k("fastagi_img", Kind::Image, Some("docker.io/omnileads/fastagi:241017.01"), "images", "FastAGI image."),
    k("asterisk_img", Kind::Image, Some("docker.io/omnileads/asterisk:240920.01"), "images", "Asterisk image."),
    k("asterisk_retrieve_conf_img", Kind::Image, Some("docker.io/omnileads/acd_retrieve_conf:240729.01"), "images", "Asterisk config retriever image."),
    k("interaction_processor_img", Kind::Image, Some("docker.io/omnileads/interaction_processor:240506.01"), "images", "Interaction processor image."),
    k("rtpengine_img", Kind::Image, Some("docker.io/omnileads/rtpengine:240625.01"), "images", "RTPengine image."),
    k("redis_img", Kind::Image, Some("docker.io/omnileads/redis:231125.01"), "images", "Redis (RedisGears) image."),
    k("rabbitmq_img", Kind::Image, Some("docker.io/rabbitmq:3.12"), "images", "RabbitMQ image."),
    k("postgres_img", Kind::Image, Some("docker.io/postgres:14.9-bullseye"), "images", "PostgreSQL image."),
    k("minio_img", Kind::Image, Some("quay.io/minio/minio:RELEASE.2023-09-27T15-22-50Z"), "images", "MinIO image."),
    k("prometheus_img", Kind::Image, Some("docker.io/prom/prometheus:v2.49.1"), "images", "Prometheus image."),
    k("prometheus_node_exp_img", Kind::Image, Some("docker.io/prom/node-exporter:v1.7.0"), "images", "Node exporter image."),
    k("prometheus_podman_exp_img", Kind::Image, Some("quay.io/navidys/prometheus-podman-exporter:latest"), "images", "Podman exporter image."),
    k("postgres_prometheus_img", Kind::Image, Some("docker.io/prometheuscommunity/postgres-exporter:latest"), "images", "PostgreSQL exporter image."),
    k("redis_prometheus_img", Kind::Image, Some("docker.io/oliver006/redis_exporter:latest"), "images", "Redis exporter image."),
    k("promtail_img", Kind::Image, Some("docker.io/grafana/promtail:latest"), "images", "Promtail image (only with loki_host)."),
    // --- omlboot's own settings (not in omldeploytool)
    k("public_ip_echo_urls", Kind::UrlList, Some("https://checkip.amazonaws.com,https://ifconfig.co/ip,https://ipinfo.io/ip"), "omlboot", "Echo services asked for the public IP when no cloud metadata has it; [] disables them."),
    k("metadata_url_aws", Kind::Url, Some("http://169.254.169.254"), "omlboot", "AWS IMDS base URL."),
    k("metadata_url_gcp", Kind::Url, Some("http://metadata.google.internal"), "omlboot", "GCP metadata base URL."),
    k("metadata_url_azure", Kind::Url, Some("http://169.254.169.254"), "omlboot", "Azure IMDS base URL."),
    k("metadata_url_digitalocean", Kind::Url, Some("http://169.254.169.254"), "omlboot", "DigitalOcean metadata base URL."),
    k("metadata_url_oracle", Kind::Url, Some("http://169.254.169.254"), "omlboot", "Oracle Cloud metadata base URL."),
    k("metadata_url_hetzner", Kind::Url, Some("http://169.254.169.254"), "omlboot", "Hetzner metadata base URL."),
    k("metadata_connect_timeout_ms", Kind::Int { min: 10, max: 60_000 }, Some("2000"), "omlboot", "Connect timeout of each metadata/echo request."),
    k("metadata_timeout_ms", Kind::Int { min: 10, max: 120_000 }, Some("5000"), "omlboot", "Total timeout of each metadata/echo request."),
    k("metadata_retries", Kind::Int { min: 0, max: 10 }, Some("2"), "omlboot", "Retries of a metadata/echo request after a transient failure."),
    k("skip_packages", Kind::Bool, Some("false"), "omlboot", "Do not install OS packages (an image baked with `omlboot bake` already has them)."),
    k("image_bundle", Kind::Path, NONE, "omlboot", "Offline mode: a tar of OCI archives loaded instead of pulling (see README)."),
    k("registry_auth_file", Kind::Path, NONE, "omlboot", "Registry credentials file (containers-auth.json format) passed to podman pull; never logged."),
    k("registry_tls_verify", Kind::Bool, Some("true"), "omlboot", "Verify registry TLS certificates (false only for a local test registry)."),
    k("image_pull_parallel", Kind::Int { min: 1, max: 16 }, Some("3"), "omlboot", "Images pulled at once."),
    k("unit_start_timeout_s", Kind::Int { min: 10, max: 3600 }, Some("300"), "omlboot", "Longest wait for one unit to become active."),
    // --- recognised, deliberately not implemented
    k("omnileads_ha", Kind::Unsupported("high availability (keepalived, repmgr) is not implemented by omlboot; use omldeploytool"), NONE, "unsupported", "HA pair."),
    k("ha_role", Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA role."),
    k("postgres_ha", Kind::Unsupported("PostgreSQL HA (PGHOSTHA/PGHOSTRO) is not implemented by omlboot"), NONE, "unsupported", "PostgreSQL RW/RO split."),
    k("qa_env", Kind::Unsupported("QA components (pstn emulator, wombat, mysql) are not provisioned by omlboot"), NONE, "unsupported", "QA components."),
    k("speech_analytics_model", Kind::Unsupported("sentiment analysis is not provisioned by omlboot"), NONE, "unsupported", "Sentiment analysis."),
    k("tts_external_engine", Kind::Unsupported("external TTS credentials are not provisioned by omlboot"), NONE, "unsupported", "External TTS."),
    k("upgrade_from_oml_1", Kind::Unsupported("migration from OMniLeads 1.x is not implemented by omlboot"), NONE, "unsupported", "1.x migration."),
    k("restore_file_timestamp", Kind::Unsupported("restore is not implemented by omlboot"), NONE, "unsupported", "Restore."),
    k("backup_bucket_url", Kind::Unsupported("scheduled backups are not implemented by omlboot yet"), NONE, "unsupported", "Scheduled backup."),
    k("swap_space", Kind::Unsupported("swap files are not created by omlboot"), NONE, "unsupported", "Swap file."),
    k("ansible_host", Kind::AnsibleOnly, NONE, "ansible", "SSH address for Ansible."),
    k("ansible_ssh_port", Kind::AnsibleOnly, NONE, "ansible", "SSH port for Ansible."),
    k("ansible_user", Kind::AnsibleOnly, NONE, "ansible", "SSH user for Ansible."),
    k("ansible_python_interpreter", Kind::AnsibleOnly, NONE, "ansible", "Python for Ansible."),
];

pub fn lookup(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The closest known key to a mistyped one, if it is close enough to be a likely typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    KEYS.iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&lower, &k.name.to_ascii_lowercase()),
                k.name,
            )
        })
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// Env variable that overrides a key: `OMLBOOT_` + the key upper-cased.
pub fn env_var(name: &str) -> String {
    format!("OMLBOOT_{}", name.to_ascii_uppercase())
}

/// Human description of what a kind accepts, used in error messages.
pub fn allowed(kind: Kind) -> String {
    match kind {
        Kind::Text => "one line of text".into(),
        Kind::Enum(words) => format!("one of {}", words.join(", ")),
        Kind::Ipv4 => "a dotted IPv4 address such as 10.0.0.5".into(),
        Kind::Host => "an IPv4 address or a DNS host name".into(),
        Kind::Port => "a port number 1–65535".into(),
        Kind::Int { min, max } => format!("a whole number {min}–{max}"),
        Kind::Bool => "true or false".into(),
        Kind::Fqdn => "a fully qualified domain name such as oml.example.com".into(),
        Kind::Image => "an image reference such as docker.io/omnileads/omlapp:241121.01".into(),
        Kind::Secret => "a secret of 8 or more characters on one line".into(),
        Kind::Url => "an http:// or https:// URL".into(),
        Kind::Path => "an absolute path".into(),
        Kind::TimeZone => "an IANA time zone such as America/Argentina/Cordoba or UTC".into(),
        Kind::Nic => "a network interface name such as eth0".into(),
        Kind::Size => "a size such as 512M, 1G or 128MB".into(),
        Kind::UrlList => "a list of http(s) URLs".into(),
        Kind::Unsupported(why) => format!("not set ({why})"),
        Kind::AnsibleOnly => "anything (ignored)".into(),
    }
}

/// The config reference as a Markdown table per group, embedded in README.md (a test keeps them equal).
pub fn markdown_reference() -> String {
    let mut groups: Vec<&str> = Vec::new();
    for k in KEYS {
        if !groups.contains(&k.group) {
            groups.push(k.group);
        }
    }
    let mut out = String::new();
    for g in groups {
        out.push_str(&format!(
            "\n**{g}**\n\n| key | allowed | default | meaning |\n|---|---|---|---|\n"
        ));
        for k in KEYS.iter().filter(|k| k.group == g) {
            let default = match (k.default, k.secret) {
                (Some(d), _) => format!("`{d}`"),
                (None, SecretPolicy::Generated) => "generated (aio); required (cluster)".into(),
                (None, _) => "unset".into(),
            };
            let allowed = match k.kind {
                Kind::Unsupported(_) => "rejected when set".to_string(),
                other => allowed(other),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                k.name,
                allowed.replace('|', "\\|"),
                default,
                k.doc.replace('|', "\\|")
            ));
        }
    }
    out
}
