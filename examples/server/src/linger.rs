//! A lingering close for refused bodies. A body over [`BODY_LIMIT`] is
//! answered 413 after reading only the first 16 KiB; closing the connection
//! with the rest unread makes the kernel reset it, and a client that is still
//! writing (no `Expect: 100-continue`: Python's `urllib`, many mobile
//! stacks) gets `EPIPE` or a reset instead of the 413. So before a 413 goes
//! out, the rest of the body is read and dropped, up to [`DRAIN_LIMIT`] and
//! for at most [`DRAIN_TIME`], one chunk in memory at a time.
//!
//! [`BODY_LIMIT`]: super::BODY_LIMIT

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::{Stream, StreamExt};
use tokio::sync::oneshot;

use super::BODY_LIMIT;

/// The most of a refused body read before answering: a client that sends
/// more gets the reset. Reading costs no memory (each chunk is dropped), only
/// the time to receive it.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// The longest a refused body is read before answering, so a slow sender
/// cannot hold the answer (and the connection) open.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Middleware: runs the request, and if the answer is 413, drains what the
/// handler left of the body before answering.
pub(super) async fn drain_refused_body(request: Request, next: Next) -> Response {
    // Only a body that may be over the limit can be refused for its size:
    // one whose declared length fits is passed on untouched (every grab).
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length <= BODY_LIMIT) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let (give_back, mut given_back) = oneshot::channel();
    let body = Body::from_stream(GivenBack {
        rest: Some(body.into_data_stream()),
        give_back: Some(give_back),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    // The handler has returned, so it has dropped the body and its rest is
    // here; if it kept the body somewhere, there is nothing to drain.
    let Ok(rest) = given_back.try_recv() else {
        return response;
    };
    if !drain(rest).await {
        // More is coming than we read: say so, rather than keep reading.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and drops the rest of a body; `true` if it ended within the limits.
async fn drain(mut rest: BodyDataStream) -> bool {
    let read_to_end = async {
        let mut read = 0;
        while let Some(chunk) = rest.next().await {
            let Ok(chunk) = chunk else { return false };
            read += chunk.len();
            if read > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read_to_end)
        .await
        .unwrap_or(false)
}

/// A request body that, when dropped unfinished, hands what is left of it
/// back to [`drain_refused_body`].
struct GivenBack {
    rest: Option<BodyDataStream>,
    give_back: Option<oneshot::Sender<BodyDataStream>>,
}

impl Stream for GivenBack {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rest.as_mut() {
            Some(rest) => rest.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for GivenBack {
    fn drop(&mut self) {
        if let (Some(rest), Some(give_back)) = (self.rest.take(), self.give_back.take()) {
            // No receiver: the middleware no longer waits, nothing to do.
            let _ = give_back.send(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use seckill_app::SecKill;
    use seckill_memory::MemoryStore;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Writes `head` and `body` on a fresh connection to a server, without
    /// waiting for an answer; returns whether the whole body went out, and
    /// everything the server answered until it closed.
    async fn send_without_waiting(head: String, body: Vec<u8>) -> (std::io::Result<()>, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let state =
            crate::AppState::new(SecKill::new(MemoryStore::new()), crate::Metrics::isolated());
        let server = tokio::spawn(crate::serve(listener, None, state, async move {
            let _ = stopped.await;
        }));
        let (mut reader, mut writer) = TcpStream::connect(address).await.unwrap().into_split();
        // The write half is handed back, not dropped: dropping it sends FIN,
        // and hyper takes a half-closed connection for a client gone away.
        let upload = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            writer.write_all(&body).await?;
            writer.flush().await?;
            Ok::<_, std::io::Error>(writer)
        });
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer));
        let read = read.await.expect("the server closes the connection");
        let written = upload.await.unwrap();
        let written = written.map(drop);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        (written.and(read.map(drop)), answer)
    }

    /// 8 MiB of JSON white space: valid so far, and far over the limit.
    const OVERSIZED: usize = 8 * 1024 * 1024;

    /// A grab's request head with this framing header.
    fn grab_head(framing: &str) -> String {
        format!(
            "POST /command/coupons/ HTTP/1.1\r\nHost: seckill\r\nContent-Type: application/json\r\n\
             {framing}\r\nConnection: close\r\n\r\n"
        )
    }

    /// The answer is a whole 413 problem.
    fn assert_payload_too_large(answer: &str) {
        let (status, rest) = answer.split_once("\r\n").expect("a status line");
        assert_eq!(status, "HTTP/1.1 413 Payload Too Large", "{answer}");
        let rest = rest.to_ascii_lowercase();
        assert!(
            rest.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(rest.contains("/problems/payload-too-large"), "{answer}");
    }

    #[tokio::test]
    async fn an_oversized_body_sent_without_waiting_is_read_and_answered_413() {
        let head = grab_head(&format!("Content-Length: {OVERSIZED}"));
        let (sent, answer) = send_without_waiting(head, vec![b' '; OVERSIZED]).await;
        sent.expect("the whole body is accepted, no reset");
        assert_payload_too_large(&answer);
    }

    #[tokio::test]
    async fn an_oversized_chunked_body_is_read_and_answered_413_too() {
        // No length declared: only reading tells the body is too large.
        let chunk = 1024 * 1024;
        let mut body = Vec::with_capacity(OVERSIZED + 64);
        for _ in 0..OVERSIZED / chunk {
            body.extend_from_slice(format!("{chunk:x}\r\n").as_bytes());
            body.resize(body.len() + chunk, b' ');
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let head = grab_head("Transfer-Encoding: chunked");
        let (sent, answer) = send_without_waiting(head, body).await;
        sent.expect("the whole body is accepted, no reset");
        assert_payload_too_large(&answer);
    }

    #[tokio::test]
    async fn draining_reads_a_body_to_its_end_but_stops_an_endless_one_at_the_limit() {
        assert!(drain(Body::from(vec![b' '; 1024 * 1024]).into_data_stream()).await);
        let chunk = Bytes::from(vec![b' '; 64 * 1024]);
        let endless = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        assert!(!drain(Body::from_stream(endless).into_data_stream()).await);
    }
}
