//! The wire format between the parent and its worker processes.
//!
//! Two channels per worker:
//!
//! * **Frames** over a pipe (one per worker, parent to worker). A frame is a little-endian
//!   `u32` body length followed by the body; the body's first byte is its kind. `Run`
//!   carries a job (a run of consecutive tasks and their serialized arguments); `Init` names
//!   the worker initializer to run before any job; `Context` carries a `map_with` call's
//!   context, kept by the worker for the jobs that follow; `RunShared` is a `Run` whose
//!   arguments (64 KiB or more) the parent put in the worker's *inbox*, a memfd both map,
//!   so that they cross in one copy instead of two through the pipe. No frame travels back: a worker reports a finished job through its arena's header and the
//!   pool's doorbell (`doorbell.rs`), which costs no system call when the parent is awake.
//!   Frames are validated before use: an unknown kind, a body too short for its kind, or a
//!   length over the frame limit (256 MiB: larger arguments go through the inbox, in a
//!   `RunShared` frame) is an error, never a panic.
//! * **Outcome records** in the worker's result arena (a memfd mapped in both processes, see
//!   `arena.rs`): `[tag: u8][len: u32 LE][payload]` per task, appended as each task finishes.
//!   Because they live in shared memory, records written before a crash survive it.
//!
//! Values are encoded with [postcard], a compact serde format with a documented, stable wire
//! specification. bincode was ruled out (unmaintained, RUSTSEC-2025-0141). bitcode is faster
//! on large homogeneous batches, but it encodes whole messages; crash isolation needs a
//! per-value API (each task's argument decoded on its own with `take_from_bytes`, each result
//! appended to the arena as the task finishes), which postcard has. What the codec costs per
//! item is visible in `benches/pool.rs` (`map` of 1 000 000 `u64`, process vs thread mode).
//!
//! [postcard]: https://docs.rs/postcard
//!
//! Longer than 600 lines because the decoders' tests stay beside them: these are the
//! functions hostile bytes meet first, and a reader checking one should see what it is held to.

use thiserror::Error;

/// Largest frame body accepted, in bytes. Arguments larger than this travel in pieces of
/// separate jobs, or fail with a codec error if a single argument exceeds it.
pub(crate) const MAX_FRAME: usize = 256 << 20;

const KIND_RUN: u8 = 1;
/// Kind 2 was a `Done` frame, retired: workers report through their arena.
const KIND_INIT: u8 = 3;
const KIND_CONTEXT: u8 = 4;
const KIND_RUN_SHARED: u8 = 5;
/// A `RunShared` frame: a `Run` frame's header, then the length of its arguments in the inbox.
const RUN_SHARED_FIXED: usize = RUN_FIXED + 8;

/// Arguments this long or longer travel through the worker's inbox (a shared memfd) rather
/// than the pipe: one copy instead of two, and no pipe-sized round trips.
pub(crate) const INBOX_MIN: usize = 64 << 10;

/// An argument or result this long is a large transfer: its pages are faulted in with one
/// call on each side, and taken out of memory once read (a system call or two: for a
/// smaller one, the pages are worth keeping for the next job).
pub(crate) const LARGE: usize = 16 << 20;
const RUN_FIXED: usize = 1 + 8 + 8 + 8 + 4;
/// Kind, entry, check: the body of an `Init` frame, and the header of a `Context` frame's.
const CALL_FIXED: usize = 1 + 8 + 8;

/// A decoded frame, borrowing from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// Run `count` tasks, ids `first_task..first_task+count`, through the entry point at
    /// address `entry` (`check` must equal `entry ^ secret`).
    Run {
        first_task: u64,
        entry: u64,
        check: u64,
        count: u32,
        args: &'a [u8],
    },
    /// A `Run` whose `args_len` bytes of arguments are at the start of the worker's inbox.
    RunShared {
        first_task: u64,
        entry: u64,
        check: u64,
        count: u32,
        args_len: u64,
    },
    /// Run the worker initializer at `entry` (an `InitFn`) before any job.
    Init { entry: u64, check: u64 },
    /// Keep `bytes`, decoded by the `ContextFn` at `entry`, as the context of the jobs that
    /// follow.
    Context {
        entry: u64,
        check: u64,
        bytes: &'a [u8],
    },
}

