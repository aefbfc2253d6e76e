//! A session's status and the one function that says which changes are legal, so the CLI, the
//! API, the hibernation timers and reconcile all agree.

use std::fmt;
use std::str::FromStr;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The backend is making the sandbox (clone, agent start).
    Creating,
    /// The sandbox is up and the agent can be attached.
    Running,
    /// A hibernate request is in flight.
    Hibernating,
    /// The sandbox sleeps; it costs nothing and wakes on request.
    Hibernated,
    /// A wake request is in flight.
    Waking,
    /// The last operation failed; `failure_reason` says why. Wake or delete may follow.
    Failed,
    /// A delete request is in flight.
    Deleting,
    /// The sandbox is gone; the record stays for history. Terminal.
    Deleted,
}

/// Every status, in the order of a session's life.
pub const ALL: [Status; 8] = [
    Status::Creating,
    Status::Running,
    Status::Hibernating,
    Status::Hibernated,
    Status::Waking,
    Status::Failed,
    Status::Deleting,
    Status::Deleted,
];

impl Status {
    /// The lowercase name used in the store, the API and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Hibernating => "hibernating",
            Self::Hibernated => "hibernated",
            Self::Waking => "waking",
            Self::Failed => "failed",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }
    /// Whether an operation is in flight (a daemon restart must reconcile these).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Hibernating | Self::Waking | Self::Deleting
        )
    }
    /// Whether nothing can follow.
    pub fn is_terminal(self) -> bool {
        self == Self::Deleted
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no status.
#[derive(Debug, thiserror::Error)]
#[error("unknown session status `{0}`")]
pub struct UnknownStatus(String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .find(|st| st.as_str() == s)
            .copied()
            .ok_or_else(|| UnknownStatus(s.chars().take(32).collect()))
    }
}

/// What the backend reported when asked for a sandbox's real state (reconcile, status polls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Observed {
    /// The sandbox runs (a provider may wake a sandbox on access by itself).
    Running,
    /// The sandbox sleeps.
    Hibernated,
    /// The backend no longer knows the sandbox.
    Missing,
}

/// Something that happens to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "event", content = "observed")]
pub enum Event {
    /// The backend finished creating the sandbox.
    Created,
    /// A user or the idle timer asks to hibernate.
    HibernateRequested,
    /// The backend finished hibernating.
    Hibernated,
    /// A user asks to wake (also the retry path from `failed`).
    WakeRequested,
    /// The backend finished waking.
    Woke,
    /// The operation in flight (or the sandbox) failed.
    Failed,
    /// A user asks to delete.
    DeleteRequested,
    /// The backend finished deleting.
    Deleted,
    /// The agent was started again in a failed session's sandbox (`clauderon restart`).
    Restarted,
    /// The backend reported the sandbox's real state.
    Observed(Observed),
}

/// A change the state machine does not allow; the message says what state the session is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action}: the session is {from}{hint}")]
pub struct TransitionError {
    /// The status the session was in.
    pub from: Status,
    /// The rejected event.
    pub event: Event,
    action: &'static str,
    hint: &'static str,
}

fn action(event: Event) -> &'static str {
    match event {
        Event::Created => "finish creating",
        Event::HibernateRequested => "hibernate",
        Event::Hibernated => "finish hibernating",
        Event::WakeRequested => "wake",
        Event::Woke => "finish waking",
        Event::Failed => "mark failed",
        Event::DeleteRequested => "delete",
        Event::Deleted => "finish deleting",
        Event::Restarted => "restart the agent",
        Event::Observed(_) => "record the backend's state",
    }
}

