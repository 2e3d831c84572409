//! Read-only data shared with workers without a copy per worker or per call: [`Shared`]
//! (any serde value, encoded once) and [`SharedBytes`] (bytes, never decoded).
//!
//! Each value lives in a *region*: a memfd the creating process writes once and then seals
//! (see `region.rs`). The value itself is a small handle (owner pid, a per-process nonce,
//! the region's id, the owner's descriptor number, its length) whose `Serialize` writes only
//! those few words. Where a handle is decoded decides what it becomes:
//!
//! * in the process that made the region (the parent; thread mode's round trip), the same
//!   `Arc`, found in a registry of live regions: one copy, shared by every thread;
//! * in a worker process on the same host, a read-only mapping of the region, opened
//!   through `/proc/<owner>/fd/<n>` on first sight and kept in the same registry while any
//!   handle to it lives in the worker (a call's context stays with the worker until its next
//!   `map_with`), so a region is mapped, and a [`Shared`] decoded, once per worker, however
//!   many calls use it;
//! * anywhere else (another host, a worker that cannot open `/proc`), an error that says so.
//!
//! The parent never maps a region it did not make, so it never reads memory a worker wrote.

mod region;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use region::Mapping;

/// What crosses to a worker in place of a shared value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Handle {
    /// The process that made the region, and a nonce of its own (pids are reused).
    pid: u32,
    nonce: u64,
    /// The region's id in that process.
    id: u64,
    /// The owner's descriptor of the memfd.
    fd: i32,
    /// The region's length in bytes.
    len: u64,
    /// A [`SharedBytes`] (else a [`Shared`]).
    bytes: bool,
}

impl Handle {
    fn key(&self) -> Key {
        (self.pid, self.nonce, self.id)
    }

    fn name(&self) -> String {
        region::memfd_name(self.pid, self.nonce, self.id)
    }
}

type Key = (u32, u64, u64);

