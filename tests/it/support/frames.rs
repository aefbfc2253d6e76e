//! Driving a plugin's exec/attach frame stream in tests.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use clauderon::plugins::{Frame, FrameKind, FrameReader, PluginClient, ops};

/// How long a stream may take to reach its end.
const WAIT: Duration = Duration::from_secs(20);

/// Runs `req` through `client`'s exec stream, sends `stdin` and the end of input, and reads
/// to the Exit frame; returns (stdout, stderr, code).
pub async fn exec_with_stdin(
    client: &PluginClient,
    req: &ops::ExecRequest,
    stdin: &[u8],
) -> (String, String, i32) {
    let (_started, stream) = client.exec(req).await.unwrap();
    let (mut r, mut w) = stream.split();
    w.write_frame(&Frame::new(FrameKind::Stdin, stdin.to_vec()))
        .await
        .unwrap();
    w.write_frame(&Frame::new(FrameKind::StdinEof, Vec::new()))
        .await
        .unwrap();
    read_to_exit(&mut r).await
}

/// Reads to the Exit frame; returns (stdout, stderr, code).
pub async fn read_to_exit(r: &mut FrameReader) -> (String, String, i32) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tokio::time::timeout(WAIT, async {
        loop {
            let f = r
                .read_frame()
                .await
                .unwrap()
                .expect("stream ended before Exit");
            match f.kind {
                FrameKind::Stdout => out.extend_from_slice(&f.payload),
                FrameKind::Stderr => err.extend_from_slice(&f.payload),
                FrameKind::Exit => return f.exit_code().unwrap(),
                other => panic!("unexpected {other:?} frame"),
            }
        }
    })
    .await
    .expect("timed out waiting for Exit");
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        code,
    )
}
