//! What an agent does with one VolumeBackup or VolumeRestore, decided from its status alone,
//! with no I/O, so every case is a unit test.
//!
//! The rules that keep work from being lost or stuck:
//! - A resource is claimed by writing `InProgress` with the node and this agent's instance id,
//!   conditional on the resource version read, so two agents never both claim it.
//! - `InProgress` on this node under another instance (an earlier run of this agent, killed or
//!   restarted) is picked up again, as a new attempt; after `max_attempts` it is failed.
//! - `InProgress` on another node whose agent stopped renewing its Lease (the node is lost):
//!   taken over as a new attempt when this node now holds the volume, failed as "node lost"
//!   otherwise, so no work waits forever on a node that never comes back.
//! - Cancellation is honoured whatever the phase, short of a final one.

use crate::crd::Phase;

/// The status fields the decision needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// The phase.
    pub phase: Phase,
    /// The node that claimed it.
    pub node: Option<String>,
    /// The agent instance that claimed it.
    pub agent: Option<String>,
    /// Attempts started so far.
    pub attempts: u32,
    /// True when the claiming node is another one, whose agent's Lease has expired.
    pub claimant_lost: bool,
}

/// Who is deciding.
#[derive(Debug, Clone)]
pub struct Me<'a> {
    /// This node's name.
    pub node: &'a str,
    /// This agent process's instance id.
    pub instance: &'a str,
    /// The most attempts a resource gets.
    pub max_attempts: u32,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: another node's work, final, or not for this node.
    Leave,
    /// Claim it and start attempt `attempt`.
    Start {
        /// The attempt number to record.
        attempt: u32,
    },
    /// Signal the job running here to stop.
    Stop,
    /// Record `Canceled`: it was canceled before any agent ran it (or while none did).
    MarkCanceled,
    /// Record `Failed`: it was interrupted `attempts` times.
    GiveUp,
    /// Record `Failed`: the node that claimed it is lost, and this one cannot reach its volume.
    NodeLost,
}

/// Decides for one resource. `for_this_node` says whether this node holds its volume (the pod
/// that mounts the PVC, or the named node of a path target); `running_here` whether a job of
/// this agent is working on it now.
pub fn decide(
    claim: &Claim,
    cancel: bool,
    for_this_node: bool,
    running_here: bool,
    me: &Me<'_>,
) -> Action {
    if running_here {
        return if cancel { Action::Stop } else { Action::Leave };
    }
    if claim.phase.is_final() {
        return Action::Leave;
    }
    let claimed_here = claim.node.as_deref() == Some(me.node);
    match claim.phase {
        Phase::InProgress if !claimed_here && claim.claimant_lost => {
            lost(claim, cancel, for_this_node, me)
        }
        Phase::InProgress if !claimed_here => Action::Leave,
        Phase::InProgress if cancel => Action::MarkCanceled,
        // Ours, but no job runs it: this agent was restarted (or lost a status update).
        Phase::InProgress if claim.attempts >= me.max_attempts => Action::GiveUp,
        Phase::InProgress => Action::Start {
            attempt: claim.attempts + 1,
        },
        _ if cancel => Action::MarkCanceled,
        _ if for_this_node => Action::Start {
            attempt: claim.attempts + 1,
        },
        _ => Action::Leave,
    }
}

/// Work claimed by a lost node.
fn lost(claim: &Claim, cancel: bool, for_this_node: bool, me: &Me<'_>) -> Action {
    if cancel {
        Action::MarkCanceled
    } else if !for_this_node {
        Action::NodeLost
    } else if claim.attempts >= me.max_attempts {
        Action::GiveUp
    } else {
        Action::Start {
            attempt: claim.attempts + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Me<'static> = Me {
        node: "n1",
        instance: "agent-b",
        max_attempts: 3,
    };

    fn claim(phase: Phase, node: Option<&str>, attempts: u32) -> Claim {
        Claim {
            phase,
            node: node.map(String::from),
            agent: node.map(|_| "agent-a".to_string()),
            attempts,
            claimant_lost: false,
        }
    }

    #[test]
    fn new_work_is_started_only_where_its_volume_is() {
        let new = claim(Phase::New, None, 0);
        assert_eq!(
            decide(&new, false, true, false, &ME),
            Action::Start { attempt: 1 }
        );
        assert_eq!(decide(&new, false, false, false, &ME), Action::Leave);
        assert_eq!(decide(&new, true, false, false, &ME), Action::MarkCanceled);
    }

    #[test]
    fn work_left_in_progress_by_a_dead_agent_is_picked_up_then_given_up() {
        let left = claim(Phase::InProgress, Some("n1"), 1);
        assert_eq!(
            decide(&left, false, true, false, &ME),
            Action::Start { attempt: 2 }
        );
        // Even when the pod is gone: the attempt then fails with a reason, not stuck.
        assert_eq!(
            decide(&left, false, false, false, &ME),
            Action::Start { attempt: 2 }
        );
        let tired = claim(Phase::InProgress, Some("n1"), 3);
        assert_eq!(decide(&tired, false, true, false, &ME), Action::GiveUp);
        assert_eq!(decide(&tired, true, true, false, &ME), Action::MarkCanceled);
    }

    #[test]
    fn another_nodes_work_and_final_work_are_left_alone() {
        let theirs = claim(Phase::InProgress, Some("n2"), 1);
        assert_eq!(decide(&theirs, false, true, false, &ME), Action::Leave);
        assert_eq!(decide(&theirs, true, true, false, &ME), Action::Leave);
        for phase in [
            Phase::Completed,
            Phase::PartiallyFailed,
            Phase::Failed,
            Phase::Canceled,
        ] {
            assert_eq!(
                decide(&claim(phase, Some("n1"), 1), true, true, false, &ME),
                Action::Leave
            );
        }
    }

    #[test]
    fn running_work_is_stopped_on_cancel_and_otherwise_left_to_run() {
        let mine = claim(Phase::InProgress, Some("n1"), 1);
        assert_eq!(decide(&mine, false, true, true, &ME), Action::Leave);
        assert_eq!(decide(&mine, true, true, true, &ME), Action::Stop);
    }

    #[test]
    fn a_lost_nodes_work_is_taken_over_where_its_volume_now_is_or_failed() {
        let mut theirs = claim(Phase::InProgress, Some("n2"), 1);
        theirs.claimant_lost = true;
        assert_eq!(
            decide(&theirs, false, true, false, &ME),
            Action::Start { attempt: 2 }
        );
        assert_eq!(decide(&theirs, false, false, false, &ME), Action::NodeLost);
        assert_eq!(
            decide(&theirs, true, false, false, &ME),
            Action::MarkCanceled
        );
        theirs.attempts = 3;
        assert_eq!(decide(&theirs, false, true, false, &ME), Action::GiveUp);
    }
}
