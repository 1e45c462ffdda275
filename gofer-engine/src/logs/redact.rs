//! Secret values kept out of a process's own logs: a [`SecretRegistry`] of every value
//! the live runs hold (and, for a grace period, of runs that ended), and writers that
//! pass every byte through the same streaming [`Masker`] as task logs
//! ([`SecretRegistry::writer`] for any [`io::Write`], [`SecretRegistry::make_writer`]
//! for a `tracing_subscriber::fmt` layer).
//!
//! What it cannot cover: a subscriber or layer that does not format through a writer
//! (one that ships structured fields to a collector, say) never reaches it, so such a
//! layer must not see records of the client libraries' body-logging targets (see
//! [`CLIENT_BODY_TARGETS`]); and a value split across two separate records (two
//! events) is masked in neither, as each record is masked on its own.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tracing_subscriber::fmt::MakeWriter;

use crate::logs::mask::{MaskPatterns, Masker};

/// How long a run's values stay registered after it ended, so a record printed late
/// (a backend's last debug line, a retried removal) is still masked.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(600);

/// Targets of client libraries that log request or response bodies (which hold every
/// container environment value) at `debug` or `trace`: bollard (Docker, Swarm),
/// podman-api and containers-api (Podman), hyper, h2 and tonic (HTTP and gRPC). A host
/// keeps them at `info` unless asked for by name; the masking writers mask what they
/// print either way.
pub const CLIENT_BODY_TARGETS: &[&str] = &[
    "bollard",
    "podman_api",
    "containers_api",
    "hyper",
    "hyper_util",
    "h2",
    "tonic",
];

/// `filter` (a `tracing_subscriber::EnvFilter` spec, `RUST_LOG`'s syntax) with every
/// [`CLIENT_BODY_TARGETS`] target it does not name capped at `info`, when its default
/// level (a directive without a target) is `debug` or `trace`; a quieter filter is
/// returned as it is. So `trace` means "everything but request bodies", and
/// `trace,bollard=trace` asks for bollard's bodies by name.
///
/// ```
/// let f = gofer_engine::cap_client_targets("trace");
/// assert!(f.starts_with("trace,") && f.contains(",bollard=info"));
/// assert!(!gofer_engine::cap_client_targets("debug,bollard=trace").contains("bollard=info"));
/// assert_eq!(gofer_engine::cap_client_targets("warn,gofer=debug"), "warn,gofer=debug");
/// ```
pub fn cap_client_targets(filter: &str) -> String {
    let mut spec = filter.trim().to_string();
    let loud_default = spec.split(',').any(|d| {
        let d = d.trim().to_ascii_lowercase();
        !d.contains('=') && matches!(d.as_str(), "debug" | "trace")
    });
    if !loud_default {
        return spec;
    }
    for target in CLIENT_BODY_TARGETS {
        let named = spec.split(',').any(|d| {
            let t = d.split(['=', '[']).next().unwrap_or("").trim();
            t == *target || t.starts_with(&format!("{target}::"))
        });
        if !named {
            spec.push_str(&format!(",{target}=info"));
        }
    }
    spec
}

struct Entry {
    id: u64,
    values: Vec<SecretString>,
    /// Set when the registration ended: the values go after this.
    expires: Option<Instant>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    entries: Vec<Entry>,
    /// The patterns of every entry, rebuilt when an entry changes.
    patterns: Arc<MaskPatterns>,
    /// Bumped on every change, so a long-lived writer knows to take new patterns.
    generation: u64,
}

impl Registry {
    fn changed(&mut self) {
        self.patterns = Arc::new(MaskPatterns::new(
            self.entries.iter().flat_map(|e| e.values.iter()),
        ));
        self.generation += 1;
    }

    fn expire(&mut self, now: Instant) {
        let before = self.entries.len();
        self.entries.retain(|e| e.expires.is_none_or(|at| at > now));
        if self.entries.len() != before {
            self.changed();
        }
    }
}

