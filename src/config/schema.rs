//! Every config key omlboot understands, by its omldeploytool inventory name.
//!
//! The table is the single source of truth for parsing, validation, defaults, "did you mean"
//! suggestions, the README's config reference (a test keeps the README in step) and the typed
//! [`Settings`] every other module reads.
use super::settings::{FromValue, Ignored, Secret};

/// Longest value of a [`Kind::Name`] key.
pub const NAME_MAX: usize = 63;

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
    /// A name OMniLeads builds other names and paths from (TENANT_ID, bucket and backup paths):
    /// ASCII letters, digits, `_` and `-`, starting with a letter or digit, at most [`NAME_MAX`].
    Name,
    /// Memory size such as 512M or 1G.
    Size,
    /// A list of http(s) URLs (YAML sequence, or comma-separated in env/--set).
    UrlList,
    /// A key omldeploytool knows but omlboot does not implement; an error when it asks for something.
    Unsupported(&'static str),
    /// A key that only matters to Ansible; accepted and ignored with a warning.
    AnsibleOnly,
    /// A key omldeploytool's example inventory or group_vars carries for its own machinery
    /// (install paths, journald limits, images of components omlboot does not run…); accepted
    /// whatever its value and ignored with a warning saying why.
    Ignored(&'static str),
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

/// Defines the key table and the typed [`Settings`] from the same rows, so they cannot drift apart:
/// `name: RustType = constructor(kind, default, group, doc);`. The field name is the key's inventory
/// name, so code outside config/ reads `settings.postgres_port` and a misspelt key does not compile.
/// [`key`] holds the same names as constants for the few places that need the name itself (origins).
macro_rules! schema {
    ($( $name:ident : $ty:ty = $ctor:ident ( $($arg:expr),* $(,)? ) ; )*) => {
        pub const KEYS: &[Key] = &[ $( $ctor(stringify!($name), $($arg),*) ),* ];

        /// Every key as a typed value, read from a validated [`Config`](super::Config).
        /// Unset optional keys are `None`; unsupported and Ansible-only keys are [`Ignored`].
        #[allow(non_snake_case)]
        #[derive(Debug, Clone)]
        pub struct Settings {
            $( pub $name: $ty, )*
        }

        impl Settings {
            pub(crate) fn read(cfg: &super::Config) -> Settings {
                Settings {
                    $( $name: FromValue::from_value(cfg.get(stringify!($name))), )*
                }
            }
        }

        /// Key names as constants: `key::omni_ip_lan` is checked by the compiler, "omni_ip_lan" is not.
        #[allow(non_upper_case_globals)]
        pub mod key {
            $( pub const $name: &str = stringify!($name); )*
        }
    };
}

// Image defaults are omldeploytool release 2.2.2 (group_vars/all and inventory.yml), fully qualified
// because Podman refuses short names when it cannot prompt.
schema! {
    // --- host and layout
    role: String = k(Kind::Enum(ROLES), Some("aio"), "host", "What this host runs: aio, or data/voice/app of a 3-host cluster.");
    tenant_id: String = k(Kind::Name, Some("omnileads"), "host", "Tenant name passed to Asterisk (TENANT_ID).");
    infra_env: Option<String> = k(Kind::Enum(INFRA_ENVS), NONE, "host", "SIP/RTP addressing: cloud, lan, nat, hybrid or all. Detected when unset.");
    omni_ip_lan: Option<String> = k(Kind::Ipv4, NONE, "host", "This host's private IPv4. Detected when unset (omni_nic, then the default-route NIC).");
    omni_nic: Option<String> = k(Kind::Nic, NONE, "host", "NIC whose IPv4 becomes omni_ip_lan when omni_ip_lan is unset.");
    nat_ip_addr: Option<String> = k(Kind::Ipv4, NONE, "host", "Public/NAT IPv4. Detected (cloud-init, metadata, echo service) when unset and needed.");
    fqdn: Option<String> = k(Kind::Fqdn, NONE, "host", "Public name of the web UI; also switches S3_ENDPOINT to https://<fqdn>.");
    certs: String = k(Kind::Enum(&["selfsigned", "custom"]), Some("selfsigned"), "host", "TLS for nginx/kamailio: generate a self-signed pair, or install cert_file_name/key_file_name.");
    cert_file_name: Option<String> = k(Kind::Path, NONE, "host", "certs=custom: path of the PEM certificate to install.");
    key_file_name: Option<String> = k(Kind::Path, NONE, "host", "certs=custom: path of the PEM private key to install.");
    TZ: String = k(Kind::TimeZone, Some("UTC"), "host", "Time zone of the host and the containers.");
    data_host: Option<String> = k(Kind::Ipv4, NONE, "cluster", "Cluster: private IPv4 of the data host (postgres, redis, rabbitmq, minio).");
    voice_host: Option<String> = k(Kind::Ipv4, NONE, "cluster", "Cluster: private IPv4 of the voice host (asterisk, rtpengine).");
    application_host: Option<String> = k(Kind::Ipv4, NONE, "cluster", "Cluster: private IPv4 of the app host (django, nginx, kamailio).");
    // --- postgres
    postgres_host: Option<String> = k(Kind::Host, NONE, "postgres", "External PostgreSQL; when set no postgresql.service is run.");
    postgres_port: u16 = k(Kind::Port, Some("5432"), "postgres", "PostgreSQL port.");
    postgres_user: String = k(Kind::Text, Some("omnileads"), "postgres", "PostgreSQL user.");
    postgres_password: Option<Secret> = gen("postgres", "PostgreSQL password.");
    postgres_database: String = k(Kind::Text, Some("omnileads"), "postgres", "PostgreSQL database.");
    postgres_maintenance_db: String = k(Kind::Text, Some("postgres"), "postgres", "Maintenance database (defaultdb on DigitalOcean managed PostgreSQL).");
    postgres_ssl: bool = k(Kind::Bool, Some("false"), "postgres", "Connect to PostgreSQL with TLS.");
    postgres_utc: bool = k(Kind::Bool, Some("false"), "postgres", "Log in UTC; when false TZ is passed to ami/fastagi and UTC_LOGS=False.");
    // --- asterisk manager
    ami_user: String = k(Kind::Text, Some("omnileads"), "asterisk", "Asterisk AMI/ARI user.");
    ami_password: Option<Secret> = gen("asterisk", "Asterisk AMI/ARI password.");
    // --- object storage
    bucket_url: Option<String> = k(Kind::Text, NONE, "storage", "External S3 endpoint URL, or `aws` for AWS S3; when set no minio.service is run.");
    bucket_name: String = k(Kind::Text, Some("omnileads"), "storage", "Bucket for recordings.");
    bucket_region: String = k(Kind::Text, Some("us-east-1"), "storage", "Bucket region.");
    bucket_access_key: String = k(Kind::Text, Some("omlminio"), "storage", "S3 access key (with MinIO: the app user omlboot creates).");
    bucket_secret_key: Option<Secret> = gen("storage", "S3 secret key.");
    bucket_ssl_selfsigned: bool = k(Kind::Bool, Some("false"), "storage", "External S3 has a self-signed certificate (CALLREC_DEVICE=s3-no-check-cert).");
    s3_http_admin_user: String = k(Kind::Text, Some("minio"), "storage", "MinIO root user.");
    s3_http_admin_pass: Option<Secret> = gen("storage", "MinIO root password (at least 8 characters).");
    // --- dialer
    dialer_host: String = k(Kind::Host, Some("localhost"), "dialer", "Wombat dialer host.");
    dialer_user: String = k(Kind::Text, Some("demoadmin"), "dialer", "Wombat dialer API user.");
    dialer_password: String = k(Kind::Text, Some("demo"), "dialer", "Wombat dialer API password (omldeploytool's default is demo).");
    // --- external services
    rtpengine_host: Option<String> = k(Kind::Host, NONE, "integrations", "External RTPengine; when set no rtpengine.service is run.");
    loki_host: Option<String> = k(Kind::Host, NONE, "integrations", "Loki server; when set promtail.service ships the journal there.");
    homer_host: Option<String> = k(Kind::Host, NONE, "integrations", "Homer HEP collector (port 9060) for Asterisk.");
    // --- application
    SCA: u64 = k(Kind::Int { min: 60, max: 31_536_000 }, Some("3600"), "app", "Session cookie age, seconds.");
    api_token_expired_after: Option<u64> = k(Kind::Int { min: 1, max: 31_536_000 }, NONE, "app", "API token lifetime, seconds.");
    ECCTL: u64 = k(Kind::Int { min: 60, max: 31_536_000 }, Some("28800"), "app", "Ephemeral credentials TTL, seconds.");
    LOGIN_FAILURE_LIMIT: u64 = k(Kind::Int { min: 1, max: 1000 }, Some("10"), "app", "Failed logins before lock-out.");
    schedule: String = k(Kind::Text, Some("Agenda"), "app", "Name of the reschedule disposition (CALIFICACION_REAGENDA).");
    MONITORFORMAT: String = k(Kind::Enum(&["mp3", "wav"]), Some("mp3"), "app", "Call recording format.");
    google_maps_api_key: Option<String> = k(Kind::Text, NONE, "app", "Google Maps API key.");
    google_maps_center: Option<String> = k(Kind::Text, NONE, "app", "Google Maps initial center.");
    google_api_key: Option<Secret> = given("app", "Google API key (TTS/ASR).");
    google_cloud_projectid: Option<String> = k(Kind::Text, NONE, "app", "Google Cloud project id.");
    openai_api_key: Option<Secret> = given("app", "OpenAI API key.");
    email_backend: Option<String> = k(Kind::Text, NONE, "email", "Django email backend; when set the SMTP settings below are used.");
    email_default_from: Option<String> = k(Kind::Text, NONE, "email", "DEFAULT_FROM_EMAIL.");
    email_host: Option<String> = k(Kind::Host, NONE, "email", "SMTP host.");
    email_password: Option<Secret> = given("email", "SMTP password.");
    email_user: Option<String> = k(Kind::Text, NONE, "email", "SMTP user.");
    email_port: Option<u16> = k(Kind::Port, NONE, "email", "SMTP port.");
    email_ssl_certfile: Option<String> = k(Kind::Path, NONE, "email", "SMTP client certificate.");
    email_ssl_keyfile: Option<String> = k(Kind::Path, NONE, "email", "SMTP client key.");
    email_use_ssl: bool = k(Kind::Bool, Some("false"), "email", "SMTP over SSL.");
    email_use_tls: bool = k(Kind::Bool, Some("false"), "email", "SMTP STARTTLS.");
    custom_cors_allowed_origins: Option<String> = k(Kind::Text, NONE, "app", "CUSTOM_CORS_ALLOWED_ORIGINS.");
    custom_cors_allow_headers: Option<String> = k(Kind::Text, NONE, "app", "CUSTOM_CORS_ALLOW_HEADERS.");
    proxy_url: Option<String> = k(Kind::Url, NONE, "app", "HTTP(S) proxy for the Django containers.");
    // --- scale
    scale_uwsgi: bool = k(Kind::Bool, Some("false"), "scale", "Use the uwsgi_* settings below.");
    uwsgi_processes: u64 = k(Kind::Int { min: 1, max: 1024 }, Some("8"), "scale", "uWSGI processes.");
    uwsgi_threads: u64 = k(Kind::Int { min: 1, max: 1024 }, Some("1"), "scale", "uWSGI threads per process.");
    uwsgi_listen_queue_size: u64 = k(Kind::Int { min: 1, max: 65535 }, Some("2048"), "scale", "uWSGI listen queue.");
    uwsgi_worker_reload_mercy: u64 = k(Kind::Int { min: 1, max: 3600 }, Some("60"), "scale", "uWSGI worker reload mercy, seconds.");
    uwsgi_evil_reload_on_rss: u64 = k(Kind::Int { min: 1, max: 1 << 20 }, Some("3096"), "scale", "uWSGI evil reload on RSS, MB.");
    scale_asterisk: bool = k(Kind::Bool, Some("false"), "scale", "Use the asterisk scale settings below.");
    asterisk_mem_limit: String = k(Kind::Size, Some("1G"), "scale", "MemoryMax of asterisk.service.");
    pjsip_threadpool_idle_timeout: u64 = k(Kind::Int { min: 1, max: 86400 }, Some("120"), "scale", "PJSIP threadpool idle timeout.");
    pjsip_threadpool_max_size: u64 = k(Kind::Int { min: 1, max: 10000 }, Some("150"), "scale", "PJSIP threadpool max size.");
    scale_rtpengine: bool = k(Kind::Bool, Some("false"), "scale", "Use the rtpengine timeouts below.");
    rtpengine_timeout: u64 = k(Kind::Int { min: 1, max: 86400 }, Some("15"), "scale", "RTPengine TIMEOUT.");
    rtpengine_offer_timeout: u64 = k(Kind::Int { min: 1, max: 86400 }, Some("15"), "scale", "RTPengine OFFER_TIMEOUT.");
    rtpengine_silent_timeout: u64 = k(Kind::Int { min: 1, max: 86400 }, Some("120"), "scale", "RTPengine SILENT_TIMEOUT.");
    rtpengine_final_timeout: u64 = k(Kind::Int { min: 1, max: 864000 }, Some("3600"), "scale", "RTPengine FINAL_TIMEOUT.");
    kamailio_shm_size: u64 = k(Kind::Int { min: 8, max: 65536 }, Some("64"), "scale", "Kamailio shared memory, MB.");
    kamailio_pkg_size: u64 = k(Kind::Int { min: 1, max: 4096 }, Some("8"), "scale", "Kamailio private memory, MB.");
    scale_postgres: bool = k(Kind::Bool, Some("false"), "scale", "Render /etc/omnileads/postgresql.conf from the postgres_* settings below.");
    postgres_max_connections: u64 = k(Kind::Int { min: 10, max: 100_000 }, Some("300"), "scale", "max_connections.");
    postgres_shared_buffers: String = k(Kind::Size, Some("512MB"), "scale", "shared_buffers.");
    postgres_statement_timeout: u64 = k(Kind::Int { min: 0, max: 86_400_000 }, Some("0"), "scale", "statement_timeout, ms (0 = off).");
    postgres_effective_cache_size: String = k(Kind::Size, Some("1GB"), "scale", "effective_cache_size.");
    postgres_wal_buffers: String = k(Kind::Size, Some("16MB"), "scale", "wal_buffers.");
    postgres_checkpoint_timeout: String = k(Kind::Text, Some("15min"), "scale", "checkpoint_timeout.");
    postgres_work_mem: String = k(Kind::Size, Some("8MB"), "scale", "work_mem.");
    postgres_maintenance_work_mem: String = k(Kind::Size, Some("128MB"), "scale", "maintenance_work_mem.");
    scale_redis: bool = k(Kind::Bool, Some("false"), "scale", "Render /etc/omnileads/redis.conf from the redis_* settings below.");
    redis_maxmemory: String = k(Kind::Size, Some("1gb"), "scale", "maxmemory.");
    redis_maxmemory_policy: String = k(Kind::Enum(&["noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "allkeys-random", "volatile-random", "volatile-ttl"]), Some("allkeys-lru"), "scale", "maxmemory-policy.");
    redis_tcp_backlog: u64 = k(Kind::Int { min: 1, max: 65535 }, Some("511"), "scale", "tcp-backlog.");
    redis_maxclients: u64 = k(Kind::Int { min: 1, max: 1_000_000 }, Some("10000"), "scale", "maxclients.");
    redis_lazyfree_lazy_eviction: String = k(Kind::Enum(&["yes", "no"]), Some("no"), "scale", "lazyfree-lazy-eviction.");
    redis_lazyfree_lazy_expire: String = k(Kind::Enum(&["yes", "no"]), Some("no"), "scale", "lazyfree-lazy-expire.");
    // --- ports (omldeploytool group_vars/all)
    websocket_port: u16 = k(Kind::Port, Some("8000"), "ports", "websockets port.");
    uwsgi_port: u16 = k(Kind::Port, Some("8099"), "ports", "uWSGI port.");
    daphne_port: u16 = k(Kind::Port, Some("8098"), "ports", "Daphne (ASGI) port.");
    redis_port: u16 = k(Kind::Port, Some("6379"), "ports", "Redis port.");
    fastagi_port: u16 = k(Kind::Port, Some("4573"), "ports", "FastAGI port.");
    kamailio_wss_port: u16 = k(Kind::Port, Some("14443"), "ports", "Kamailio WSS/TLS port.");
    // --- images (omldeploytool 2.2.2)
    omnileads_img: String = k(Kind::Image, Some("docker.io/omnileads/omlapp:241121.01"), "images", "Django app image (omnileads, daphne, omlcron).");
    nginx_img: String = k(Kind::Image, Some("docker.io/omnileads/nginx:241009.01"), "images", "nginx image.");
    websockets_img: String = k(Kind::Image, Some("docker.io/omnileads/websockets:240705.01"), "images", "websockets image.");
    kamailio_img: String = k(Kind::Image, Some("docker.io/omnileads/kamailio:240625.01"), "images", "Kamailio image.");
    astami_img: String = k(Kind::Image, Some("docker.io/omnileads/astami:241017.01"), "images", "AMI bridge image.");
    fastagi_img: String = k(Kind::Image, Some("docker.io/omnileads/fastagi:241017.01"), "images", "FastAGI image.");
    asterisk_img: String = k(Kind::Image, Some("docker.io/omnileads/asterisk:240920.01"), "images", "Asterisk image.");
    asterisk_retrieve_conf_img: String = k(Kind::Image, Some("docker.io/omnileads/acd_retrieve_conf:240729.01"), "images", "Asterisk config retriever image.");
    interaction_processor_img: String = k(Kind::Image, Some("docker.io/omnileads/interaction_processor:240506.01"), "images", "Interaction processor image.");
    rtpengine_img: String = k(Kind::Image, Some("docker.io/omnileads/rtpengine:240625.01"), "images", "RTPengine image.");
    redis_img: String = k(Kind::Image, Some("docker.io/omnileads/redis:231125.01"), "images", "Redis (RedisGears) image.");
    rabbitmq_img: String = k(Kind::Image, Some("docker.io/rabbitmq:3.12"), "images", "RabbitMQ image.");
    postgres_img: String = k(Kind::Image, Some("docker.io/postgres:14.9-bullseye"), "images", "PostgreSQL image.");
    minio_img: String = k(Kind::Image, Some("quay.io/minio/minio:RELEASE.2023-09-27T15-22-50Z"), "images", "MinIO image.");
    prometheus_img: String = k(Kind::Image, Some("docker.io/prom/prometheus:v2.49.1"), "images", "Prometheus image.");
    prometheus_node_exp_img: String = k(Kind::Image, Some("docker.io/prom/node-exporter:v1.7.0"), "images", "Node exporter image.");
    prometheus_podman_exp_img: String = k(Kind::Image, Some("quay.io/navidys/prometheus-podman-exporter:latest"), "images", "Podman exporter image.");
    postgres_prometheus_img: String = k(Kind::Image, Some("docker.io/prometheuscommunity/postgres-exporter:latest"), "images", "PostgreSQL exporter image.");
    redis_prometheus_img: String = k(Kind::Image, Some("docker.io/oliver006/redis_exporter:latest"), "images", "Redis exporter image.");
    promtail_img: String = k(Kind::Image, Some("docker.io/grafana/promtail:latest"), "images", "Promtail image (only with loki_host).");
    // --- omlboot's own settings (not in omldeploytool)
    public_ip_echo_urls: Vec<String> = k(Kind::UrlList, Some("https://checkip.amazonaws.com,https://ifconfig.co/ip,https://ipinfo.io/ip"), "omlboot", "Echo services asked for the public IP when no cloud metadata has it; [] disables them.");
    metadata_url_aws: String = k(Kind::Url, Some("http://169.254.169.254"), "omlboot", "AWS IMDS base URL.");
    metadata_url_gcp: String = k(Kind::Url, Some("http://metadata.google.internal"), "omlboot", "GCP metadata base URL.");
    metadata_url_azure: String = k(Kind::Url, Some("http://169.254.169.254"), "omlboot", "Azure IMDS base URL.");
    metadata_url_digitalocean: String = k(Kind::Url, Some("http://169.254.169.254"), "omlboot", "DigitalOcean metadata base URL.");
    metadata_url_oracle: String = k(Kind::Url, Some("http://169.254.169.254"), "omlboot", "Oracle Cloud metadata base URL.");
    metadata_url_hetzner: String = k(Kind::Url, Some("http://169.254.169.254"), "omlboot", "Hetzner metadata base URL.");
    metadata_connect_timeout_ms: u64 = k(Kind::Int { min: 10, max: 60_000 }, Some("2000"), "omlboot", "Connect timeout of each metadata/echo request.");
    metadata_timeout_ms: u64 = k(Kind::Int { min: 10, max: 120_000 }, Some("5000"), "omlboot", "Total timeout of each metadata/echo request.");
    metadata_retries: u64 = k(Kind::Int { min: 0, max: 10 }, Some("2"), "omlboot", "Retries of a metadata/echo request after a transient failure.");
    skip_packages: bool = k(Kind::Bool, Some("false"), "omlboot", "Do not install OS packages (an image baked with `omlboot bake` already has them).");
    image_bundle: Option<String> = k(Kind::Path, NONE, "omlboot", "Offline mode: a tar of OCI archives loaded instead of pulling (see README).");
    registry_auth_file: Option<String> = k(Kind::Path, NONE, "omlboot", "Registry credentials file (containers-auth.json format) passed to podman pull; never logged.");
    registry_tls_verify: bool = k(Kind::Bool, Some("true"), "omlboot", "Verify registry TLS certificates (false only for a local test registry).");
    image_pull_parallel: u64 = k(Kind::Int { min: 1, max: 16 }, Some("3"), "omlboot", "Images pulled at once.");
    unit_start_timeout_s: u64 = k(Kind::Int { min: 10, max: 3600 }, Some("300"), "omlboot", "Longest wait for one unit to become active.");
    // --- upgrade, rollback and telephony safety (issue 11)
    stability_window_s: u64 = k(Kind::Int { min: 0, max: 3600 }, Some("30"), "omlboot", "After an image change, how long a component's probe must keep passing (NRestarts unchanged) before it counts as upgraded; else it is rolled back.");
    drain_timeout_s: u64 = k(Kind::Int { min: 0, max: 86_400 }, Some("900"), "omlboot", "Longest wait for asterisk, kamailio or rtpengine to carry no call before a restart (then only a maintenance window, or --force, lets it restart).");
    maintenance_weekdays: Option<String> = k(Kind::Text, NONE, "omlboot", "Maintenance window days (UTC), e.g. `mon,tue` or `mon-fri`: voice restarts proceed during the window even with calls.");
    maintenance_hours: Option<String> = k(Kind::Text, NONE, "omlboot", "Maintenance window hours (UTC), `HH-HH` (end exclusive, may wrap midnight), e.g. `02-05`.");
    // --- backup and restore (issue 12; src/backup/config.rs checks them together). omldeploytool's
    // names first, then the ERA backup controller's shape where omldeploytool has none.
    backup_bucket_url: Option<String> = k(Kind::Text, NONE, "backup", "omldeploytool: S3 endpoint of the backup bucket (an http(s) URL, or `aws` for AWS in bucket_region); alone, backups go to s3://<backup_bucket_name>/backup. Unset, an s3:// backup_destination uses the recordings' S3 (the host's MinIO).");
    backup_bucket_name: Option<String> = k(Kind::Text, NONE, "backup", "omldeploytool: bucket of the backups (default bucket_name); with an s3:// backup_destination it must match its bucket.");
    backup_bucket_key_id: Option<String> = k(Kind::Text, NONE, "backup", "omldeploytool: access key of the backup bucket (required with backup_bucket_url; default bucket_access_key).");
    backup_bucket_secret_key: Option<Secret> = given("backup", "omldeploytool: secret key of the backup bucket (required with backup_bucket_url; default bucket_secret_key).");
    cron_backup_hh: Option<u64> = k(Kind::Int { min: 0, max: 23 }, NONE, "backup", "omldeploytool: hour (UTC) of the daily backup; same as backup_hours HH-HH on every weekday.");
    cron_backup_mm: Option<u64> = k(Kind::Int { min: 0, max: 59 }, NONE, "backup", "omldeploytool: minute of the daily backup (with cron_backup_hh).");
    restore_file_timestamp: Option<String> = k(Kind::Text, NONE, "backup", "omldeploytool: restore this backup (an omlboot backup name, or the <ts> of pgsql-backup-<ts>.sql) from the destination.");
    backup_destination: Option<String> = k(Kind::Text, NONE, "backup", "Where backups go: /dir (or dir:///dir), ssh://user@host[:port]/path (relative to the user's home; //abs for absolute) or s3://bucket/prefix.");
    backup_path_template: String = k(Kind::Text, Some("{tenant}"), "backup", "Directory under the destination; placeholders {tenant} {year} {month} {day} {weekday} {hour} {timestamp} (UTC, weekday 1-7 Monday=1).");
    backup_weekdays: String = k(Kind::Text, Some("*"), "backup", "Days backups run on: * (every day), 1-5, 1,3,5 or mon,wed (Monday = 1).");
    backup_hours: Option<String> = k(Kind::Text, NONE, "backup", "UTC hour window such as 01-04 (from 01:00 to 04:59; 20-03 wraps midnight); with it a systemd timer runs the backup at most once per window, a failed run retried after 20 minutes.");
    backup_keep_daily: u64 = k(Kind::Int { min: 0, max: 3650 }, Some("7"), "backup", "Retention: newest backup of each of the last N days.");
    backup_keep_weekly: u64 = k(Kind::Int { min: 0, max: 520 }, Some("4"), "backup", "Retention: newest backup of each of the last N weeks.");
    backup_keep_monthly: u64 = k(Kind::Int { min: 0, max: 240 }, Some("6"), "backup", "Retention: newest backup of each of the last N months (the newest verified backup is always kept).");
    backup_ssh_key_file: Option<String> = k(Kind::Path, NONE, "backup", "Private key for an ssh:// destination.");
    backup_ssh_known_hosts: String = k(Kind::Path, Some("/var/lib/omlboot/backup_known_hosts"), "backup", "known_hosts omlboot keeps for ssh destinations (the first host key seen is pinned).");
    backup_verify: bool = k(Kind::Bool, Some("true"), "backup", "Restore every backup into a throwaway postgres of the same image and compare row counts.");
    backup_work_dir: String = k(Kind::Path, Some("/var/lib/omlboot/backup-work"), "backup", "Local directory for the archive before upload and for downloads during restore.");
    // --- recognised, deliberately not implemented
    omnileads_ha: Ignored = k(Kind::Unsupported("high availability (keepalived, repmgr) is not implemented by omlboot; use omldeploytool"), NONE, "unsupported", "HA pair.");
    ha_role: Ignored = k(Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA role.");
    postgres_ha: Ignored = k(Kind::Unsupported("PostgreSQL HA (PGHOSTHA/PGHOSTRO) is not implemented by omlboot"), NONE, "unsupported", "PostgreSQL RW/RO split.");
    qa_env: Ignored = k(Kind::Unsupported("QA components (pstn emulator, wombat, mysql) are not provisioned by omlboot"), NONE, "unsupported", "QA components.");
    speech_analytics_model: Ignored = k(Kind::Unsupported("sentiment analysis is not provisioned by omlboot"), NONE, "unsupported", "Sentiment analysis.");
    tts_external_engine: Ignored = k(Kind::Unsupported("external TTS credentials are not provisioned by omlboot"), NONE, "unsupported", "External TTS.");
    upgrade_from_oml_1: Ignored = k(Kind::Unsupported("migration from OMniLeads 1.x is not implemented by omlboot"), NONE, "unsupported", "1.x migration.");
    swap_space: Ignored = k(Kind::Unsupported("swap files are not created by omlboot"), NONE, "unsupported", "Swap file.");
    ansible_host: Ignored = k(Kind::AnsibleOnly, NONE, "ansible", "SSH address for Ansible.");
    ansible_ssh_port: Ignored = k(Kind::AnsibleOnly, NONE, "ansible", "SSH port for Ansible.");
    ansible_user: Ignored = k(Kind::AnsibleOnly, NONE, "ansible", "SSH user for Ansible.");
    ansible_python_interpreter: Ignored = k(Kind::AnsibleOnly, NONE, "ansible", "Python for Ansible.");
    // --- issue 10: every other key of omldeploytool 2.2.2's example inventory.yml and group_vars/all
    aio_1: Ignored = k(Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA: first host of the pair.");
    aio_2: Ignored = k(Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA: second host of the pair.");
    ha_vip_nic: Ignored = k(Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA: NIC of the virtual IPs.");
    netaddr: Ignored = k(Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA: network of the virtual IPs.");
    netprefix: Ignored = k(Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA: prefix of the virtual IPs.");
    omnileads_vip: Ignored = k(Kind::Unsupported("high availability is not implemented by omlboot"), NONE, "unsupported", "HA: OMniLeads virtual IP.");
    postgres_rw_vip: Ignored = k(Kind::Unsupported("PostgreSQL HA (PGHOSTHA/PGHOSTRO) is not implemented by omlboot"), NONE, "unsupported", "HA: PostgreSQL read-write virtual IP.");
    postgres_ro_vip: Ignored = k(Kind::Unsupported("PostgreSQL HA (PGHOSTHA/PGHOSTRO) is not implemented by omlboot"), NONE, "unsupported", "HA: PostgreSQL read-only virtual IP.");
    video_host: Ignored = k(Kind::Unsupported("web-video inbound calls (Jitsi) are not provisioned by omlboot"), NONE, "unsupported", "Jitsi host for web-video calls.");
    notification_email: Ignored = k(Kind::Ignored("only used for Let's Encrypt certificates (certs: certbot), which omlboot does not provide"), NONE, "omldeploytool", "E-mail for Let's Encrypt.");
    email_smtp_relay: Ignored = k(Kind::Ignored("omlboot uses SMTP whenever email_backend is set"), NONE, "omldeploytool", "omldeploytool's switch for the email_* keys.");
    INSTALL_PREFIX: Ignored = k(Kind::Ignored("omlboot uses fixed paths (see README, What gets written)"), NONE, "omldeploytool", "Install path of omldeploytool.");
    django_deploy_path: Ignored = k(Kind::Ignored("omlboot uses fixed paths (see README, What gets written)"), NONE, "omldeploytool", "Install path of the Django app.");
    asterisk_location_conf: Ignored = k(Kind::Ignored("omlboot uses fixed paths (see README, What gets written)"), NONE, "omldeploytool", "Asterisk config path.");
    certs_location: Ignored = k(Kind::Ignored("omlboot uses fixed paths (see README, What gets written)"), NONE, "omldeploytool", "Certificate directory.");
    swap_file: Ignored = k(Kind::Ignored("omlboot uses fixed paths (see README, What gets written)"), NONE, "omldeploytool", "Swap file path (see swap_space).");
    journald_system_max_use: Ignored = k(Kind::Ignored("omlboot leaves journald's configuration to the OS image"), NONE, "omldeploytool", "journald system_max_use.");
    journald_runtime_max_use: Ignored = k(Kind::Ignored("omlboot leaves journald's configuration to the OS image"), NONE, "omldeploytool", "journald runtime_max_use.");
    journald_system_max_file_size: Ignored = k(Kind::Ignored("omlboot leaves journald's configuration to the OS image"), NONE, "omldeploytool", "journald system_max_file_size.");
    journald_system_keep_free: Ignored = k(Kind::Ignored("omlboot leaves journald's configuration to the OS image"), NONE, "omldeploytool", "journald system_keep_free.");
    journald_runtime_keep_free: Ignored = k(Kind::Ignored("omlboot leaves journald's configuration to the OS image"), NONE, "omldeploytool", "journald runtime_keep_free.");
    USUARIO: Ignored = k(Kind::Ignored("omlboot runs every container as a root systemd unit"), NONE, "omldeploytool", "OS user of omldeploytool.");
    usuario: Ignored = k(Kind::Ignored("omlboot runs every container as a root systemd unit"), NONE, "omldeploytool", "OS user of omldeploytool.");
    container_image_registry: Ignored = k(Kind::Ignored("image keys are fully qualified references (docker.io/…)"), NONE, "omldeploytool", "Default registry of omldeploytool.");
    container_orchest: Ignored = k(Kind::Ignored("omlboot always runs containers as systemd units"), NONE, "omldeploytool", "Container orchestrator (systemd).");
    redis_ha_version: Ignored = k(Kind::Ignored("high availability is not implemented by omlboot"), NONE, "omldeploytool", "Redis HA version.");
    haproxy_version: Ignored = k(Kind::Ignored("high availability is not implemented by omlboot"), NONE, "omldeploytool", "HAProxy version.");
    ha_postgresql_version: Ignored = k(Kind::Ignored("high availability is not implemented by omlboot"), NONE, "omldeploytool", "HA PostgreSQL version.");
    postgres_homer_db: Ignored = k(Kind::Ignored("omlboot does not run Homer (see homer_host)"), NONE, "omldeploytool", "Homer database name.");
    MYSQL_HOST: Ignored = k(Kind::Ignored("QA dialer settings: omlboot does not provision Wombat or MariaDB (see qa_env)"), NONE, "omldeploytool", "QA: MariaDB host.");
    MYSQL_ROOT_PASS: Ignored = k(Kind::Ignored("QA dialer settings: omlboot does not provision Wombat or MariaDB (see qa_env)"), NONE, "omldeploytool", "QA: MariaDB root password.");
    WOMBAT_DB: Ignored = k(Kind::Ignored("QA dialer settings: omlboot does not provision Wombat or MariaDB (see qa_env)"), NONE, "omldeploytool", "QA: Wombat database.");
    WOMBAT_DB_USER: Ignored = k(Kind::Ignored("QA dialer settings: omlboot does not provision Wombat or MariaDB (see qa_env)"), NONE, "omldeploytool", "QA: Wombat database user.");
    WOMBAT_DB_PASS: Ignored = k(Kind::Ignored("QA dialer settings: omlboot does not provision Wombat or MariaDB (see qa_env)"), NONE, "omldeploytool", "QA: Wombat database password.");
    sentiment_analysis_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "Sentiment analysis image.");
    postgres_ha_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "HA PostgreSQL image.");
    nginxcgi_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "QA nginx image.");
    pstn_emulator_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "QA PSTN emulator image.");
    wombat_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "Wombat dialer image.");
    mysql_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "MariaDB image (QA dialer).");
    survey_worker_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "Survey worker image.");
    certbot_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "certbot image.");
    haproxy_img: Ignored = k(Kind::Ignored("images of components omlboot does not run"), NONE, "omldeploytool", "HAProxy image (HA).");
    // --- end of issue 10's omldeploytool keys
}

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
        Kind::Name => format!(
            "a name of 1–{NAME_MAX} characters: letters a–z and A–Z, digits, `_` and `-`, starting with a letter or digit"
        ),
        Kind::Size => "a size such as 512M, 1G or 128MB".into(),
        Kind::UrlList => "a list of http(s) URLs".into(),
        Kind::Unsupported(why) => format!("not set ({why})"),
        Kind::AnsibleOnly => "anything (ignored)".into(),
        Kind::Ignored(_) => "anything (ignored with a warning)".into(),
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
