//! [`EventFeed`]: the client's reader of `GET /events`, which splits the
//! Server-Sent Events stream into frames and reads each one's data as a
//! [`FeedEventDto`].

use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::StatusCode;

use super::ClientError;
use crate::api::FeedEventDto;

/// One event of the global feed as it came over the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedFrame {
    /// The SSE `id`: the event's global position, to resume after.
    pub id: u64,
    /// The SSE `event`: the event's type.
    pub event: String,
    /// The SSE `data`.
    pub data: FeedEventDto,
}

/// A live `GET /events` answer. Dropping it disconnects.
pub struct EventFeed {
    chunks: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    /// Received text not yet split into frames.
    buffer: String,
}

impl EventFeed {
    pub(super) fn new(response: reqwest::Response) -> Self {
        Self {
            chunks: response
                .bytes_stream()
                .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// The next event; `None` once the server ended the stream. Keep-alive
    /// comments are read past.
    pub async fn next(&mut self) -> Result<Option<FeedFrame>, ClientError> {
        let what = "reading the global event feed";
        loop {
            // Frames end with a blank line; axum writes `\n` line ends.
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(frame) = parse(&frame, what)? {
                    return Ok(Some(frame));
                }
                continue;
            }
            match self.chunks.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(source)) => {
                    return Err(ClientError::Transport {
                        what: what.to_owned(),
                        source,
                    })
                }
                None => return Ok(None),
            }
        }
    }
}

/// One frame's fields; `None` for a frame without data (a keep-alive).
fn parse(frame: &str, what: &str) -> Result<Option<FeedFrame>, ClientError> {
    let (mut id, mut event, mut data) = (None, String::new(), String::new());
    for line in frame.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        // One optional space after the colon belongs to the syntax.
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "event" => value.clone_into(&mut event),
            "data" => data.push_str(value),
            _ => {} // a comment (`:`), `retry`, or a field we do not use
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    let undecodable = |source| ClientError::Decode {
        what: format!("{what}: frame {frame:?}"),
        status: StatusCode::OK,
        source,
    };
    let id = id
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| undecodable(None))?;
    let data = serde_json::from_str(&data).map_err(|e| undecodable(Some(e)))?;
    Ok(Some(FeedFrame { id, event, data }))
}
