//! The e2e stand-in images fail the way the real ones would (issue 9, item 3), checked on this host with real
//! podman, in a network namespace of the test's own (so no port collides with anything else on the machine):
//!
//! * minio: MinIO's official Python SDK (pinned in tests/e2e/standins/minio-sdk-requirements.txt, installed in a
//!   venv in the e2e cache) creates the bucket as root; a put by an unknown user is refused; after `user_add` and
//!   `attach_policy` (MinIO's encrypted admin payloads, both ways) and the older `policy_set` the user writes and
//!   reads; the users and objects survive a restart of the container;
//! * omlapp: uwsgi refuses (exit 1, FATAL naming django_migrations) before the migrations one-shot ran, and is
//!   ready after it (PostgreSQL login, schema, an object written and read back in the bucket with django.env's
//!   credentials); the one-shots record their runs (django_migrations with the image reference, e2e_admin_resets)
//!   and put static files in the django_static volume;
//! * nginx (real nginx): https `/` is 502 without uwsgi, 302 to /accounts/login/ with it; /static/ serves the
//!   volume;
//! * ami: a wrong AMI password fails loudly; the right one logs in to asterisk's AMI; kamailio pings rtpengine's ng
//!   port and fails loudly without it;
//! * call counting: asterisk / kamcmd / rtpengine-ctl print the number in /tmp/e2e-calls;
//! * tags: :e2e-2 is another image id; :e2e-broken stays up with its health failing (uwsgi 500, ports unbound).
//!
//! Needs root, podman (+ runc where crun cannot run containers, as on the project's machines), iproute2, nsenter,
//! curl, python3 with venv, the Debian mirror (cold stand-in build) and PyPI (once, for the SDK).
//! Run: `OMLBOOT_E2E_CACHE=/work/e2e-cache cargo test --test standins_host -- --ignored --nocapture`
//! (1-1.5 min warm, ~5 min with a cold stand-in build; see tests/e2e/README.md, "What the stand-ins check").

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const R: &str = "localhost:5000";

struct Bed {
    ns: String,
    cache: PathBuf,
    work: PathBuf,
    prelude: String,
}

