//! The attach stream (DESIGN §6): after its ok reply, an `attach` connection carries binary
//! frames both ways, `[kind u8][len u32 BE][payload]`.

/// Program output (daemon → client) or keystrokes (client → daemon).
pub const DATA: u8 = 1;
/// The client's window size: rows u16 BE, cols u16 BE.
pub const RESIZE: u8 = 2;
/// The client leaves; the program keeps running.
pub const DETACH: u8 = 3;
/// The program ended: its status, i32 BE: the exit code (0 to 255), or minus the number of
/// the signal that killed it (-15: SIGTERM), so that `exit 143` and SIGTERM stay apart.
pub const EXIT: u8 = 4;

/// Largest payload accepted, in bytes (64 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Bytes.
    Data(Vec<u8>),
    /// Window size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Leave.
    Detach,
    /// The program ended with this status: the exit code, or minus the signal number.
    Exit(i32),
}

impl Frame {
    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            Frame::Data(d) => (DATA, d.clone()),
            Frame::Resize { rows, cols } => (RESIZE, [rows.to_be_bytes(), cols.to_be_bytes()].concat()),
            Frame::Detach => (DETACH, Vec::new()),
            Frame::Exit(s) => (EXIT, s.to_be_bytes().to_vec()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// A data frame of `bytes`, encoded without an intermediate copy of the frame.
    pub fn encode_data(bytes: &[u8], out: &mut Vec<u8>) {
        out.push(DATA);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
}

/// Why a byte stream is not a valid frame stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// An unknown kind byte.
    #[error("unknown attach frame kind {0}")]
    UnknownKind(u8),
    /// A length over [`MAX_PAYLOAD`], or not the size its kind requires.
    #[error("attach frame of kind {kind} with a bad length {len}")]
    BadLength {
        /// Kind.
        kind: u8,
        /// Length.
        len: usize,
    },
}

/// Takes the first complete frame off the front of `buf`, if there is one.
///
/// # Errors
/// The stream is malformed; the connection should end.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let kind = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    let ok_len = match kind {
        DATA => len <= MAX_PAYLOAD,
        RESIZE => len == 4,
        DETACH => len == 0,
        EXIT => len == 4,
        other => return Err(FrameError::UnknownKind(other)),
    };
    if !ok_len {
        return Err(FrameError::BadLength { kind, len });
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    let payload: Vec<u8> = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Ok(Some(match kind {
        DATA => Frame::Data(payload),
        RESIZE => Frame::Resize {
            rows: u16::from_be_bytes([payload[0], payload[1]]),
            cols: u16::from_be_bytes([payload[2], payload[3]]),
        },
        DETACH => Frame::Detach,
        _ => Frame::Exit(i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let frames =
            [Frame::Data(b"hi".to_vec()), Frame::Resize { rows: 40, cols: 100 }, Frame::Detach, Frame::Exit(-3)];
        let mut buf: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        buf.push(DATA); // a partial frame stays
        for f in &frames {
            assert_eq!(take_frame(&mut buf).unwrap().as_ref(), Some(f));
        }
        assert_eq!(take_frame(&mut buf).unwrap(), None);
        assert_eq!(buf, [DATA]);
        assert!(take_frame(&mut vec![9, 0, 0, 0, 0]).is_err());
        assert!(take_frame(&mut vec![RESIZE, 0, 0, 0, 3, 1, 2, 3]).is_err());
        assert!(take_frame(&mut vec![DATA, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
