//! The three things apply drives on a host, each behind a trait with its real implementation here
//! and an in-memory one in [`super::fake`]: the engine's decisions (order, restart only what
//! changed, failure propagation) are tested on the fakes in milliseconds, the real ones against real
//! apt/dnf, podman and systemd (tests/packages.rs, tests/images_registry.rs, tests/systemd_dbus.rs).
use super::images::{self, ImageOptions, ImageOutcome};
use super::packages::{self, Family, PackageOptions, PackagesOutcome};
use super::systemd::{Outcome, Systemd, UnitState};
use anyhow::Result;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// OS packages (apt, dnf).
pub trait PackageManager {
    /// Make `names` installed; names already installed are left alone.
    fn ensure(&self, names: &[String]) -> impl Future<Output = Result<PackagesOutcome>>;
}

/// Local container image storage (podman).
pub trait ImageStore {
    /// The image id of every reference, from one listing; `None` when it is not present.
    fn ids(&self, refs: &[String]) -> impl Future<Output = BTreeMap<String, Option<String>>>;
    /// Pull every reference that is not present (bounded parallelism, retries).
    fn pull(&self, refs: &[String]) -> impl Future<Output = Vec<(String, ImageOutcome)>>;
    /// Load an offline bundle (tar of OCI archives).
    fn load_bundle(
        &self,
        bundle: &Path,
    ) -> impl Future<Output = Result<Vec<(String, ImageOutcome)>>>;
    /// Give the image `id` the name `reference` (moved from whatever image held it): keeps a previous
    /// image from being pruned, and puts it back under the reference a unit runs (rollback).
    fn tag(&self, id: &str, reference: &str) -> impl Future<Output = Result<()>>;
}

/// systemd. `Send + Sync` and `Send` futures: unit starts run as concurrent tasks.
pub trait ServiceManager: Send + Sync + 'static {
    fn daemon_reload(&self) -> impl Future<Output = Result<()>> + Send;
    /// Enable units; returns the symlinks that changed (empty when all were enabled).
    fn enable(&self, units: &[String]) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The state of every unit, read concurrently.
    fn states(&self, units: &[String]) -> impl Future<Output = Result<Vec<UnitState>>> + Send;
    fn reset_failed(&self, unit: &str) -> impl Future<Output = Result<()>> + Send;
    /// Start (or restart) `unit`, signal `queued` once systemd holds the job, wait for the outcome.
    fn start(
        &self,
        unit: &str,
        restart: bool,
        deadline: Duration,
        queued: tokio::sync::oneshot::Sender<()>,
    ) -> impl Future<Output = Result<Outcome>> + Send;
}

/// apt or dnf on this host.
pub struct SystemPackages {
    pub family: Option<Family>,
    pub options: PackageOptions,
}

impl PackageManager for SystemPackages {
    async fn ensure(&self, names: &[String]) -> Result<PackagesOutcome> {
        let Some(family) = self.family else {
            anyhow::bail!(
                "unknown OS family: cannot install packages (set skip_packages for a prepared image)"
            );
        };
        packages::ensure(family, names, &self.options).await
    }
}

/// podman's local storage.
pub struct Podman(pub ImageOptions);

impl ImageStore for Podman {
    async fn ids(&self, refs: &[String]) -> BTreeMap<String, Option<String>> {
        images::store::ids(&self.0, refs).await
    }
    async fn pull(&self, refs: &[String]) -> Vec<(String, ImageOutcome)> {
        images::ensure(refs, &self.0).await
    }
    async fn load_bundle(&self, bundle: &Path) -> Result<Vec<(String, ImageOutcome)>> {
        images::load_bundle(bundle, &self.0).await
    }
    async fn tag(&self, id: &str, reference: &str) -> Result<()> {
        let ran = crate::exec::capture(
            self.0.podman().args(["tag", id, reference]),
            Some(Duration::from_secs(60)),
        )
        .await?;
        anyhow::ensure!(
            ran.success,
            "podman tag {id} {reference}: {}",
            crate::exec::tail(&ran.stderr, 2)
        );
        Ok(())
    }
}

impl ServiceManager for Systemd {
    fn daemon_reload(&self) -> impl Future<Output = Result<()>> + Send {
        Systemd::daemon_reload(self)
    }
    fn enable(&self, units: &[String]) -> impl Future<Output = Result<Vec<String>>> + Send {
        Systemd::enable(self, units)
    }
    async fn states(&self, units: &[String]) -> Result<Vec<UnitState>> {
        // One D-Bus round trip per unit, all in flight at once.
        let reads = units.iter().map(|u| self.state(u));
        let mut out = Vec::with_capacity(units.len());
        for r in join_all(reads).await {
            out.push(r?);
        }
        Ok(out)
    }
    fn reset_failed(&self, unit: &str) -> impl Future<Output = Result<()>> + Send {
        Systemd::reset_failed(self, unit)
    }
    fn start(
        &self,
        unit: &str,
        restart: bool,
        deadline: Duration,
        queued: tokio::sync::oneshot::Sender<()>,
    ) -> impl Future<Output = Result<Outcome>> + Send {
        self.start_queued(unit, restart, deadline, queued)
    }
}

/// Poll every future to completion together, keeping their order (no extra crate for this).
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter()
        .map(|o| o.expect("polled to completion"))
        .collect()
}