/// Why bytes are not a valid frame or record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum WireError {
    /// The length prefix exceeds the limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The kind byte is not one we know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The body is shorter than its kind needs.
    #[error("frame of kind {kind} has {len} bytes, fewer than its {need}-byte header")]
    Truncated {
        /// The kind byte.
        kind: u8,
        /// Body length.
        len: usize,
        /// Bytes the kind needs at least.
        need: usize,
    },
    /// An empty frame body.
    #[error("empty frame")]
    Empty,
    /// An outcome record is malformed.
    #[error("corrupt outcome record: {0}")]
    CorruptRecord(&'static str),
}

/// Bytes of a `Run` frame before its arguments.
pub(crate) const RUN_HEADER_LEN: usize = 4 + RUN_FIXED;

/// Starts a `Run` frame in `out`: room for the header; append the arguments, then call
/// [`finish_run`].
pub(crate) fn begin_run(out: &mut Vec<u8>) {
    out.clear();
    out.resize(RUN_HEADER_LEN, 0);
}

/// Fills in the header of a frame started with [`begin_run`].
pub(crate) fn finish_run(out: &mut [u8], first_task: u64, entry: u64, check: u64, count: u32) {
    let body = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&body.to_le_bytes());
    out[4] = KIND_RUN;
    out[5..13].copy_from_slice(&first_task.to_le_bytes());
    out[13..21].copy_from_slice(&entry.to_le_bytes());
    out[21..29].copy_from_slice(&check.to_le_bytes());
    out[29..33].copy_from_slice(&count.to_le_bytes());
}

/// The `RunShared` frame for the `Run` frame that starts with `run` (made by [`begin_run`]
/// and [`finish_run`]), whose `args_len` bytes of arguments were put in the inbox.
pub(crate) fn shared_run(run: &[u8], args_len: usize) -> [u8; 4 + RUN_SHARED_FIXED] {
    let mut out = [0u8; 4 + RUN_SHARED_FIXED];
    out[..4].copy_from_slice(&(RUN_SHARED_FIXED as u32).to_le_bytes());
    out[4..RUN_HEADER_LEN].copy_from_slice(&run[4..RUN_HEADER_LEN]);
    out[4] = KIND_RUN_SHARED;
    out[RUN_HEADER_LEN..].copy_from_slice(&(args_len as u64).to_le_bytes());
    out
}

