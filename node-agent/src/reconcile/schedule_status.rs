//! A BackupSchedule's status: its newest run, how it went, its newest successful run, when it
//! runs next, and whether its cron expression can be read. Computed from the objects its runs
//! created, so every agent computes the same and writes only when it differs from what is
//! there: the first agent to see a change records it, the others find nothing to do.

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::crd::{
    BackupSchedule, BackupScheduleSpec, BackupScheduleStatus, ClusterBackup, Phase,
    ScheduleCondition, VolumeBackup,
};
use crate::schedule::{SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION};

/// One object a run of the schedule created: when the run was due, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMember {
    /// The run's time.
    pub scheduled_at: DateTime<Utc>,
    /// The object's phase.
    pub phase: Phase,
}

fn scheduled_at(meta: &kube::api::ObjectMeta) -> Option<DateTime<Utc>> {
    let annotated = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SCHEDULED_AT_ANNOTATION))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    annotated.or_else(|| {
        meta.creation_timestamp
            .as_ref()
            .map(|t| DateTime::from_timestamp(t.0.as_second(), 0).unwrap_or_default())
    })
}

/// What `schedule`'s runs created: its VolumeBackups, or for a cluster schedule its
/// ClusterBackups.
pub fn members_of(
    schedule: &str,
    backups: &[VolumeBackup],
    cluster_backups: &[ClusterBackup],
) -> Vec<RunMember> {
    let ours = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(SCHEDULE_LABEL).map(String::as_str) == Some(schedule)
    };
    let volumes = backups.iter().filter(|b| ours(b.labels())).filter_map(|b| {
        Some(RunMember {
            scheduled_at: scheduled_at(&b.metadata)?,
            phase: b.status.as_ref().map(|s| s.phase).unwrap_or_default(),
        })
    });
    let clusters = cluster_backups
        .iter()
        .filter(|c| ours(c.labels()))
        .filter_map(|c| {
            Some(RunMember {
                scheduled_at: scheduled_at(&c.metadata)?,
                phase: c.status.as_ref().map(|s| s.phase).unwrap_or_default(),
            })
        });
    volumes.chain(clusters).collect()
}

/// How a run of these members went: in progress until each is final.
fn outcome(phases: &[Phase]) -> Phase {
    if phases.iter().any(|p| !p.is_final()) {
        return Phase::InProgress;
    }
    let completed = phases.iter().filter(|p| **p == Phase::Completed).count();
    match completed {
        n if n == phases.len() => Phase::Completed,
        0 if phases
            .iter()
            .all(|p| matches!(p, Phase::Failed | Phase::Canceled)) =>
        {
            Phase::Failed
        }
        _ => Phase::PartiallyFailed,
    }
}

fn condition(valid: Result<(), String>) -> ScheduleCondition {
    let (status, reason, message) = match valid {
        Ok(()) => ("True", "Parsed", String::new()),
        Err(e) => ("False", "BadSchedule", e),
    };
    ScheduleCondition {
        type_: "ScheduleValid".to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
    }
}

/// The status `spec` and its runs' `members` give at `now`.
pub fn compute(
    spec: &BackupScheduleSpec,
    members: &[RunMember],
    now: DateTime<Utc>,
) -> BackupScheduleStatus {
    let mut runs: Vec<DateTime<Utc>> = members.iter().map(|m| m.scheduled_at).collect();
    runs.sort();
    runs.dedup();
    let phases_of = |t: &DateTime<Utc>| -> Vec<Phase> {
        members
            .iter()
            .filter(|m| m.scheduled_at == *t)
            .map(|m| m.phase)
            .collect()
    };
    let newest = runs.last();
    let last_success = runs
        .iter()
        .rev()
        .find(|t| outcome(&phases_of(t)) == Phase::Completed);
    let next = crate::schedule::next_after(&spec.schedule, now);
    BackupScheduleStatus {
        last_schedule_time: newest.map(|t| t.to_rfc3339()),
        last_successful_time: last_success.map(|t| t.to_rfc3339()),
        next_schedule_time: next
            .as_ref()
            .ok()
            .filter(|_| !spec.paused)
            .map(|t| t.to_rfc3339()),
        last_outcome: newest.map(|t| outcome(&phases_of(t))),
        last_run_backups: newest.map_or(0, |t| phases_of(t).len() as u32),
        conditions: vec![condition(next.map(|_| ()))],
    }
}

/// Writes `status` when it differs from what the schedule holds. Every field is written, absent
/// ones as null, so that a merge patch also clears what no longer holds.
pub async fn record(
    api: &Api<BackupSchedule>,
    schedule: &BackupSchedule,
    status: BackupScheduleStatus,
) {
    if schedule.status.as_ref() == Some(&status) {
        return;
    }
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        for key in [
            "lastScheduleTime",
            "lastSuccessfulTime",
            "nextScheduleTime",
            "lastOutcome",
        ] {
            map.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    let patch = serde_json::json!({ "status": body });
    let name = schedule.name_any();
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(schedule = %name, "cannot write the schedule's status: {e}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn spec(cron: &str) -> BackupScheduleSpec {
        serde_json::from_value(serde_json::json!({"schedule": cron})).unwrap()
    }

    #[test]
    fn the_newest_run_gives_the_outcome_and_the_newest_complete_one_the_success() {
        let (t1, t2) = (at("2026-11-30T01:00:00Z"), at("2026-11-30T02:00:00Z"));
        let members = [
            RunMember {
                scheduled_at: t1,
                phase: Phase::Completed,
            },
            RunMember {
                scheduled_at: t1,
                phase: Phase::Completed,
            },
            RunMember {
                scheduled_at: t2,
                phase: Phase::Completed,
            },
            RunMember {
                scheduled_at: t2,
                phase: Phase::Failed,
            },
        ];
        let now = at("2026-11-30T02:30:00Z");
        let st = compute(&spec("0 * * * *"), &members, now);
        assert_eq!(st.last_schedule_time, Some(t2.to_rfc3339()));
        assert_eq!(st.last_outcome, Some(Phase::PartiallyFailed));
        assert_eq!(st.last_successful_time, Some(t1.to_rfc3339()));
        assert_eq!(
            st.next_schedule_time,
            Some(at("2026-11-30T03:00:00Z").to_rfc3339())
        );
        assert_eq!(st.last_run_backups, 2);
        assert_eq!(st.conditions[0].status, "True");
        let running = [RunMember {
            scheduled_at: t2,
            phase: Phase::InProgress,
        }];
        assert_eq!(
            compute(&spec("0 * * * *"), &running, now).last_outcome,
            Some(Phase::InProgress)
        );
        let failed = [RunMember {
            scheduled_at: t2,
            phase: Phase::Failed,
        }];
        assert_eq!(
            compute(&spec("0 * * * *"), &failed, now).last_outcome,
            Some(Phase::Failed)
        );
    }

    #[test]
    fn a_bad_cron_expression_is_a_condition_and_a_paused_schedule_has_no_next_time() {
        let now = at("2026-11-30T02:30:00Z");
        let bad = compute(&spec("every night"), &[], now);
        assert_eq!(bad.conditions[0].status, "False");
        assert_eq!(bad.conditions[0].reason, "BadSchedule");
        assert!(
            bad.conditions[0].message.contains("every night"),
            "{:?}",
            bad.conditions
        );
        assert_eq!(bad.next_schedule_time, None);
        let mut paused = spec("0 * * * *");
        paused.paused = true;
        assert_eq!(compute(&paused, &[], now).next_schedule_time, None);
        assert_eq!(compute(&paused, &[], now).last_outcome, None);
    }
}
