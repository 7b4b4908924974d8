//! Command-line interface (clap). Kept apart from main so tests and docs can read it.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "omlboot", version, about = "Turn a fresh Linux VM into a working OMniLeads host", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file (YAML, omldeploytool inventory names) [default: /etc/omlboot/config.yaml, if present]
    #[arg(long, short = 'c', global = true, env = "OMLBOOT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override one config key; repeatable. Wins over the file and OMLBOOT_<KEY> env variables.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub sets: Vec<String>,
    /// Role of this host: aio, data, voice or app. Wins over everything else.
    #[arg(long, global = true)]
    pub role: Option<String>,
    /// Root of the host file system read for facts and state (tests point it at a fixture tree).
    #[arg(long, default_value = "/", global = true, env = "OMLBOOT_ROOT")]
    pub root: PathBuf,
    /// Use the catalog and templates from this directory instead of the built-in ones.
    #[arg(long, value_name = "DIR", global = true, env = "OMLBOOT_UNITS")]
    pub units: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug). OMLBOOT_LOG=<filter> also works.
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl Global {
    /// What every library command reads: these flags and the environment.
    pub fn inputs(&self) -> omlboot::cmd::Inputs {
        omlboot::cmd::Inputs {
            config: self.config.clone(),
            sets: self.sets.clone(),
            role: self.role.clone(),
            root: self.root.clone(),
            units: self.units.clone(),
            env: std::env::vars().collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration and print every resolved key (secrets redacted), with where it came from.
    Validate {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Detect OS, NICs, private and public IP, infra_env and resources.
    Detect {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print the ordered steps apply would take (secrets redacted).
    Plan {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Write every file apply would write, rooted under DIR, with the modes they will have.
    Render {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Make the host match the plan: packages, files, TLS, images, units. Safe to re-run: unchanged
    /// components are not touched.
    Apply {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Restart asterisk, kamailio and rtpengine at once, even while they carry calls.
        #[arg(long)]
        force: bool,
    },
    /// Converge to new image references with a health gate: pre-pull, keep the previous image,
    /// restart in dependency order, probe + stability window, roll a failing component back alone;
    /// voice restarts wait for their calls to end (drain_timeout_s) or the maintenance window.
    /// Exit 0 all upgraded, 3 something rolled back (healthy on its previous image), 1 otherwise.
    Upgrade {
        /// Restart asterisk, kamailio and rtpengine at once, even while they carry calls.
        #[arg(long)]
        force: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Put components back on their recorded previous images, offline (no registry), gated by their
    /// probes. Without COMPONENT: every component that has a previous image.
    Rollback {
        #[arg(value_name = "COMPONENT")]
        components: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// What cloud-init calls: apply once per instance (cloud-init instance-id, else machine-id).
    /// A reboot does nothing; a cloned image provisions again.
    Run {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Prepare an image for cloning (Packer, golden VM): install the role's packages and images, this
    /// binary and an enabled omlboot-firstboot.service, then clean the image (machine-id, cloud-init
    /// and omlboot state, secrets, TLS key, SSH host keys). Needs --role; no addresses or passwords.
    Bake {
        /// Leave machine-id, cloud-init state and SSH host keys as they are (e.g. to inspect the image).
        #[arg(long)]
        no_clean: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Report provisioning status per component. Exit 0 done/running, 1 failed, 3 degraded.
    Status {
        /// Wait until provisioning has finished (or --timeout passes).
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 1).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Back up the database and the Asterisk files to backup_destination, verified by a restore into a
    /// throwaway postgres. Exit 1 when it fails or does not verify.
    Backup {
        /// Run only if the schedule says so (the timer's service): inside the window, once per window,
        /// a failed run retried no earlier than 20 minutes later.
        #[arg(long)]
        scheduled: bool,
        /// List the backups on the destination instead (newest first).
        #[arg(long, conflicts_with = "scheduled")]
        list: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Restore a backup (its name on the destination, a local .manifest.json, or an omldeploytool
    /// pgsql-backup-<ts>.sql). Everything is checked first: a corrupt or incomplete backup is refused
    /// (exit 2) with the host untouched. The replaced database is kept until you drop it.
    Restore {
        source: String,
        /// Drop the replaced database once the restore succeeded.
        #[arg(long)]
        discard_previous: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}
