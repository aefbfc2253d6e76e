//! From the store's records to the API's views ([`crate::api`]).

use crate::api::{ApiEvent, CheckpointView, SessionSummary, SessionView};
use crate::store::{
    AgentRecord, CheckpointRecord, EventRecord, SessionRecord, SessionSummaryRecord,
};

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The view of a stored session and its agent record.
pub fn session_view(rec: SessionRecord, agent: Option<&AgentRecord>) -> SessionView {
    SessionView {
        id: rec.id,
        name: rec.name,
        backend: rec.backend,
        repository: rec.repository,
        branch: rec.branch,
        prompt: rec.prompt,
        options: rec.options,
        status: rec.status,
        status_reason: rec.failure_reason,
        instance_id: rec.instance_id,
        agent_session: agent.and_then(|a| a.agent_session.clone()),
        agent_exit_code: agent.and_then(|a| a.exit_code),
        agent: agent.and_then(|a| a.state),
        agent_conversation: agent.and_then(|a| a.conversation.clone()),
        created_at: rfc3339(rec.created_at),
        updated_at: rfc3339(rec.updated_at),
    }
}

/// The summary of a stored session.
pub fn session_summary(rec: SessionSummaryRecord) -> SessionSummary {
    SessionSummary {
        id: rec.id,
        name: rec.name,
        backend: rec.backend,
        repository: rec.repository,
        branch: rec.branch,
        status: rec.status,
        status_reason: rec.failure_reason,
        agent: rec.agent,
        created_at: rfc3339(rec.created_at),
        updated_at: rfc3339(rec.updated_at),
    }
}

/// The view of a stored checkpoint.
pub fn checkpoint_view(c: CheckpointRecord) -> CheckpointView {
    CheckpointView {
        id: c.id,
        comment: c.comment,
        created_at: rfc3339(c.created_at),
        git_head: c.git_head,
    }
}

/// An event as the API sends it.
pub fn api_event(e: &EventRecord) -> ApiEvent {
    ApiEvent {
        session_id: e.session_id,
        seq: u64::try_from(e.seq).unwrap_or_default(),
        kind: e.kind.clone(),
        data: e.data.clone(),
        at: rfc3339(e.at),
    }
}
