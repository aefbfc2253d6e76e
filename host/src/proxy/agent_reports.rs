//! Reports from a session's agent (its state hooks) reach the daemon through the session's
//! own proxy credential: the hook inside the sandbox POSTs its event to
//! `http://agent.clauderon.invalid/v1/agent-report` through `HTTPS_PROXY`. The proxy answers it
//! itself (the name never resolves; `.invalid` is reserved) and passes the report on, tagged
//! with the session the credential authenticated, so one session cannot report for another
//! and an unauthenticated report gets 407 like any other request.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::session::SessionId;

/// The host name agents report to (answered by the proxy, never resolved).
pub const AGENT_REPORT_HOST: &str = "agent.clauderon.invalid";

/// The path agents report to.
pub const AGENT_REPORT_PATH: &str = "/v1/agent-report";

/// The largest report accepted (a hook's event JSON is a few KiB).
const MAX_REPORT: usize = 64 * 1024;

/// One report: the session whose credential sent it and the JSON object it carried.
#[derive(Debug, Clone)]
pub struct AgentReport {
    /// The reporting session (from its proxy credential).
    pub session: SessionId,
    /// The report's JSON object (for Claude Code: the hook's event).
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// The answer to a report request of `session`: 204 when it was passed on to `sink`, else
/// why not (wrong method or path, too large, not a JSON object, nobody listening).
pub async fn receive<B>(
    session: SessionId,
    req: Request<B>,
    sink: Option<tokio::sync::mpsc::Sender<AgentReport>>,
) -> Response<String>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let answer = |status: StatusCode, msg: &str| {
        let mut r = Response::new(format!("{msg}\n"));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != AGENT_REPORT_PATH {
        return answer(
            StatusCode::NOT_FOUND,
            &format!("agent reports go to POST {AGENT_REPORT_PATH}"),
        );
    }
    if req.method() != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "agent reports are POSTed");
    }
    let body = match Limited::new(req.into_body(), MAX_REPORT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("an agent report is at most {MAX_REPORT} bytes"),
            );
        }
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return answer(StatusCode::BAD_REQUEST, "an agent report is a JSON object"),
    };
    let Some(sink) = sink else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "nothing receives agent reports now",
        );
    };
    match sink.try_send(AgentReport { session, body }) {
        Ok(()) => answer(StatusCode::NO_CONTENT, ""),
        Err(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is not taking agent reports now",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn req(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(format!("http://{AGENT_REPORT_HOST}{path}"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    }

    #[tokio::test]
    async fn a_report_is_passed_on_with_the_session_that_sent_it() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let id = SessionId::new();
        let r = receive(
            id,
            req(
                Method::POST,
                AGENT_REPORT_PATH,
                r#"{"hook_event_name":"Stop"}"#,
            ),
            Some(tx.clone()),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let got = rx.recv().await.unwrap();
        assert_eq!(got.session, id);
        assert_eq!(got.body["hook_event_name"], "Stop");

        for (m, path, body, want) in [
            (
                Method::GET,
                AGENT_REPORT_PATH,
                "",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (Method::POST, "/other", "{}", StatusCode::NOT_FOUND),
            (
                Method::POST,
                AGENT_REPORT_PATH,
                "[1]",
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                AGENT_REPORT_PATH,
                "nope",
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let r = receive(id, req(m, path, body), Some(tx.clone())).await;
            assert_eq!(r.status(), want, "{path} {body}");
        }
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_REPORT));
        let r = receive(id, req(Method::POST, AGENT_REPORT_PATH, &big), Some(tx)).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let r = receive(id, req(Method::POST, AGENT_REPORT_PATH, "{}"), None).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(rx.try_recv().is_err(), "only the good report went through");
    }
}