/// Live regions of this process, made here or mapped here: a handle decoded while one lives
/// becomes that one.
static LIVE: Mutex<Option<HashMap<Key, Weak<dyn Any + Send + Sync>>>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Option<HashMap<Key, Weak<dyn Any + Send + Sync>>>> {
    // The map is consistent after any panic (each change is one call).
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes `key` out of the registry if nothing holds its region any more.
fn forget(key: Key) {
    let mut live = live();
    if let Some(map) = live.as_mut()
        && map.get(&key).is_some_and(|w| w.strong_count() == 0)
    {
        map.remove(&key);
    }
}

/// This process's pid and nonce. A forked worker inherits its parent's statics, so the
/// nonce is made again when the pid is not the one it was made for.
fn origin() -> (u32, u64) {
    use std::hash::{BuildHasher, Hasher};
    static ORIGIN: Mutex<Option<(u32, u64)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = ORIGIN.lock().unwrap_or_else(|p| p.into_inner());
    match *slot {
        Some((p, nonce)) if p == pid => (p, nonce),
        _ => {
            let mut h = std::hash::RandomState::new().build_hasher();
            h.write_u32(pid);
            h.write_u64(crate::sys::monotonic_ns());
            let at = &h as *const _ as usize;
            h.write_usize(at);
            let nonce = h.finish();
            *slot = Some((pid, nonce));
            (pid, nonce)
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Set when a shared handle is serialized on this thread (see [`take_serialized`]).
    static SERIALIZED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a [`Shared`] or [`SharedBytes`] was serialized on this thread since the last
/// call: the pool asks around encoding a call's context, to refuse one that its workers
/// (sandboxed, or remote) could not open.
pub(crate) fn take_serialized() -> bool {
    SERIALIZED.with(|s| s.replace(false))
}

/// A new region of `len` bytes written by `fill`, registered as the value `make` builds
/// around it.
fn make_region<V: Any + Send + Sync, R>(
    len: usize,
    bytes: bool,
    fill: impl FnOnce(&mut [u8]) -> R,
    make: impl FnOnce(Handle, OwnedFd, R) -> std::io::Result<V>,
) -> std::io::Result<Arc<V>> {
    let (pid, nonce) = origin();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let name = region::memfd_name(pid, nonce, id);
    let (fd, out) = region::create(&name, len, fill)?;
    let handle = Handle {
        pid,
        nonce,
        id,
        fd: fd.as_raw_fd(),
        len: len as u64,
        bytes,
    };
    let value = Arc::new(make(handle, fd, out)?);
    let weak: Weak<dyn Any + Send + Sync> = Arc::downgrade(&(Arc::clone(&value) as Arc<_>));
    live()
        .get_or_insert_with(HashMap::new)
        .insert(handle.key(), weak);
    Ok(value)
}

/// The live value registered for `handle`, if there is one, as a `V`.
fn lookup<V: Any + Send + Sync>(handle: &Handle) -> Result<Option<Arc<V>>, String> {
    let found = live()
        .as_ref()
        .and_then(|m| m.get(&handle.key()))
        .and_then(Weak::upgrade);
    match found {
        None => Ok(None),
        Some(any) => any
            .downcast::<V>()
            .map(Some)
            .map_err(|_| "the shared region holds a value of another type".to_string()),
    }
}

/// Resolves `handle` in this process: the live value, or (in a worker process, for another
/// process's region) the region mapped and made into a value by `make`, then registered.
fn resolve<V: Any + Send + Sync>(
    handle: &Handle,
    make: impl FnOnce(Mapping) -> Result<V, String>,
) -> Result<Arc<V>, String> {
    if let Some(v) = lookup::<V>(handle)? {
        return Ok(v);
    }
    let (pid, nonce) = origin();
    if handle.pid == pid && handle.nonce == nonce {
        return Err("the shared region was dropped before this handle was decoded".into());
    }
    if !crate::worker::in_worker() {
        // The parent maps only regions it made: what a worker made, a worker wrote.
        return Err(
            "this process did not make the shared region: only the process that \
                    made a Shared or SharedBytes, and its worker processes, can decode it"
                .into(),
        );
    }
    let len = usize::try_from(handle.len).map_err(|_| "the region is too large".to_string())?;
    let mapping = if len == 0 {
        region::empty()
    } else {
        region::open(handle.pid, handle.fd, &handle.name(), len).map_err(|why| {
            format!(
                "a worker could not map the shared region ({why}); it must run on the same \
                 host as the process that made it, unsandboxed, and able to read its /proc entries"
            )
        })?
    };
    let value = Arc::new(make(mapping)?);
    let weak: Weak<dyn Any + Send + Sync> = Arc::downgrade(&(Arc::clone(&value) as Arc<_>));
    live()
        .get_or_insert_with(HashMap::new)
        .insert(handle.key(), weak);
    Ok(value)
}

/// A read-only value shared by every worker of every pool without a copy per worker or per
/// call: encoded once into a sealed memory region, decoded once by each worker process that
/// uses it, and the very same value (one `Arc`) in thread mode.
///
/// Cloning is an `Arc` clone; `Deref` gives the `&T`. Its `Serialize` writes a handle of a
/// few words, not the value, so use it as (or inside) the context of [`crate::Pool::map_with`]
/// (or as any task's argument): a worker process maps the region on first sight, decodes `T`
/// from it once, and keeps it while a handle to it lives there — a call's context stays
/// with its worker until the worker's next `map_with` call, so thirty calls with the same
/// `Shared` context cost one decode per worker. A `Shared` in a task's argument lives only
/// for that task, so each task decodes it again: for large data, make it the context.
///
/// For bytes that should not be decoded at all (an index, a model's weights, a file), use
/// [`SharedBytes`], which a worker reads in place.
///
/// # Where it works
///
/// Linux, in the process that made it and in its local worker processes. A worker opens the
/// region through `/proc/<parent>/fd/<n>` (same user, and the parent dumpable, as it is
/// unless it called `prctl(PR_SET_DUMPABLE, 0)`). A sandboxed pool's workers cannot open
/// `/proc`, and a remote worker is on another host: `map_with` with a context holding a
/// `Shared` then fails every item with a [`crate::TaskError::Codec`] that says so, before
/// sending anything (as an argument, the task's decoding fails the same way). The parent never
/// decodes a handle of a region it did not make (a worker's result holding one it made is an
/// error): nothing a worker wrote is read as shared data.
///
/// Each live region holds one descriptor open in the process that made it, and a worker's
/// mapping counts towards its address space (so towards a pool's `memory_limit`).
///
/// The region is freed when the last handle in the parent drops and each worker that
/// mapped it has let go of it (at its next `map_with` with another context, or when it
/// exits). The seals make it read-only for every process, the parent included: a task
/// that writes to it crashes its worker, and the data stays as it was.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use proctor::Shared;
///
/// fn lookup(table: &Shared<HashMap<String, u32>>, word: String) -> Option<u32> {
///     table.get(&word).copied()
/// }
///
/// # #[cfg(target_os = "linux")] {
/// # proctor::init();
/// let table: HashMap<String, u32> = [("one".to_string(), 1), ("two".to_string(), 2)].into();
/// let table = Shared::new(table).unwrap();
/// let pool = proctor::Pool::processes(2).build().unwrap();
/// for _ in 0..3 {
///     // Encoded once above; each worker decodes it once, whatever the number of calls.
///     let out = pool.map_with(&table, lookup, vec!["two".to_string(), "six".to_string()]);
///     assert_eq!(out, vec![Ok(Some(2)), Ok(None)]);
/// }
/// # }
/// ```
pub struct Shared<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    value: T,
    handle: Handle,
    /// The owner's memfd, open while the value lives (workers open it through it).
    _fd: Option<OwnedFd>,
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        forget(self.handle.key());
    }
}

impl<T: Serialize + Send + Sync + 'static> Shared<T> {
    /// Encodes `value` once (with postcard, as the pool encodes any value) into a new sealed
    /// region, and keeps `value` itself for this process's own use.
    ///
    /// # Errors
    ///
    /// An error of kind `InvalidData` if `value`'s `Serialize` fails, or the system's if the
    /// region cannot be made (out of memory or descriptors).
    pub fn new(value: T) -> std::io::Result<Shared<T>> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
        let len = crate::codec::guarded("Serialize", || {
            crate::wire::encoded_len_capped(&value, usize::MAX)
        })
        .map_err(invalid)?
        .map_err(|e| invalid(crate::codec::ser_error(&value, &e)))?;
        let inner = make_region(
            len,
            false,
            move |buf| {
                let wrote =
                    crate::codec::guarded("Serialize", || crate::wire::write_into(&value, buf));
                (value, wrote)
            },
            |handle, fd, (v, wrote)| match wrote {
                Ok(Ok(n)) if n == len => Ok(Inner {
                    value: v,
                    handle,
                    _fd: Some(fd),
                }),
                Ok(Ok(_)) | Ok(Err(_)) => Err(invalid(
                    "its Serialize wrote other bytes the second time it ran".into(),
                )),
                Err(why) => Err(invalid(why)),
            },
        )?;
        Ok(Shared { inner })
    }
}