/// Every secret value a process's logs must not show: what the engine's live runs
/// hold, and for [`DEFAULT_GRACE`] after a run ended, what it held. Cheap to clone;
/// clones share the values.
///
/// ```
/// use std::io::Write;
/// use gofer_engine::SecretRegistry;
///
/// let registry = SecretRegistry::new();
/// let run = registry.register(["hunter2-token".to_string().into()]);
/// let mut out = Vec::new();
/// {
///     let mut w = registry.writer(&mut out);
///     write!(w, "request body: {{\"Env\":[\"PW=hunter2-token\"]}}\n").unwrap();
/// }
/// let text = String::from_utf8(out).unwrap();
/// assert!(!text.contains("hunter2-token") && text.contains("[MASKED]"), "{text}");
/// drop(run); // the run ended: its values stay masked for the grace period
/// ```
#[derive(Clone)]
pub struct SecretRegistry {
    inner: Arc<Mutex<Registry>>,
    grace: Duration,
}

impl std::fmt::Debug for SecretRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.lock();
        f.debug_struct("SecretRegistry")
            .field("registrations", &r.entries.len())
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Default for SecretRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretRegistry {
    /// An empty registry with [`DEFAULT_GRACE`].
    pub fn new() -> Self {
        Self::with_grace(DEFAULT_GRACE)
    }

    /// An empty registry whose ended registrations stay for `grace`.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            inner: Arc::default(),
            grace,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers values (a run's); more can be added to the registration, and they
    /// stay for the grace period once it is dropped.
    pub fn register(&self, values: impl IntoIterator<Item = SecretString>) -> Registration {
        let mut r = self.lock();
        let id = r.next;
        r.next += 1;
        r.entries.push(Entry {
            id,
            values: values.into_iter().collect(),
            expires: None,
        });
        r.changed();
        Registration {
            registry: self.clone(),
            id,
        }
    }

    /// The patterns of every value registered now (values past their grace dropped).
    fn patterns(&self) -> (Arc<MaskPatterns>, u64) {
        let mut r = self.lock();
        r.expire(Instant::now());
        (r.patterns.clone(), r.generation)
    }

    /// `text` with every registered value masked (also base64-encoded, and each line
    /// of a multi-line value).
    pub fn mask(&self, text: &str) -> String {
        crate::logs::mask::mask_str(&self.patterns().0, text)
    }

    /// Wraps `inner`: every byte written goes through the masker first. Bytes that may
    /// be the start of a value are held back until the next write shows they are not
    /// (whole lines never wait when no value spans lines); dropping the writer, or
    /// [`MaskingWriter::finish`], writes what is held back.
    pub fn writer<W: io::Write>(&self, inner: W) -> MaskingWriter<W> {
        MaskingWriter::new(inner, self.clone())
    }

    /// Wraps a `tracing_subscriber` writer maker: each record is masked whole before it
    /// reaches `inner`'s writer.
    ///
    /// ```
    /// use gofer_engine::SecretRegistry;
    /// let registry = SecretRegistry::new();
    /// let subscriber = tracing_subscriber::fmt()
    ///     .with_writer(registry.make_writer(std::io::stderr))
    ///     .finish();
    /// # drop(subscriber);
    /// ```
    pub fn make_writer<M>(&self, inner: M) -> MaskingMakeWriter<M> {
        MaskingMakeWriter {
            inner,
            registry: self.clone(),
        }
    }
}

/// A run's values in a [`SecretRegistry`]; dropped, they stay for the grace period.
pub struct Registration {
    registry: SecretRegistry,
    id: u64,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

impl Registration {
    /// Adds values.
    pub fn add(&self, values: impl IntoIterator<Item = SecretString>) {
        let mut r = self.registry.lock();
        let mut added = false;
        if let Some(e) = r.entries.iter_mut().find(|e| e.id == self.id) {
            let before = e.values.len();
            e.values.extend(values);
            added = e.values.len() != before;
        }
        if added {
            r.changed();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let expires = Instant::now().checked_add(self.registry.grace);
        let mut r = self.registry.lock();
        if let Some(e) = r.entries.iter_mut().find(|e| e.id == self.id) {
            // A grace too long to represent keeps the values for good.
            e.expires = expires;
        }
    }
}

/// An [`io::Write`] whose bytes are masked before they reach the writer inside; see
/// [`SecretRegistry::writer`].
pub struct MaskingWriter<W: io::Write> {
    inner: Option<W>,
    registry: SecretRegistry,
    masker: Masker,
    generation: u64,
    out: Vec<u8>,
}

impl<W: io::Write> MaskingWriter<W> {
    fn new(inner: W, registry: SecretRegistry) -> Self {
        let (patterns, generation) = registry.patterns();
        Self {
            inner: Some(inner),
            masker: Masker::new((*patterns).clone()),
            registry,
            generation,
            out: Vec::new(),
        }
    }

    /// Writes what is held back and returns the writer inside.
    ///
    /// # Errors
    /// The inner writer's.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain()?;
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("the masking writer was already finished"))
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.clear();
        self.masker.finish(&mut self.out);
        if let Some(w) = self.inner.as_mut() {
            w.write_all(&self.out)?;
            w.flush()?;
        }
        Ok(())
    }
}

impl<W: io::Write> io::Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (patterns, generation) = self.registry.patterns();
        if generation != self.generation {
            self.masker.set_patterns((*patterns).clone());
            self.generation = generation;
        }
        self.out.clear();
        self.masker.push(buf, &mut self.out);
        if let Some(w) = self.inner.as_mut() {
            w.write_all(&self.out)?;
        }
        Ok(buf.len())
    }

    /// Flushes the writer inside; bytes held back (a possible start of a value) stay
    /// until the next write or the end.
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl<W: io::Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.drain();
        }
    }
}

