//! [`AbortOnDrop`]: a spawned task that is aborted when its handle is dropped. Both sides await
//! plugin work through one, so dropping a call cancels the work on the other side too (tokio
//! detaches a task whose plain `JoinHandle` is dropped).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A task's handle that aborts the task when dropped; awaiting it awaits the task.
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_guard_aborts_the_task_and_awaiting_it_yields_the_result() {
        assert_eq!(AbortOnDrop(tokio::spawn(async { 5 })).await.unwrap(), 5);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let guard = AbortOnDrop(tokio::spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        }));
        drop(guard);
        // The sender is dropped with the aborted task.
        assert!(rx.await.is_err());
    }
}