/// Appends an `Init` frame (no `bytes`) or a `Context` frame to `out`.
pub(crate) fn encode_call(out: &mut Vec<u8>, entry: u64, check: u64, bytes: Option<&[u8]>) {
    let (kind, bytes) = match bytes {
        None => (KIND_INIT, &[][..]),
        Some(b) => (KIND_CONTEXT, b),
    };
    let body = CALL_FIXED + bytes.len();
    out.reserve(4 + body);
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&check.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends a `Run` frame to `out`.
#[cfg(test)]
pub(crate) fn encode_run(
    out: &mut Vec<u8>,
    first_task: u64,
    entry: u64,
    check: u64,
    count: u32,
    args: &[u8],
) {
    let body = RUN_FIXED + args.len();
    out.reserve(4 + body);
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.push(KIND_RUN);
    out.extend_from_slice(&first_task.to_le_bytes());
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&check.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(args);
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(None)` if `buf` holds only part of a frame (read more), or the frame and the
/// number of bytes it used.
pub(crate) fn decode_frame(buf: &[u8]) -> Result<Option<(usize, FrameInfo)>, WireError> {
    decode(buf).map(|o| o.map(|(f, n)| (n, FrameInfo::of(&f))))
}

/// A summary of a decoded frame, for callers outside the crate (tests, fuzzers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum FrameInfo {
    /// A `Run` frame with this many tasks and argument bytes.
    Run {
        /// Tasks in the job.
        count: u32,
        /// Bytes of serialized arguments.
        args_len: usize,
    },
    /// An `Init` frame: run the worker initializer.
    Init,
    /// A `Context` frame with this many bytes of serialized context.
    Context {
        /// Bytes of the serialized context.
        len: usize,
    },
}

impl FrameInfo {
    fn of(f: &Frame<'_>) -> FrameInfo {
        match f {
            Frame::Run { count, args, .. } => FrameInfo::Run {
                count: *count,
                args_len: args.len(),
            },
            Frame::RunShared {
                count, args_len, ..
            } => FrameInfo::Run {
                count: *count,
                args_len: *args_len as usize,
            },
            Frame::Init { .. } => FrameInfo::Init,
            Frame::Context { bytes, .. } => FrameInfo::Context { len: bytes.len() },
        }
    }
}

pub(crate) fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME {
        return Err(WireError::Oversized {
            len,
            max: MAX_FRAME,
        });
    }
    if len == 0 {
        return Err(WireError::Empty);
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let kind = body[0];
    let need = match kind {
        KIND_RUN => RUN_FIXED,
        KIND_RUN_SHARED => RUN_SHARED_FIXED,
        KIND_INIT | KIND_CONTEXT => CALL_FIXED,
        _ => return Err(WireError::UnknownKind(kind)),
    };
    if len < need {
        return Err(WireError::Truncated { kind, len, need });
    }
    let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().expect("4 bytes"));
    let frame = match kind {
        KIND_RUN => Frame::Run {
            first_task: u64_at(1),
            entry: u64_at(9),
            check: u64_at(17),
            count: u32_at(25),
            args: &body[RUN_FIXED..],
        },
        KIND_RUN_SHARED if len == RUN_SHARED_FIXED => Frame::RunShared {
            first_task: u64_at(1),
            entry: u64_at(9),
            check: u64_at(17),
            count: u32_at(25),
            args_len: u64_at(29),
        },
        KIND_RUN_SHARED => {
            return Err(WireError::CorruptRecord(
                "a shared-run frame carries no arguments",
            ));
        }
        KIND_INIT if len == CALL_FIXED => Frame::Init {
            entry: u64_at(1),
            check: u64_at(9),
        },
        KIND_INIT => return Err(WireError::CorruptRecord("an init frame carries no bytes")),
        _ => Frame::Context {
            entry: u64_at(1),
            check: u64_at(9),
            bytes: &body[CALL_FIXED..],
        },
    };
    Ok(Some((frame, 4 + len)))
}

/// Slices up to this long are copied without a `memcpy` call. Postcard hands each varint (1
/// to 10 bytes) to its flavor as a slice, and a `memcpy` call per varint costs more than the
/// varint: it was a third of the encoding time of a million-item `map`.
const SHORT: usize = 16;

/// Appends the postcard encoding of `value` to `out` (postcard's own `to_extend` pushes one
/// byte at a time; this copies long slices whole).
pub(crate) fn append<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> postcard::Result<()> {
    append_capped(value, out, usize::MAX)
}

/// [`append`], failing with `SerializeBufferFull` (and `out` partly written) as soon as `out`
/// would grow past `cap` bytes.
pub(crate) fn append_capped<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    cap: usize,
) -> postcard::Result<()> {
    struct AppendVec<'a> {
        out: &'a mut Vec<u8>,
        cap: usize,
    }
    impl postcard::ser_flavors::Flavor for AppendVec<'_> {
        type Output = ();
        #[inline]
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            if data.len() > self.cap.saturating_sub(self.out.len()) {
                return Err(postcard::Error::SerializeBufferFull);
            }
            if data.len() <= SHORT {
                // A short slice (a varint, a tag) is copied as an iterator: one capacity
                // check and inline byte stores, where `extend_from_slice` calls `memcpy`
                // and a `push` per byte checks the capacity each time.
                self.out.extend(data.iter().copied());
            } else {
                self.out.extend_from_slice(data);
            }
            Ok(())
        }
        #[inline]
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            if self.out.len() >= self.cap {
                return Err(postcard::Error::SerializeBufferFull);
            }
            self.out.push(data);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }
    postcard::serialize_with_flavor(value, AppendVec { out, cap })
}

/// The length of the postcard encoding of `value`, counted without writing it (so a huge
/// argument is measured without the memory to hold it); `SerializeBufferFull` past `cap`.
pub(crate) fn encoded_len_capped<T: serde::Serialize + ?Sized>(
    value: &T,
    cap: usize,
) -> postcard::Result<usize> {
    struct Count {
        n: usize,
        cap: usize,
    }
    impl postcard::ser_flavors::Flavor for Count {
        type Output = usize;
        #[inline]
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.n += data.len();
            if self.n > self.cap {
                return Err(postcard::Error::SerializeBufferFull);
            }
            Ok(())
        }
        #[inline]
        fn try_push(&mut self, _: u8) -> postcard::Result<()> {
            self.try_extend(&[0])
        }
        fn finalize(self) -> postcard::Result<usize> {
            Ok(self.n)
        }
    }
    postcard::serialize_with_flavor(value, Count { n: 0, cap })
}

/// Serializes the items one after another, with no length prefix: the bytes of appending
/// each in turn, in one serializer call (postcard writes no length for a tuple).
pub(crate) struct Concat<'a, T>(pub &'a [T]);

impl<T: serde::Serialize> serde::Serialize for Concat<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(self.0.len())?;
        for item in self.0 {
            t.serialize_element(item)?;
        }
        t.end()
    }
}

/// Why [`write_into`] wrote nothing. One byte (postcard's error kinds carry no data), so
/// the result comes back in registers: a `String` here cost a store-forwarding stall per
/// item in a worker's hot loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The buffer is too short: retry with a longer one.
    Full,
    /// The value's `Serialize` failed: a longer buffer will not help.
    Failed(postcard::Error),
}

/// Writes the postcard encoding of `value` at the start of `buf` and returns its length
/// (postcard's `to_slice`, without a `memcpy` call per varint).
pub(crate) fn write_into<T: serde::Serialize + ?Sized>(
    value: &T,
    buf: &mut [u8],
) -> Result<usize, WriteError> {
    struct Cursor<'a> {
        buf: &'a mut [u8],
        at: usize,
    }
    impl postcard::ser_flavors::Flavor for Cursor<'_> {
        type Output = usize;
        #[inline]
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            let full = || postcard::Error::SerializeBufferFull;
            if data.len() <= SHORT {
                for &b in data {
                    *self.buf.get_mut(self.at).ok_or_else(full)? = b;
                    self.at += 1;
                }
            } else {
                let end = self.at + data.len();
                self.buf
                    .get_mut(self.at..end)
                    .ok_or_else(full)?
                    .copy_from_slice(data);
                self.at = end;
            }
            Ok(())
        }
        #[inline]
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            *self
                .buf
                .get_mut(self.at)
                .ok_or(postcard::Error::SerializeBufferFull)? = data;
            self.at += 1;
            Ok(())
        }
        fn finalize(self) -> postcard::Result<usize> {
            Ok(self.at)
        }
    }
    postcard::serialize_with_flavor(value, Cursor { buf, at: 0 }).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => WriteError::Full,
        e => WriteError::Failed(e),
    })
}

/// Tag of an outcome record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordTag {
    /// The task returned; payload is the postcard-encoded result.
    Ok = 0,
    /// The task panicked; payload is postcard `(message, location)`.
    Panicked = 1,
    /// The argument could not be decoded or the result encoded; payload is a postcard string.
    Codec = 2,
}

pub(crate) const RECORD_HEADER: usize = 5;

/// Set in a record's tag byte when its payload starts with the task's captured output:
/// `[out_len: u32 LE][stdout][err_len: u32 LE][stderr]`, then the tag's own payload.
const CAPTURED: u8 = 0x80;

/// Writes a record header for a payload of `len` bytes into `out[..5]`.
#[inline]
pub(crate) fn record_header(out: &mut [u8], tag: RecordTag, captured: bool, len: usize) {
    out[0] = tag as u8 | if captured { CAPTURED } else { 0 };
    out[1..5].copy_from_slice(&(len as u32).to_le_bytes());
}

/// One outcome record, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) tag: RecordTag,
    pub(crate) payload: &'a [u8],
    /// What the task wrote to stdout and stderr, when the pool captures output.
    pub(crate) output: Option<(&'a [u8], &'a [u8])>,
    /// The record's size.
    pub(crate) used: usize,
}

/// Decodes the record at the front of `buf`: its tag, payload and total size.
#[inline]
pub(crate) fn decode_record(buf: &[u8]) -> Result<(RecordTag, &[u8], usize), WireError> {
    let r = decode_full_record(buf)?;
    Ok((r.tag, r.payload, r.used))
}

/// Decodes the record at the front of `buf`, with its captured output if it has any.
#[inline]
pub(crate) fn decode_full_record(buf: &[u8]) -> Result<Record<'_>, WireError> {
    if buf.len() < RECORD_HEADER {
        return Err(WireError::CorruptRecord("record header cut short"));
    }
    let tag = match buf[0] & !CAPTURED {
        0 => RecordTag::Ok,
        1 => RecordTag::Panicked,
        2 => RecordTag::Codec,
        _ => return Err(WireError::CorruptRecord("unknown record tag")),
    };
    let len = u32::from_le_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
    let mut payload =
        buf.get(RECORD_HEADER..RECORD_HEADER + len)
            .ok_or(WireError::CorruptRecord(
                "record payload runs past the committed bytes",
            ))?;
    let output = if buf[0] & CAPTURED != 0 {
        let mut part = || -> Result<&[u8], WireError> {
            let cut = || WireError::CorruptRecord("captured output runs past its record");
            let n = payload.get(..4).ok_or_else(cut)?;
            let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
            let bytes = payload.get(4..4 + n).ok_or_else(cut)?;
            payload = &payload[4 + n..];
            Ok(bytes)
        };
        let out = part()?;
        let err = part()?;
        Some((out, err))
    } else {
        None
    };
    Ok(Record {
        tag,
        payload,
        output,
        used: RECORD_HEADER + len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_frame(args: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_run(&mut v, 7, 0xdead, 0xbeef, 3, args);
        v
    }

    #[test]
    fn concat_writes_what_appending_each_item_writes() {
        let items: Vec<(u64, String)> = (0..300)
            .map(|i| (i * 977, "x".repeat(i as usize % 5)))
            .collect();
        let mut one_by_one = Vec::new();
        for item in &items {
            append(item, &mut one_by_one).unwrap();
        }
        let mut at_once = Vec::new();
        append(&Concat(&items), &mut at_once).unwrap();
        assert_eq!(at_once, one_by_one);
    }

    #[test]
    fn encoded_len_counts_what_append_writes_and_stops_at_its_cap() {
        let value = (vec![3u8; 1000], "abc".to_string(), 1u64 << 40);
        let mut out = Vec::new();
        append(&value, &mut out).unwrap();
        assert_eq!(encoded_len_capped(&value, usize::MAX), Ok(out.len()));
        assert_eq!(encoded_len_capped(&value, out.len()), Ok(out.len()));
        assert_eq!(
            encoded_len_capped(&value, out.len() - 1),
            Err(postcard::Error::SerializeBufferFull)
        );
    }

    #[test]
    fn append_capped_stops_at_its_cap() {
        let mut out = vec![0u8; 10];
        assert!(append_capped(&[7u8; 32][..], &mut out, 20).is_err());
        let mut out = vec![0u8; 10];
        append_capped(&300u64, &mut out, 12).unwrap();
        assert_eq!(out.len(), 12);
        assert!(append_capped(&1u8, &mut out, 12).is_err());
    }

    #[test]
    fn write_into_matches_append_and_reports_a_short_buffer() {
        let value = (u64::MAX, "hello".to_string());
        let mut appended = Vec::new();
        append(&value, &mut appended).unwrap();
        let mut buf = [0u8; 64];
        let n = write_into(&value, &mut buf).unwrap();
        assert_eq!(&buf[..n], &appended[..]);
        assert_eq!(write_into(&value, &mut buf[..n - 1]), Err(WriteError::Full));
    }

    #[test]
    fn run_frame_round_trips() {
        let v = run_frame(b"abc");
        let (f, n) = decode(&v).unwrap().unwrap();
        assert_eq!(n, v.len());
        assert_eq!(
            f,
            Frame::Run {
                first_task: 7,
                entry: 0xdead,
                check: 0xbeef,
                count: 3,
                args: b"abc"
            }
        );
    }

    #[test]
    fn begin_finish_matches_encode() {
        let mut a = Vec::new();
        begin_run(&mut a);
        a.extend_from_slice(b"xyz");
        finish_run(&mut a, 7, 0xdead, 0xbeef, 3);
        let mut b = Vec::new();
        encode_run(&mut b, 7, 0xdead, 0xbeef, 3, b"xyz");
        assert_eq!(a, b);
    }

    #[test]
    fn partial_frames_ask_for_more() {
        let v = run_frame(b"abcdef");
        for cut in 0..v.len() {
            assert_eq!(decode(&v[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn corrupt_frames_are_errors() {
        let mut v = run_frame(b"");
        v[4] = 99;
        assert_eq!(decode(&v), Err(WireError::UnknownKind(99)));
        let over = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(matches!(decode(&over), Err(WireError::Oversized { .. })));
        assert_eq!(decode(&[0, 0, 0, 0]), Err(WireError::Empty));
        let short = [2u8, 0, 0, 0, KIND_RUN, 0];
        assert!(matches!(decode(&short), Err(WireError::Truncated { .. })));
        let retired = [5u8, 0, 0, 0, 2, 0, 0, 0, 0];
        assert_eq!(decode(&retired), Err(WireError::UnknownKind(2)));
    }

    #[test]
    fn a_shared_run_frame_keeps_its_runs_header() {
        let mut run = Vec::new();
        begin_run(&mut run);
        run.extend_from_slice(&[9u8; 100]);
        finish_run(&mut run, 7, 0xdead, 0xbeef, 3);
        let shared = shared_run(&run, run.len() - RUN_HEADER_LEN);
        let (f, n) = decode(&shared).unwrap().unwrap();
        assert_eq!(n, shared.len());
        assert_eq!(
            f,
            Frame::RunShared {
                first_task: 7,
                entry: 0xdead,
                check: 0xbeef,
                count: 3,
                args_len: 100
            }
        );
    }

    #[test]
    fn init_and_context_frames_round_trip() {
        let mut v = Vec::new();
        encode_call(&mut v, 0xabc, 0xdef, None);
        encode_call(&mut v, 0x123, 0x456, Some(b"ctx"));
        let (f, n) = decode(&v).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Init {
                entry: 0xabc,
                check: 0xdef
            }
        );
        let (g, m) = decode(&v[n..]).unwrap().unwrap();
        assert_eq!(
            g,
            Frame::Context {
                entry: 0x123,
                check: 0x456,
                bytes: b"ctx"
            }
        );
        assert_eq!(n + m, v.len());
        // An init frame with bytes, and one cut short, are errors.
        let mut bad = Vec::new();
        encode_call(&mut bad, 1, 2, Some(b"x"));
        bad[4] = KIND_INIT;
        assert!(decode(&bad).is_err());
        let short = [3u8, 0, 0, 0, KIND_CONTEXT, 0, 0];
        assert!(matches!(decode(&short), Err(WireError::Truncated { .. })));
    }

    #[test]
    fn append_matches_postcard() {
        let value = (7u64, "seven".to_string(), vec![1i32, -1]);
        let mut out = vec![0xAA];
        append(&value, &mut out).unwrap();
        assert_eq!(out[0], 0xAA);
        assert_eq!(&out[1..], postcard::to_allocvec(&value).unwrap().as_slice());
    }

    #[test]
    fn a_captured_record_carries_its_output_before_its_payload() {
        let mut payload = Vec::new();
        for part in [&b"out"[..], b"er"] {
            payload.extend_from_slice(&(part.len() as u32).to_le_bytes());
            payload.extend_from_slice(part);
        }
        payload.extend_from_slice(b"value");
        let mut buf = vec![0u8; 5];
        record_header(&mut buf, RecordTag::Ok, true, payload.len());
        buf.extend_from_slice(&payload);
        let r = decode_full_record(&buf).unwrap();
        assert_eq!(r.tag, RecordTag::Ok);
        assert_eq!(r.payload, b"value");
        assert_eq!(r.output, Some((&b"out"[..], &b"er"[..])));
        assert_eq!(r.used, buf.len());
        // An output length past the record is corrupt, not a panic.
        let mut bad = buf.clone();
        bad[5] = 200;
        assert!(decode_full_record(&bad).is_err());
    }

    #[test]
    fn records_are_validated() {
        let mut buf = [0u8; 8];
        record_header(&mut buf, RecordTag::Panicked, false, 3);
        let (tag, payload, n) = decode_record(&buf).unwrap();
        assert_eq!((tag, payload.len(), n), (RecordTag::Panicked, 3, 8));
        record_header(&mut buf, RecordTag::Ok, false, 100);
        assert!(decode_record(&buf).is_err());
        buf[0] = 9;
        assert!(decode_record(&buf).is_err());
        assert!(decode_record(&buf[..3]).is_err());
    }
}
