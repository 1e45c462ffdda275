//! A backend-level check of [`ContainerSpec::attach_output`]: the first read after
//! the start is the attach made before it, not the engine's logs endpoint.

use futures::StreamExt;

use crate::{ContainerSpec, DynScheduler, OutputStream};

/// Starts `spec` (a busybox image, with the backend's test labels) attached, on a
/// scheduler whose engine keeps no logs (the `none` log driver), and asserts that the
/// first read has every byte of both streams while a read of the logs endpoint
/// fails. Removes the container; the caller asserts nothing of its labels is left.
///
/// # Panics
/// When the backend misbehaves.
pub async fn first_read_comes_from_the_attach(s: &DynScheduler, spec: ContainerSpec) {
    let spec = spec
        .command(["sh", "-c", "seq 1 20000; echo err >&2; echo last"])
        .attach_output(true);
    let id = s.start(spec).await.expect("the start");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut first = s.logs(&id).await.expect("the first read");
    while let Some(chunk) = first.next().await {
        let chunk = chunk.expect("an attached chunk");
        match chunk.stream {
            OutputStream::Stdout => out.extend_from_slice(&chunk.data),
            OutputStream::Stderr => err.extend_from_slice(&chunk.data),
        }
    }
    let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out), format!("{expected}last\n"));
    assert_eq!(String::from_utf8_lossy(&err), "err\n");
    assert!(s.wait(&id).await.expect("the wait").success());
    // The logs endpoint, read now, has none of it.
    if let Ok(mut again) = s.logs(&id).await {
        let next = again.next().await;
        assert!(
            matches!(next, Some(Err(_))),
            "the logs endpoint served {next:?} under the none driver"
        );
    }
    s.remove(&id, true).await.expect("the removal");
}
