//! The wire format of every unix socket in the stack (docs/wire.md): a 4-byte big-endian length, then that many bytes
//! of JSON holding one object. Check-then-parse: the length is validated before any body byte is read.

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame the supervisor accepts or sends (the control socket carries small messages only).
pub const MAX_CONTROL_FRAME: u32 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer closed the connection")]
    Closed,
    #[error("frame length {len} is outside 2..={max}")]
    BadLength { len: u32, max: u32 },
    #[error("frame is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes one JSON object as a frame.
pub fn encode(message: &Map<String, Value>) -> Vec<u8> {
    let body = Value::Object(message.clone()).to_string();
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// Decodes the body of a frame whose length was already checked.
pub fn decode_body(body: &[u8]) -> Result<Map<String, Value>, FrameError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(FrameError::NotAnObject(format!("got {}", json_kind(&other)))),
        Err(e) => Err(FrameError::NotAnObject(e.to_string())),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads one frame. A clean end of stream before the first length byte is `Closed`.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R, max: u32) -> Result<Map<String, Value>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut header[got..]).await?;
        if n == 0 {
            return Err(if got == 0 {
                FrameError::Closed
            } else {
                FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        got += n;
    }
    let len = u32::from_be_bytes(header);
    if !(2..=max).contains(&len) {
        return Err(FrameError::BadLength { len, max });
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await?;
    decode_body(&body)
}

/// Writes one frame and flushes it.
pub async fn write<W: AsyncWrite + Unpin>(writer: &mut W, message: &Map<String, Value>) -> Result<(), FrameError> {
    writer.write_all(&encode(message)).await?;
    writer.flush().await?;
    Ok(())
}

/// Builds a JSON object from a `json!` literal; callers only pass object literals.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("value".into(), other);
            map
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn round_trips_a_frame() {
        let msg = object(json!({"op": "ping", "n": 1}));
        let bytes = encode(&msg);
        assert_eq!(&bytes[..4], &u32::try_from(bytes.len() - 4).expect("small").to_be_bytes());
        let mut reader = &bytes[..];
        assert_eq!(read(&mut reader, 1024).await.expect("valid frame"), msg);
    }

    #[tokio::test]
    async fn reads_frames_back_to_back() {
        let mut bytes = encode(&object(json!({"a": 1})));
        bytes.extend(encode(&object(json!({"b": 2}))));
        let mut reader = &bytes[..];
        assert_eq!(read(&mut reader, 1024).await.expect("first")["a"], 1);
        assert_eq!(read(&mut reader, 1024).await.expect("second")["b"], 2);
        assert!(matches!(read(&mut reader, 1024).await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn rejects_bad_lengths_before_reading_the_body() {
        for len in [0u32, 1, 1025] {
            let bytes = len.to_be_bytes();
            let mut reader = &bytes[..];
            assert!(matches!(read(&mut reader, 1024).await, Err(FrameError::BadLength { .. })), "len {len}");
        }
    }

    #[tokio::test]
    async fn rejects_non_objects_and_bad_json() {
        for body in [&b"[1,2]"[..], b"nope", b"\"s\""] {
            let mut bytes = u32::try_from(body.len()).expect("small").to_be_bytes().to_vec();
            bytes.extend_from_slice(body);
            let mut reader = &bytes[..];
            assert!(matches!(read(&mut reader, 1024).await, Err(FrameError::NotAnObject(_))));
        }
    }

    #[tokio::test]
    async fn truncated_frames_are_errors_not_clean_closes() {
        let bytes = encode(&object(json!({"a": 1})));
        let mut short_header = &bytes[..2];
        assert!(matches!(read(&mut short_header, 1024).await, Err(FrameError::Io(_))));
        let mut short_body = &bytes[..bytes.len() - 1];
        assert!(matches!(read(&mut short_body, 1024).await, Err(FrameError::Io(_))));
    }
}