impl<T> Shared<T> {
    /// The bytes of the region that holds the value's encoding.
    pub fn encoded_len(&self) -> u64 {
        self.inner.handle.len
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner.value
    }
}

impl<T> AsRef<T> for Shared<T> {
    fn as_ref(&self) -> &T {
        &self.inner.value
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Shared").field(&self.inner.value).finish()
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.value == other.inner.value
    }
}

impl<T> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.with(|f| f.set(true));
        self.inner.handle.serialize(s)
    }
}

impl<'de, T: DeserializeOwned + Send + Sync + 'static> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(d)?;
        if handle.bytes {
            return Err(D::Error::custom(
                "a SharedBytes handle where a Shared was expected",
            ));
        }
        let inner = resolve::<Inner<T>>(&handle, |mapping| {
            let value = postcard::from_bytes::<T>(mapping.bytes())
                .map_err(|e| format!("the shared value did not decode: {e}"))?;
            // The mapping goes: the decoded value is what this worker keeps.
            Ok(Inner {
                value,
                handle,
                _fd: None,
            })
        })
        .map_err(D::Error::custom)?;
        Ok(Shared { inner })
    }
}

/// Read-only bytes shared by every worker without a copy: a sealed memory region that each
/// worker process maps read-only and reads in place (nothing is decoded), so the bytes are
/// in memory once however many workers read them, and reach a worker in the time of an
/// `open` and an `mmap`.
///
/// Everything said of [`Shared`] holds (where it works, how long a region lives, what a
/// worker cannot do to it); `Deref<Target = [u8]>` gives the bytes. Build it in place with
/// [`SharedBytes::with_len`] to avoid even the one copy [`SharedBytes::new`] makes.
///
/// # Examples
///
/// ```
/// use proctor::SharedBytes;
///
/// fn count(data: &SharedBytes, byte: u8) -> usize {
///     data.iter().filter(|&&b| b == byte).count()
/// }
///
/// # #[cfg(target_os = "linux")] {
/// # proctor::init();
/// // 64 MiB written straight into the shared region: no other copy exists.
/// let data = SharedBytes::with_len(64 << 20, |buf| {
///     for (i, b) in buf.iter_mut().enumerate() {
///         *b = (i % 251) as u8;
///     }
/// })
/// .unwrap();
/// let pool = proctor::Pool::processes(2).build().unwrap();
/// let out = pool.map_with(&data, count, vec![0u8, 250]);
/// assert_eq!(out[0], Ok(data.iter().filter(|&&b| b == 0).count()));
/// # }
/// ```
#[derive(Clone)]
pub struct SharedBytes {
    inner: Arc<BytesInner>,
}

