//! The event feed: one SSE stream of every session's events (`GET /api/web/events`, DESIGN
//! §13), and the session list read each time the stream says `ready` (subscribed) or `resync`
//! (this client fell behind), so no event falls between the list and the stream. Nothing is
//! polled; a lost stream is opened again after a pause that grows to 5 s.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::app::Msg;
use crate::api::{SessionSummary, SessionSummaryList};
use crate::cli::api::{ApiClient, ApiError, Frame, encode};

/// Sessions per page when reading the list.
const PAGE: usize = 500;

/// The longest pause before opening a lost stream again.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Every session that is not deleted, oldest first, page by page (`view=summary`).
pub async fn list_all(api: &ApiClient) -> Result<Vec<SessionSummary>, ApiError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    // Each page moves the cursor on; bounded either way.
    for _ in 0..10_000 {
        let cursor = after
            .as_deref()
            .map(|a| format!("&after={}", encode(a)))
            .unwrap_or_default();
        let page: SessionSummaryList = api
            .get(&format!("/api/sessions?view=summary&limit={PAGE}{cursor}"))
            .await?;
        all.extend(page.sessions);
        match page.next {
            Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
            _ => break,
        }
    }
    Ok(all)
}

/// Follows the daemon's events for as long as `tx` is open.
pub async fn run(api: ApiClient, tx: UnboundedSender<Msg>) {
    let mut pause = Duration::from_millis(500);
    loop {
        let why = match follow(&api, &tx, &mut pause).await {
            Ok(()) => "the daemon ended the event stream".to_owned(),
            Err(e) => e.to_string(),
        };
        if tx.send(Msg::FeedLost(why)).is_err() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection: the list at each `ready`/`resync`, then the events, until the stream ends.
async fn follow(
    api: &ApiClient,
    tx: &UnboundedSender<Msg>,
    pause: &mut Duration,
) -> Result<(), ApiError> {
    let mut stream = api.follow_all_events().await?;
    while let Some(frame) = stream.next_frame().await? {
        let msg = match frame {
            Frame::Marker(_) => {
                let list = list_all(api).await?;
                *pause = Duration::from_millis(500);
                Msg::Listed(list)
            }
            Frame::Event(ev) => Msg::Event(ev),
        };
        if tx.send(msg).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
