//! Bootstrap tasks and health probes in the engine: whether a task must run (pure, from its record),
//! running it with its attempts, and waiting for a probe to pass within its deadline.
use super::runtime::{Runtime, TaskRun};
use super::state::{now_unix, ProbeRecord, TaskRecord};
use crate::catalog::tasks::RunWhen;
use crate::plan::{PlannedTask, Probe};
use crate::retry::Retry;
use std::time::Duration;
// tokio's clock: tests on fakes run with time paused, so a failing probe's deadline passes at once.
use tokio::time::Instant;

/// Why a task runs this time, or `None` when it must not.
pub fn decide_task(
    task: &PlannedTask,
    record: Option<&TaskRecord>,
    image_id: Option<&str>,
) -> Option<&'static str> {
    let Some(done) = record.filter(|r| r.successes > 0) else {
        return Some("it never succeeded on this host");
    };
    match task.run {
        RunWhen::Install => None,
        RunWhen::Always => Some("it runs every time"),
        RunWhen::ImageChange => {
            (done.succeeded_image_id.as_deref() != image_id).then_some("its image changed")
        }
        RunWhen::InputsChange => (done.succeeded_fingerprint.as_deref()
            != Some(task.fingerprint.as_str()))
        .then_some("its inputs changed"),
    }
}

/// Run `task` up to its number of attempts; the record of the last attempt, built on `previous`.
pub async fn run_task<R: Runtime>(
    runtime: &R,
    task: &PlannedTask,
    previous: Option<&TaskRecord>,
    image_id: Option<&str>,
) -> (TaskRecord, TaskRun) {
    let start = Instant::now();
    // The catalog counts attempts, the first included, and waits the same between them.
    let retry = Retry::fixed(
        task.attempts.saturating_sub(1),
        Duration::from_secs(task.retry_delay_s),
    );
    let outcome = retry
        .run(
            |_| async {
                let run = runtime.run_task(task).await;
                if run.ok {
                    Ok(run)
                } else {
                    Err(run)
                }
            },
            |_, next| {
                tracing::info!(
                    task = task.name,
                    attempt = next.failed,
                    "task failed, retrying in {}s",
                    task.retry_delay_s
                );
                true
            },
        )
        .await;
    let run = outcome.result.unwrap_or_else(|failed| failed);
    let mut record = previous.cloned().unwrap_or_default();
    record.at_unix = now_unix();
    record.duration_ms = start.elapsed().as_millis() as u64;
    record.exit_status = run.exit_status;
    record.output_tail = crate::exec::tail(&run.output, 8);
    if run.ok {
        record.outcome = "succeeded".into();
        record.succeeded_fingerprint = Some(task.fingerprint.clone());
        record.succeeded_image_id = image_id.map(str::to_string);
        record.succeeded_unix = Some(record.at_unix);
        record.successes += 1;
    } else {
        record.outcome = "failed".into();
    }
    (record, run)
}

/// Probe until it passes or its deadline (counted from now, the moment the unit was active) passes.
pub async fn probe_until<R: Runtime>(runtime: &R, probe: &Probe, pause: Duration) -> ProbeRecord {
    let start = Instant::now();
    let deadline = probe.deadline();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = runtime.probe_once(probe).await;
        let passed = result.is_ok();
        if passed || start.elapsed() + pause > deadline {
            let detail = match result {
                Ok(d) => d,
                Err(d) => format!("{d} (gave up after {}s)", deadline.as_secs()),
            };
            return ProbeRecord {
                probe: probe.describe(),
                passed,
                detail,
                at_unix: now_unix(),
                took_ms: start.elapsed().as_millis() as u64,
                attempts,
            };
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TaskAction;

    fn task(run: RunWhen) -> PlannedTask {
        PlannedTask {
            name: "t".into(),
            description: "d".into(),
            run,
            after_restore: false,
            after: vec![],
            before: vec![],
            timeout_s: 1,
            attempts: 1,
            retry_delay_s: 0,
            action: TaskAction::Container {
                image: "i".into(),
                command: vec!["x".into()],
                env_file: None,
                volumes: vec![],
            },
            fingerprint: "f1".into(),
            notice: None,
        }
    }

    fn done(fp: &str, image: &str) -> TaskRecord {
        TaskRecord {
            outcome: "succeeded".into(),
            at_unix: 1,
            duration_ms: 1,
            exit_status: Some(0),
            output_tail: String::new(),
            succeeded_fingerprint: Some(fp.into()),
            succeeded_image_id: Some(image.into()),
            succeeded_unix: Some(1),
            successes: 1,
        }
    }

    #[test]
    fn runs_when_it_never_succeeded() {
        for run in [
            RunWhen::Install,
            RunWhen::ImageChange,
            RunWhen::InputsChange,
            RunWhen::Always,
        ] {
            assert!(decide_task(&task(run), None, Some("a")).is_some());
            let mut failed = done("f1", "a");
            failed.successes = 0;
            failed.outcome = "failed".into();
            assert!(decide_task(&task(run), Some(&failed), Some("a")).is_some());
        }
    }

    #[test]
    fn install_never_twice_image_change_on_a_new_image_inputs_on_new_inputs() {
        let r = done("f1", "a");
        assert_eq!(
            decide_task(&task(RunWhen::Install), Some(&r), Some("b")),
            None
        );
        assert_eq!(
            decide_task(&task(RunWhen::ImageChange), Some(&r), Some("a")),
            None
        );
        assert!(decide_task(&task(RunWhen::ImageChange), Some(&r), Some("b")).is_some());
        assert_eq!(
            decide_task(&task(RunWhen::InputsChange), Some(&r), Some("b")),
            None
        );
        let mut t = task(RunWhen::InputsChange);
        t.fingerprint = "f2".into();
        assert!(decide_task(&t, Some(&r), Some("a")).is_some());
        assert!(decide_task(&task(RunWhen::Always), Some(&r), Some("a")).is_some());
    }
}