struct BytesInner {
    mapping: Mapping,
    handle: Handle,
    _fd: Option<OwnedFd>,
}

impl Drop for BytesInner {
    fn drop(&mut self) {
        forget(self.handle.key());
    }
}

impl SharedBytes {
    /// A region holding a copy of `bytes`.
    ///
    /// # Errors
    ///
    /// The system's, if the region cannot be made (out of memory or descriptors).
    pub fn new(bytes: &[u8]) -> std::io::Result<SharedBytes> {
        SharedBytes::with_len(bytes.len(), |buf| buf.copy_from_slice(bytes))
    }

    /// A region of `len` bytes (zeros until written), which `fill` writes in place before
    /// it is sealed read-only: no other copy of the bytes is made. All `len` bytes take
    /// memory from the start (the pages are made at once, faster than a fault per page).
    ///
    /// # Errors
    ///
    /// The system's, if the region cannot be made (out of memory or descriptors).
    pub fn with_len(len: usize, fill: impl FnOnce(&mut [u8])) -> std::io::Result<SharedBytes> {
        let inner = make_region(len, true, fill, |handle, fd, ()| {
            let mapping = region::map_own(&fd, len)?;
            Ok(BytesInner {
                mapping,
                handle,
                _fd: Some(fd),
            })
        })?;
        Ok(SharedBytes { inner })
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.inner.mapping.bytes()
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.inner.mapping.bytes()
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBytes")
            .field("len", &self.inner.handle.len)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.with(|f| f.set(true));
        self.inner.handle.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = Handle::deserialize(d)?;
        if !handle.bytes {
            return Err(D::Error::custom(
                "a Shared handle where a SharedBytes was expected",
            ));
        }
        let inner = resolve::<BytesInner>(&handle, |mapping| {
            Ok(BytesInner {
                mapping,
                handle,
                _fd: None,
            })
        })
        .map_err(D::Error::custom)?;
        Ok(SharedBytes { inner })
    }
}