/// A `tracing_subscriber` writer maker whose writers mask; see
/// [`SecretRegistry::make_writer`].
#[derive(Debug, Clone)]
pub struct MaskingMakeWriter<M> {
    inner: M,
    registry: SecretRegistry,
}

impl<'a, M> MakeWriter<'a> for MaskingMakeWriter<M>
where
    M: MakeWriter<'a>,
{
    type Writer = MaskingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter::new(self.inner.make_writer(), self.registry.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn secret(s: &str) -> SecretString {
        s.to_string().into()
    }

    fn through(registry: &SecretRegistry, writes: &[&[u8]]) -> String {
        let mut out = Vec::new();
        {
            let mut w = registry.writer(&mut out);
            for b in writes {
                w.write_all(b).unwrap();
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_value_split_across_writes_and_its_base64_are_masked() {
        let registry = SecretRegistry::new();
        let _run = registry.register([secret("s3cret-value")]);
        let text = through(
            &registry,
            &[b"a s3cr", b"et-value b\n", b"c3NjcmV0LXZhbHVl?\n"],
        );
        assert!(!text.contains("s3cret-value"), "{text}");
        assert_eq!(text.matches("[MASKED]").count(), 1, "{text}");
        let b64 = through(&registry, &[b"enc czNjcmV0LXZhbHVl\n"]);
        assert!(
            !b64.contains("czNjcmV0LXZhbHVl") && b64.contains("[MASKED]"),
            "{b64}"
        );
    }

    #[test]
    fn values_added_later_are_masked_by_a_writer_already_open() {
        let registry = SecretRegistry::new();
        let run = registry.register([]);
        let mut out = Vec::new();
        {
            let mut w = registry.writer(&mut out);
            w.write_all(b"before\n").unwrap();
            run.add([secret("late-token-1")]);
            w.write_all(b"after late-token-1\n").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "before\nafter [MASKED]\n");
    }

    #[test]
    fn an_ended_run_stays_masked_for_its_grace_then_goes() {
        let long = SecretRegistry::with_grace(Duration::from_secs(3600));
        drop(long.register([secret("kept-value")]));
        assert_eq!(long.mask("kept-value"), "[MASKED]");
        let none = SecretRegistry::with_grace(Duration::ZERO);
        drop(none.register([secret("gone-value")]));
        assert_eq!(none.mask("gone-value"), "gone-value");
        // A grace too long to represent never ends.
        let forever = SecretRegistry::with_grace(Duration::MAX);
        drop(forever.register([secret("forever-1")]));
        assert_eq!(forever.mask("forever-1"), "[MASKED]");
    }

    #[test]
    fn a_subscriber_record_is_masked_whole() {
        let registry = SecretRegistry::new();
        let _run = registry.register([secret("in-a-field-9")]);
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(registry.make_writer(move || Captured(sink.clone())))
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "bollard::docker", body = "{\"Env\":[\"X=in-a-field-9\"]}", "request");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("request") && text.contains("[MASKED]"),
            "{text}"
        );
        assert!(!text.contains("in-a-field-9"), "{text}");
    }

    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