/// The status that `event` moves a session from `from` to, or why it cannot happen.
///
/// Observations from the backend win over what the store believed (the sandbox is the truth),
/// except while a delete is in flight or done.
pub fn transition(from: Status, event: Event) -> Result<Status, TransitionError> {
    use Event as E;
    use Status as S;
    let to = match (from, event) {
        (S::Creating, E::Created) => S::Running,
        (S::Running, E::HibernateRequested) => S::Hibernating,
        (S::Hibernating, E::Hibernated) => S::Hibernated,
        (S::Hibernated | S::Failed, E::WakeRequested) => S::Waking,
        (S::Waking, E::Woke) => S::Running,
        (S::Failed | S::Running, E::Restarted) => S::Running,
        (S::Creating | S::Running | S::Hibernating | S::Waking | S::Deleting, E::Failed) => {
            S::Failed
        }
        (S::Deleting | S::Deleted, E::DeleteRequested) => {
            return Err(err(from, event, " already"));
        }
        (_, E::DeleteRequested) => S::Deleting,
        (S::Deleting, E::Deleted) => S::Deleted,
        (S::Deleting | S::Deleted, E::Observed(Observed::Missing)) => S::Deleted,
        (S::Deleting | S::Deleted, E::Observed(_)) => from,
        (_, E::Observed(Observed::Running)) => S::Running,
        (_, E::Observed(Observed::Hibernated)) => S::Hibernated,
        (_, E::Observed(Observed::Missing)) => S::Failed,
        (S::Hibernated | S::Hibernating, E::HibernateRequested) => {
            return Err(err(from, event, " already"));
        }
        (S::Running | S::Waking, E::WakeRequested) => {
            return Err(err(from, event, " already"));
        }
        (S::Creating, E::HibernateRequested) => {
            return Err(err(from, event, "; wait until it is running"));
        }
        (S::Failed, E::HibernateRequested) => {
            return Err(err(from, event, "; wake it or delete it"));
        }
        _ => return Err(err(from, event, "")),
    };
    Ok(to)
}

fn err(from: Status, event: Event, hint: &'static str) -> TransitionError {
    TransitionError {
        from,
        event,
        action: action(event),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use Status as S;

    #[test]
    fn the_happy_paths() {
        let mut s = S::Creating;
        for (e, want) in [
            (E::Created, S::Running),
            (E::HibernateRequested, S::Hibernating),
            (E::Hibernated, S::Hibernated),
            (E::WakeRequested, S::Waking),
            (E::Woke, S::Running),
            (E::DeleteRequested, S::Deleting),
            (E::Deleted, S::Deleted),
        ] {
            s = transition(s, e).unwrap();
            assert_eq!(s, want);
        }
    }

    #[test]
    fn failures_and_retries() {
        for from in [
            S::Creating,
            S::Running,
            S::Hibernating,
            S::Waking,
            S::Deleting,
        ] {
            assert_eq!(transition(from, E::Failed).unwrap(), S::Failed);
        }
        assert_eq!(transition(S::Failed, E::WakeRequested).unwrap(), S::Waking);
        assert_eq!(
            transition(S::Failed, E::DeleteRequested).unwrap(),
            S::Deleting
        );
        assert!(transition(S::Deleted, E::Failed).is_err());
        assert!(transition(S::Hibernated, E::Failed).is_err());
    }

    #[test]
    fn observations() {
        assert_eq!(
            transition(S::Hibernated, E::Observed(Observed::Running)).unwrap(),
            S::Running
        );
        assert_eq!(
            transition(S::Waking, E::Observed(Observed::Hibernated)).unwrap(),
            S::Hibernated
        );
        assert_eq!(
            transition(S::Running, E::Observed(Observed::Missing)).unwrap(),
            S::Failed
        );
        assert_eq!(
            transition(S::Deleting, E::Observed(Observed::Running)).unwrap(),
            S::Deleting
        );
        assert_eq!(
            transition(S::Deleting, E::Observed(Observed::Missing)).unwrap(),
            S::Deleted
        );
    }

    #[test]
    fn illegal_moves_say_why() {
        let e = transition(S::Hibernated, E::HibernateRequested).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot hibernate: the session is hibernated already"
        );
        let e = transition(S::Running, E::WakeRequested).unwrap_err();
        assert_eq!(e.to_string(), "cannot wake: the session is running already");
        let e = transition(S::Creating, E::HibernateRequested).unwrap_err();
        assert!(e.to_string().contains("wait until it is running"));
        let e = transition(S::Deleted, E::DeleteRequested).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot delete: the session is deleted already"
        );
        assert!(transition(S::Running, E::Created).is_err());
        assert!(transition(S::Deleted, E::WakeRequested).is_err());
        // Nothing leaves `deleted` except an observation that keeps it there.
        for e in [
            E::Created,
            E::HibernateRequested,
            E::Hibernated,
            E::WakeRequested,
            E::Woke,
            E::Failed,
            E::DeleteRequested,
            E::Deleted,
        ] {
            assert!(transition(S::Deleted, e).is_err(), "{e:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            let n = s.as_str();
            assert_eq!(n.parse::<Status>().unwrap(), s);
            assert_eq!(s.to_string(), n);
            assert_eq!(serde_json::to_value(s).unwrap(), n);
        }
        assert!("zombie".parse::<Status>().is_err());
    }
}