impl Bed {
    fn new() -> Bed {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cache = std::env::var_os("OMLBOOT_E2E_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("tests/e2e/.cache"));
        std::fs::create_dir_all(&cache).unwrap();
        let ns = format!("standins-host-{}", std::process::id());
        let work = cache.join(format!("host-test-standins-run-{}", std::process::id()));
        std::fs::create_dir_all(work.join("envs")).unwrap();
        for tool in ["podman", "nsenter", "ip", "curl", "python3"] {
            let found = Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(found, "standins_host needs {tool} (tests/e2e/setup-host.sh; podman: apt-get install podman)");
        }
        let runc = Path::new("/usr/bin/runc").exists() || Path::new("/usr/sbin/runc").exists();
        if !runc {
            eprintln!("standins_host: no runc; if containers fail with 'cgroups in hybrid mode not supported', apt-get install runc");
        }
        let runtime = if runc { "--runtime runc" } else { "" };
        let prelude = format!(
            "set -e; P='podman --root {root} --runroot /run/standins-host-podman {runtime}'; N='nsenter --net=/run/netns/{ns}'; \
             RUN=\"$N $P run --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network=host\"; R={R}; W={work}; ",
            root = cache.join("host-test-standins-podman").display(),
            work = work.display(),
        );
        let bed = Bed {
            ns,
            cache,
            work,
            prelude,
        };
        bed.ok(&format!(
            "ip netns add {0} && ip netns exec {0} ip link set lo up",
            bed.ns
        ));
        bed
    }

    fn sh(&self, cmd: &str) -> Output {
        Command::new("sh")
            .arg("-c")
            .arg(format!("{}{cmd}", self.prelude))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `cmd`, asserts exit 0, returns stdout.
    #[track_caller]
    fn ok(&self, cmd: &str) -> String {
        let o = self.sh(cmd);
        assert!(
            o.status.success(),
            "{cmd}\nexit {:?}\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Polls `cmd` until its stdout contains `want`.
    #[track_caller]
    fn wait(&self, cmd: &str, want: &str, secs: u64) -> String {
        let t = Instant::now();
        loop {
            let o = self.sh(cmd);
            let out = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if out.contains(want) {
                return out;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                panic!("{cmd}: no {want:?} after {secs}s; last output:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn env_file(&self, name: &str, body: &str) {
        std::fs::write(self.work.join("envs").join(name), body).unwrap();
    }

    fn logs(&self, c: &str) -> String {
        let o = self.sh(&format!("$N $P logs {c}"));
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ =
            self.sh("$N $P rm -fa -t 1 >/dev/null 2>&1; $N $P volume rm -fa >/dev/null 2>&1; true");
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn build_standins(cache: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = Instant::now();
    let o = Command::new(repo.join("tests/e2e/standins/build-standins.sh"))
        .env("OMLBOOT_E2E_CACHE", cache)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "build-standins.sh failed");
    let out = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    eprintln!("stand-ins: {out} ({:.0?})", t.elapsed());
    PathBuf::from(out)
}

/// A venv with MinIO's Python SDK at the pinned versions; reused while the pin file is unchanged.
fn sdk_python(cache: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let req = std::fs::read_to_string(repo.join("tests/e2e/standins/minio-sdk-requirements.txt"))
        .unwrap();
    let venv = cache.join("minio-sdk-venv");
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(req.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        assert!(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success());
        let st = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "-r"])
            .arg(repo.join("tests/e2e/standins/minio-sdk-requirements.txt"))
            .status()
            .unwrap();
        assert!(st.success(), "pip install of the MinIO SDK failed");
        std::fs::write(&stamp, req).unwrap();
    }
    venv.join("bin/python")
}

#[test]
#[ignore = "root + podman + a network namespace; 1-1.5 min warm, ~5 min cold: cargo test --test standins_host -- --ignored"]
fn standins_fail_like_the_real_images() {
    let t0 = Instant::now();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bed = Bed::new();
    let out = build_standins(&bed.cache);
    let py = sdk_python(&bed.cache);
    let sdk = format!(
        "$N {} {}",
        py.display(),
        repo.join("tests/e2e/standins/minio_sdk_check.py").display()
    );

    // Load the images from the offline bundle (the :e2e archives and the extra tags' docker-archive).
    let t = Instant::now();
    bed.ok(&format!(
        "mkdir -p $W/bundle && tar -xf {} -C $W/bundle",
        out.join("bundle.tar").display()
    ));
    for a in [
        "postgres",
        "redis",
        "nginx",
        "omlapp",
        "minio",
        "asterisk",
        "astami",
        "kamailio",
        "rtpengine",
        "fastagi",
        "websockets",
    ] {
        bed.ok(&format!("$P load -q -i $W/bundle/archives/{a}.oci.tar"));
    }
    bed.ok("$P load -q -i $W/bundle/archives/extra-tags.docker.tar");
    bed.ok("$N $P rm -fa -t 1; $N $P volume rm -fa");
    eprintln!("images loaded ({:.0?})", t.elapsed());

    // Servers: PostgreSQL, Redis, MinIO (data on a host directory, to restart it later).
    bed.env_file(
        "postgres.env",
        "POSTGRES_USER=omnileads\nPOSTGRES_PASSWORD=pg-secret\nPOSTGRES_DB=omnileads\nTZ=UTC\n",
    );
    bed.env_file("redis.env", "BIND_IP=127.0.0.1\nREDISGEARS_VERSION=1.0.9\n");
    bed.env_file(
        "minio.env",
        "MINIO_ROOT_USER=minio-root\nMINIO_ROOT_PASSWORD=minio-root-secret\n",
    );
    bed.ok("mkdir -p $W/minio && $RUN -d --name pg --env-file $W/envs/postgres.env $R/library/postgres:e2e postgres -c listen_addresses=127.0.0.1");
    bed.ok("$RUN -d --name redis --env-file $W/envs/redis.env $R/omnileads/redis:e2e");
    bed.ok("$RUN -d --name minio --env-file $W/envs/minio.env -v $W/minio:/data $R/minio/minio:e2e server /data --console-address=127.0.0.1:9001");
    // omlboot's probes.
    bed.wait(
        "$N $P exec pg pg_isready -h 127.0.0.1 -p 5432 -U omnileads",
        "accepting connections",
        90,
    );
    bed.wait("$N $P exec redis redis-cli -p 6379 ping", "PONG", 30);
    bed.wait(
        "$N curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9000/minio/health/live",
        "200",
        30,
    );

    // MinIO as the SDK sees it: unknown user refused, add-user + policy, then the user writes and reads.
    let s = bed.ok(&format!("{sdk} bootstrap 127.0.0.1:9000 minio-root minio-root-secret omnileads omlapp-key omlapp-secret-1"));
    eprintln!("{s}");
    assert!(
        s.contains("ok put by an unknown user: refused (InvalidAccessKeyId)")
            && s.contains("ALL OK"),
        "{s}"
    );

    // omlapp: uwsgi refuses before the migrations.
    bed.env_file(
        "django.env",
        "UWSGI_CUSTOM=False\nTZ=UTC\nAMI_USER=omnileadsami\nAMI_PASSWORD=ami-secret\nDJANGO_HOSTNAME=localhost\nUWSGI_PORT=8099\n\
         ASTERISK_LOCATION=/opt/omnileads/asterisk\nKAMAILIO_HOSTNAME=localhost\nPYTHONPATH=/opt/omnileads/ominicontacto\n\
         INSTALL_PREFIX=/opt/omnileads/\nDJANGO_SETTINGS_MODULE=ominicontacto.settings.production\nOMNILEADS_HOSTNAME=127.0.0.1\n\
         ASTERISK_HOSTNAME=127.0.0.1\nPGHOST=127.0.0.1\nPGDATABASE=omnileads\nPGPORT=5432\nPGUSER=omnileads\nPGPASSWORD=pg-secret\n\
         REDIS_HOSTNAME=127.0.0.1\nWEBSOCKET_HOST=127.0.0.1\nWEBSOCKET_PORT=8000\nAWS_DEFAULT_REGION=us-east-1\nS3_BUCKET_NAME=omnileads\n\
         AWS_ACCESS_KEY_ID=omlapp-key\nAWS_SECRET_ACCESS_KEY=omlapp-secret-1\nCALLREC_DEVICE=s3-minio\nS3_ENDPOINT=https://127.0.0.1\n\
         S3_ENDPOINT_MINIO=http://127.0.0.1:9000\n",
    );
    let o = bed.sh("$RUN --rm --env-file $W/envs/django.env -e E2E_STANDIN_PEER_TIMEOUT=6 $R/omnileads/omlapp:e2e /opt/omnileads/bin/init_uwsgi.sh");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "uwsgi before migrations: {err}");
    assert!(
        err.contains("FATAL") && err.contains("django_migrations"),
        "{err}"
    );

    // A wrong PostgreSQL password is refused at once, loudly.
    let o = bed.sh("$RUN --rm --env-file $W/envs/django.env -e PGPASSWORD=wrong -e DAPHNE_PORT=8098 $R/omnileads/omlapp:e2e /opt/omnileads/bin/init_daphne.sh");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(1) && err.contains("password authentication failed"),
        "{err}"
    );

    // nginx: 502 while nothing answers behind it.
    bed.env_file(
        "nginx.env",
        "DJANGO_HOSTNAME=localhost\nDAPHNE_HOSTNAME=localhost\nKAMAILIO_HOSTNAME=127.0.0.1\nWEBSOCKETS_HOSTNAME=127.0.0.1\nENV=prodenv\n\
         WSGI_PORT=8099\nASGI_PORT=8098\nKAMAILIO_PORT=14443\nWEBSOCKETS_PORT=8000\nCALLREC_DEVICE=s3-minio\nS3_ENDPOINT=http://127.0.0.1:9000\n\
         WEBUI_MODE=static\n",
    );
    bed.ok("$RUN -d --name nginx --env-file $W/envs/nginx.env -v django_static:/opt/omnileads/static $R/omnileads/nginx:e2e");
    bed.wait(
        "$N curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1/",
        "502",
        30,
    );

    // The one-shots, the way omlboot runs them.
    let oneshot = |cmd: &str| {
        bed.ok(&format!("$RUN --rm --env-file $W/envs/django.env -v django_static:/opt/omnileads/static $R/omnileads/omlapp:e2e {cmd}"))
    };
    oneshot("/opt/omnileads/bin/django_migrations.sh");
    oneshot("python /opt/omnileads/ominicontacto/manage.py cambiar_admin_password");
    oneshot("/opt/omnileads/bin/django_commands.sh");
    bed.ok("$RUN --rm --env-file $W/envs/django.env $R/omnileads/omlapp:e2e-2 /opt/omnileads/bin/django_migrations.sh");
    let psql = |sql: &str| {
        bed.ok(&format!(
            "$N $P exec pg psql -U omnileads -d omnileads -tAc \"{sql}\""
        ))
        .trim()
        .to_string()
    };
    assert_eq!(psql("select count(*) from django_migrations where image_ref = 'localhost:5000/omnileads/omlapp:e2e'"), "1");
    assert_eq!(psql("select count(*) from django_migrations where image_ref = 'localhost:5000/omnileads/omlapp:e2e-2'"), "1");
    assert_eq!(psql("select count(*) from e2e_admin_resets"), "1");
    assert_eq!(
        psql("select username from auth_user where is_superuser"),
        "admin"
    );

    // uwsgi now: ready (schema + bucket round trip), and nginx answers the login redirect.
    bed.ok("$RUN -d --name uwsgi --env-file $W/envs/django.env -v django_static:/opt/omnileads/static $R/omnileads/omlapp:e2e /opt/omnileads/bin/init_uwsgi.sh");
    bed.wait("$N $P logs uwsgi", "ready mode=uwsgi", 60);
    assert!(
        bed.logs("uwsgi")
            .contains("bucket ok: wrote and read back s3://omnileads/"),
        "{}",
        bed.logs("uwsgi")
    );
    let head = bed.wait(
        "$N curl -sk -D - -o /dev/null https://127.0.0.1/",
        "302",
        30,
    );
    assert!(head.contains("Location: /accounts/login/"), "{head}");
    assert!(bed
        .ok("$N curl -sfk https://127.0.0.1/accounts/login/")
        .contains("<form"));
    assert!(bed
        .ok("$N curl -sfk https://127.0.0.1/static/e2e/collected.txt")
        .contains("omlapp:e2e"));
    bed.ok("$N $P stop -t 2 uwsgi");
    bed.wait(
        "$N curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1/",
        "502",
        30,
    );

    // asterisk (PostgreSQL, AMI), ami (Redis + AMI login), rtpengine (ng), kamailio (Redis + ng ping).
    bed.env_file(
        "asterisk.env",
        "ARQ=aio\nENV=lan\nTZ=UTC\nFASTAGI=127.0.0.1\nASTERISK_PUBLIC_IP=127.0.0.1\nOMNILEADS_HOSTNAME=127.0.0.1\nASTERISK_HOSTNAME=127.0.0.1\n\
         PGHOST=127.0.0.1\nPGDATABASE=omnileads\nPGPORT=5432\nPGUSER=omnileads\nPGPASSWORD=pg-secret\nAMI_USER=omnileadsami\nAMI_PASSWORD=ami-secret\n",
    );
    bed.env_file("ami.env", "AMI_USER=omnileadsami\nAMI_PASSWORD=ami-secret\nREDIS_HOSTNAME=127.0.0.1\nASTERISK_HOSTNAME=127.0.0.1\n");
    bed.env_file("rtpengine.env", "RTPENGINE_HOSTNAME=127.0.0.1\nENV=lan\n");
    bed.env_file("kamailio.env", "KAMAILIO_HOSTNAME=localhost\nREDIS_HOSTNAME=127.0.0.1\nRTPENGINE_HOSTNAME=127.0.0.1\nASTERISK_HOSTNAME=127.0.0.1\n");
    let o = bed.sh("$RUN --rm --env-file $W/envs/kamailio.env -e E2E_STANDIN_PEER_TIMEOUT=4 $R/omnileads/kamailio:e2e");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(1)
            && err.contains("FATAL: RTPengine ng control at udp 127.0.0.1:22222"),
        "kamailio without rtpengine: {err}"
    );
    bed.ok("$RUN -d --name asterisk --env-file $W/envs/asterisk.env $R/omnileads/asterisk:e2e");
    bed.ok("$RUN -d --name rtpengine --env-file $W/envs/rtpengine.env $R/omnileads/rtpengine:e2e");
    bed.wait("$N $P logs asterisk", "ready mode=asterisk", 60);
    bed.wait("$N $P logs rtpengine", "ready mode=rtpengine", 30);
    let o = bed
        .sh("$RUN --rm --env-file $W/envs/ami.env -e AMI_PASSWORD=wrong $R/omnileads/astami:e2e");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(1)
            && err.contains("FATAL: AMI at 127.0.0.1:5038 as omnileadsami: login refused"),
        "ami, wrong password: {err}"
    );
    bed.ok("$RUN -d --name ami --env-file $W/envs/ami.env $R/omnileads/astami:e2e");
    bed.ok("$RUN -d --name kamailio --env-file $W/envs/kamailio.env $R/omnileads/kamailio:e2e");
    assert!(bed
        .wait("$N $P logs ami", "ready mode=astami", 30)
        .contains("AMI login ok"));
    assert!(bed
        .wait("$N $P logs kamailio", "ready mode=kamailio", 30)
        .contains("pong"));

    // fastagi (PostgreSQL + Redis) and websockets (Redis from a redis:// URL) come up; websockets without Redis fails.
    bed.env_file(
        "fastagi.env",
        "FASTAGI_HOSTNAME=127.0.0.1\nAMI_USER=omnileadsami\nAMI_PASSWORD=ami-secret\nASTERISK_HOSTNAME=127.0.0.1\nOMNILEADS_HOSTNAME=127.0.0.1\n\
         PGHOST=127.0.0.1\nPGDATABASE=omnileads\nPGPORT=5432\nPGUSER=omnileads\nPGPASSWORD=pg-secret\nREDIS_HOSTNAME=127.0.0.1\nREDIS_PORT=6379\n",
    );
    bed.env_file(
        "websockets.env",
        "BIND_ADDRESS=127.0.0.1:8000\nREDIS_HOST=redis://127.0.0.1\nEVENT_LOOP=uvloop\n",
    );
    bed.ok("$RUN -d --name fastagi --env-file $W/envs/fastagi.env $R/omnileads/fastagi:e2e python /app/fastagi.py");
    bed.ok(
        "$RUN -d --name websockets --env-file $W/envs/websockets.env $R/omnileads/websockets:e2e",
    );
    assert!(bed
        .wait("$N $P logs fastagi", "ready mode=fastagi", 60)
        .contains("Redis at 127.0.0.1:6379: PONG"));
    assert!(bed
        .wait("$N $P logs websockets", "ready mode=websockets", 30)
        .contains("Redis at 127.0.0.1:6379: PONG"));
    let o = bed.sh("$RUN --rm --env-file $W/envs/websockets.env -e REDIS_HOST=redis://127.0.0.1:6390 -e BIND_ADDRESS=127.0.0.1:8001 -e E2E_STANDIN_PEER_TIMEOUT=3 $R/omnileads/websockets:e2e");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(1) && err.contains("FATAL: Redis at 127.0.0.1:6390"),
        "websockets without Redis: {err}"
    );

    // Call counting.
    assert_eq!(
        bed.ok("$N $P exec asterisk asterisk -rx 'core show channels count'"),
        "0 active channels\n0 active calls\n0 calls processed\n"
    );
    bed.ok("$N $P exec asterisk sh -c 'echo 3 > /tmp/e2e-calls'");
    assert!(bed
        .ok("$N $P exec asterisk asterisk -rx 'core show channels count'")
        .starts_with("3 active channels\n3 active calls\n"));
    bed.ok("$N $P exec kamailio standin --set-calls 2");
    assert!(bed
        .ok("$N $P exec kamailio kamcmd dlg.stats_active")
        .contains("ongoing: 2\n\tall: 2\n"));
    bed.ok("$N $P exec rtpengine sh -c 'echo 5 > /tmp/e2e-calls'");
    assert!(bed
        .ok("$N $P exec rtpengine rtpengine-ctl list numsessions")
        .starts_with("Current sessions own: 5\n"));

    // Tags: another image id for :e2e-2; :e2e-broken stays up with its health failing.
    let ids = bed.ok("$P image inspect --format '{{.Id}}' $R/omnileads/omlapp:e2e $R/omnileads/omlapp:e2e-2 $R/omnileads/omlapp:e2e-broken");
    let ids: Vec<&str> = ids.lines().collect();
    assert!(
        ids.len() == 3 && ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    bed.ok("$RUN -d --name uwsgi-broken --env-file $W/envs/django.env -e UWSGI_PORT=8199 $R/omnileads/omlapp:e2e-broken /opt/omnileads/bin/init_uwsgi.sh");
    bed.wait(
        "$N curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8199/",
        "500",
        60,
    );
    bed.ok("$RUN -d --name kamailio-broken --env-file $W/envs/kamailio.env $R/omnileads/kamailio:e2e-broken");
    bed.wait(
        "$N $P logs kamailio-broken",
        "broken image: not binding",
        30,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        bed.ok("$N $P ps --format '{{.Names}}'")
            .contains("kamailio-broken"),
        "the broken image must stay up"
    );

    // MinIO keeps users and objects across a restart (data on its volume).
    bed.ok("$N $P restart -t 2 minio");
    bed.wait(
        "$N curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9000/minio/health/live",
        "200",
        30,
    );
    let s = bed.ok(&format!(
        "{sdk} check 127.0.0.1:9000 omlapp-key omlapp-secret-1 omnileads"
    ));
    assert!(s.contains("ok object kept") && s.contains("ALL OK"), "{s}");

    eprintln!("standins_host: {:.0?} in all", t0.elapsed());
}
