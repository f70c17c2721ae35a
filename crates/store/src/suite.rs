//! The backend-agnostic test suite of [`Store`]: every backend runs the same checks (built for this crate's tests
//! and, for other crates' backends, with the `test-suite` feature).
//!
//! Each check takes a fresh, empty store and panics on failure. [`run_all`] runs them all; [`CHECKS`] lists them by
//! name so a backend can give each its own `#[test]`. Watches are read through a private tokio runtime.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::{Event, EventKind, ListOptions, Revision, Store, StoreError, Watch};

/// A named check.
pub type Check = fn(Arc<dyn Store>);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("create_get_update_delete", create_get_update_delete),
    ("compare_and_swap_conflicts", compare_and_swap_conflicts),
    ("concurrent_conflicting_updates", concurrent_conflicting_updates),
    ("list_prefix_limit_start_after", list_prefix_limit_start_after),
    ("list_at_old_revision", list_at_old_revision),
    ("watch_replays_then_goes_live", watch_replays_then_goes_live),
    (
        "watch_switchover_has_no_gap_or_duplicate",
        watch_switchover_has_no_gap_or_duplicate,
    ),
    ("watch_prefix_ignores_other_keys", watch_prefix_ignores_other_keys),
    (
        "watch_from_current_revision_delivers_only_new_events",
        watch_from_current_revision_delivers_only_new_events,
    ),
    ("compaction", compaction),
];

/// Runs every check, each on a fresh store from `make`.
pub fn run_all(make: &dyn Fn() -> Arc<dyn Store>) {
    for (name, check) in CHECKS {
        tracing::info!(check = name, "store suite");
        check(make());
    }
}

/// How long a check waits for an expected event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime for the suite")
}

/// The next event of `w`, failing the check on a timeout, an error or the end of the watch.
fn next_event(rt: &tokio::runtime::Runtime, w: &mut Watch) -> Event {
    match rt.block_on(async { tokio::time::timeout(EVENT_TIMEOUT, w.next()).await }) {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no event within {EVENT_TIMEOUT:?}"),
    }
}

/// Asserts that no event arrives within a short while.
fn assert_quiet(rt: &tokio::runtime::Runtime, w: &mut Watch) {
    if let Ok(ev) = rt.block_on(async { tokio::time::timeout(Duration::from_millis(200), w.next()).await }) {
        panic!("unexpected watch item: {ev:?}");
    }
}

fn keys(items: &[crate::KeyValue]) -> Vec<&str> {
    items.iter().map(|kv| kv.key.as_str()).collect()
}

pub fn create_get_update_delete(store: Arc<dyn Store>) {
    assert_eq!(store.current_revision().unwrap(), 0);
    assert!(store.get("/a").unwrap().is_none());
    let r1 = store.create("/a", b"one".to_vec()).unwrap();
    assert!(r1 > 0);
    assert_eq!(store.current_revision().unwrap(), r1);
    let kv = store.get("/a").unwrap().unwrap();
    assert_eq!(
        (
            kv.key.as_str(),
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision
        ),
        ("/a", &b"one"[..], r1, r1)
    );
    assert!(matches!(store.create("/a", b"again".to_vec()), Err(StoreError::AlreadyExists { key }) if key == "/a"));

    let r2 = store.update("/a", b"two".to_vec(), r1).unwrap();
    assert!(r2 > r1);
    let kv = store.get("/a").unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"two"[..], r1, r2)
    );

    assert!(matches!(store.update("/missing", vec![], 1), Err(StoreError::NotFound { key }) if key == "/missing"));
    assert!(matches!(
        store.delete("/missing", None),
        Err(StoreError::NotFound { .. })
    ));

    let (r3, last) = store.delete("/a", None).unwrap();
    assert!(r3 > r2);
    assert_eq!(
        (last.value.as_slice(), last.create_revision, last.mod_revision),
        (&b"two"[..], r1, r2)
    );
    assert!(store.get("/a").unwrap().is_none());
    assert!(matches!(
        store.update("/a", vec![], r2),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.current_revision().unwrap(), r3);

    // Re-creating starts a new life: a new create_revision.
    let r4 = store.create("/a", b"three".to_vec()).unwrap();
    let kv = store.get("/a").unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
    // Rejected writes consume no revision.
    assert_eq!(store.current_revision().unwrap(), r4);
}

pub fn compare_and_swap_conflicts(store: Arc<dyn Store>) {
    let r1 = store.create("/k", b"v1".to_vec()).unwrap();
    let r2 = store.update("/k", b"v2".to_vec(), r1).unwrap();
    match store.update("/k", b"stale".to_vec(), r1) {
        Err(StoreError::Conflict {
            key,
            expected,
            current: Some(cur),
        }) => {
            assert_eq!(
                (key.as_str(), expected, cur.mod_revision, cur.value.as_slice()),
                ("/k", r1, r2, &b"v2"[..])
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    match store.delete("/k", Some(r1)) {
        Err(StoreError::Conflict {
            expected,
            current: Some(cur),
            ..
        }) => assert_eq!((expected, cur.mod_revision), (r1, r2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get("/k").unwrap().unwrap().value, b"v2");
    let (r3, last) = store.delete("/k", Some(r2)).unwrap();
    assert!(r3 > r2);
    assert_eq!(last.mod_revision, r2);
}

pub fn concurrent_conflicting_updates(store: Arc<dyn Store>) {
    const THREADS: usize = 16;
    let r1 = store.create("/race", b"0".to_vec()).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                store.update("/race", format!("{i}").into_bytes(), r1)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<Revision> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(winners.len(), 1, "exactly one update wins: {results:?}");
    for r in &results {
        match r {
            Ok(_) => {}
            Err(StoreError::Conflict {
                expected,
                current: Some(cur),
                ..
            }) => {
                assert_eq!(*expected, r1);
                assert_eq!(cur.mod_revision, winners[0]);
            }
            Err(e) => panic!("expected a conflict, got {e}"),
        }
    }
    assert_eq!(store.current_revision().unwrap(), winners[0]);
}

pub fn list_prefix_limit_start_after(store: Arc<dyn Store>) {
    for i in 1..=9 {
        store.create(&format!("/a/{i}"), vec![i as u8]).unwrap();
    }
    store.create("/ab/x", vec![]).unwrap();
    store.create("/b/1", vec![]).unwrap();
    store.create("/", vec![]).unwrap();
    let rev = store.current_revision().unwrap();

    let all = store.list("/a/", &ListOptions::default()).unwrap();
    assert_eq!(keys(&all.items), (1..=9).map(|i| format!("/a/{i}")).collect::<Vec<_>>());
    assert_eq!((all.revision, all.remaining), (rev, 0));
    assert_eq!(all.items[2].value, vec![3]);

    let page1 = store
        .list(
            "/a/",
            &ListOptions {
                limit: 4,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(keys(&page1.items), ["/a/1", "/a/2", "/a/3", "/a/4"]);
    assert_eq!(page1.remaining, 5);
    let page2 = store
        .list(
            "/a/",
            &ListOptions {
                limit: 4,
                start_after: Some("/a/4".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(keys(&page2.items), ["/a/5", "/a/6", "/a/7", "/a/8"]);
    assert_eq!(page2.remaining, 1);
    let page3 = store
        .list(
            "/a/",
            &ListOptions {
                limit: 4,
                start_after: Some("/a/8".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((keys(&page3.items), page3.remaining), (vec!["/a/9"], 0));
    let exact = store
        .list(
            "/a/",
            &ListOptions {
                limit: 9,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((exact.items.len(), exact.remaining), (9, 0));
    // A start_after before the prefix starts at the prefix; one after it yields nothing.
    let before = store
        .list(
            "/a/",
            &ListOptions {
                start_after: Some("/".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(before.items.len(), 9);
    let after = store
        .list(
            "/a/",
            &ListOptions {
                start_after: Some("/a/9".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(after.items.is_empty());

    assert_eq!(
        keys(&store.list("/a", &ListOptions::default()).unwrap().items).len(),
        10
    );
    assert_eq!(store.list("", &ListOptions::default()).unwrap().items.len(), 12);
    assert!(store.list("/c/", &ListOptions::default()).unwrap().items.is_empty());
}

pub fn list_at_old_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/p/1", b"a".to_vec()).unwrap();
    let r2 = store.create("/p/2", b"b".to_vec()).unwrap();
    let r3 = store.update("/p/1", b"a2".to_vec(), r1).unwrap();
    let (r4, _) = store.delete("/p/2", None).unwrap();
    let r5 = store.create("/p/3", b"c".to_vec()).unwrap();
    store.create("/q/1", b"x".to_vec()).unwrap();
    let at = |rev: Revision| {
        store
            .list(
                "/p/",
                &ListOptions {
                    revision: Some(rev),
                    ..Default::default()
                },
            )
            .unwrap()
    };

    let l = at(r1);
    assert_eq!((keys(&l.items), l.revision), (vec!["/p/1"], r1));
    let l = at(r2);
    assert_eq!(keys(&l.items), ["/p/1", "/p/2"]);
    assert_eq!((l.items[0].value.as_slice(), l.items[0].mod_revision), (&b"a"[..], r1));
    let l = at(r3);
    assert_eq!(keys(&l.items), ["/p/1", "/p/2"]);
    assert_eq!(
        (
            l.items[0].value.as_slice(),
            l.items[0].mod_revision,
            l.items[0].create_revision
        ),
        (&b"a2"[..], r3, r1)
    );
    assert_eq!(keys(&at(r4).items), ["/p/1"]);
    assert_eq!(keys(&at(r5).items), ["/p/1", "/p/3"]);
    let l = store
        .list(
            "/p/",
            &ListOptions {
                revision: Some(r2),
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((keys(&l.items), l.remaining), (vec!["/p/1"], 1));
    let l = store
        .list(
            "/p/",
            &ListOptions {
                revision: Some(r3),
                limit: 1,
                start_after: Some("/p/1".into()),
            },
        )
        .unwrap();
    assert_eq!((keys(&l.items), l.remaining), (vec!["/p/2"], 0));
    let current = store.current_revision().unwrap();
    assert_eq!(at(current).revision, current);
    assert!(matches!(
        store.list("/p/", &ListOptions { revision: Some(current + 1), ..Default::default() }),
        Err(StoreError::FutureRevision { requested, current: c }) if requested == current + 1 && c == current
    ));
}

pub fn watch_replays_then_goes_live(store: Arc<dyn Store>) {
    let rt = runtime();
    let r1 = store.create("/w/a", b"1".to_vec()).unwrap();
    let r2 = store.update("/w/a", b"2".to_vec(), r1).unwrap();
    let (r3, _) = store.delete("/w/a", None).unwrap();
    // Opened from inside the runtime: watch must return at once.
    let mut w = rt.block_on(async { store.watch("/w/", 0) }).unwrap();
    let ev = next_event(&rt, &mut w);
    assert_eq!(
        (ev.kind, ev.revision(), ev.kv.value.as_slice(), ev.prev.clone()),
        (EventKind::Created, r1, &b"1"[..], None)
    );
    let ev = next_event(&rt, &mut w);
    assert_eq!(
        (ev.kind, ev.revision(), ev.kv.create_revision),
        (EventKind::Updated, r2, r1)
    );
    let prev = ev.prev.unwrap();
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"1"[..], r1));
    let ev = next_event(&rt, &mut w);
    assert_eq!(
        (ev.kind, ev.revision(), ev.kv.value.as_slice()),
        (EventKind::Deleted, r3, &b"2"[..])
    );
    assert_eq!(ev.prev.map(|p| p.mod_revision), Some(r2));
    assert_quiet(&rt, &mut w);

    let r4 = store.create("/w/b", b"live".to_vec()).unwrap();
    let ev = next_event(&rt, &mut w);
    assert_eq!(
        (ev.kind, ev.revision(), ev.kv.key.as_str()),
        (EventKind::Created, r4, "/w/b")
    );

    // From the middle of the history.
    let mut w2 = store.watch("/w/", r2).unwrap();
    assert_eq!(next_event(&rt, &mut w2).revision(), r3);
    assert_eq!(next_event(&rt, &mut w2).revision(), r4);
    let r5 = store.update("/w/b", b"live2".to_vec(), r4).unwrap();
    assert_eq!(next_event(&rt, &mut w2).revision(), r5);
    assert_eq!(next_event(&rt, &mut w).revision(), r5);
}

pub fn watch_switchover_has_no_gap_or_duplicate(store: Arc<dyn Store>) {
    const WRITES: i64 = 600;
    const WATCHES: usize = 12;
    let rt = runtime();
    let first = store.create("/s/seed", vec![]).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut last = 0;
            for i in 0..WRITES {
                last = store.create(&format!("/s/{i:05}"), vec![0; 64]).unwrap();
            }
            last
        })
    };
    // Open watches while the writes go on, each from a recent and from an older revision.
    let mut watches = Vec::new();
    for i in 0..WATCHES {
        let current = store.current_revision().unwrap();
        let after = if i % 2 == 0 { current } else { (current - 50).max(first) };
        watches.push((after, store.watch("/s/", after).unwrap()));
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = writer.join().unwrap();
    for (after, mut w) in watches {
        let mut expected = after + 1;
        while expected <= last {
            let ev = next_event(&rt, &mut w);
            assert_eq!(ev.revision(), expected, "watch after {after}: gap or duplicate");
            assert_eq!(ev.kind, EventKind::Created);
            expected += 1;
        }
        assert_quiet(&rt, &mut w);
    }
}

pub fn watch_prefix_ignores_other_keys(store: Arc<dyn Store>) {
    let rt = runtime();
    store.create("/x/old", vec![]).unwrap();
    store.create("/y/old", vec![]).unwrap();
    let mut w = store.watch("/x/", 0).unwrap();
    store.create("/xy", vec![]).unwrap();
    store.create("/y/new", vec![]).unwrap();
    let r = store.create("/x/new", vec![]).unwrap();
    let seen: Vec<String> = (0..2).map(|_| next_event(&rt, &mut w).kv.key).collect();
    assert_eq!(seen, ["/x/old", "/x/new"]);
    assert_eq!(store.get("/x/new").unwrap().unwrap().mod_revision, r);
    assert_quiet(&rt, &mut w);
}

pub fn watch_from_current_revision_delivers_only_new_events(store: Arc<dyn Store>) {
    let rt = runtime();
    for i in 0..5 {
        store.create(&format!("/n/{i}"), vec![]).unwrap();
    }
    let current = store.current_revision().unwrap();
    let mut w = store.watch("/n/", current).unwrap();
    assert_quiet(&rt, &mut w);
    let r = store.create("/n/new", vec![]).unwrap();
    let ev = next_event(&rt, &mut w);
    assert_eq!((ev.revision(), ev.kv.key.as_str()), (r, "/n/new"));
    // A watch after the current revision starts when the store gets there.
    let mut ahead = store.watch("/n/", r + 1).unwrap();
    store.create("/n/skipped", vec![]).unwrap();
    let r3 = store.create("/n/seen", vec![]).unwrap();
    assert_eq!(next_event(&rt, &mut ahead).revision(), r3);
}

pub fn compaction(store: Arc<dyn Store>) {
    let rt = runtime();
    assert_eq!(store.compacted_revision().unwrap(), 0);
    let r1 = store.create("/c/keep", b"k1".to_vec()).unwrap();
    let r2 = store.update("/c/keep", b"k2".to_vec(), r1).unwrap();
    let r3 = store.create("/c/gone", b"g".to_vec()).unwrap();
    let (r4, _) = store.delete("/c/gone", None).unwrap();
    let r5 = store.create("/c/late", b"l1".to_vec()).unwrap();
    let r6 = store.update("/c/late", b"l2".to_vec(), r5).unwrap();
    let r7 = store.update("/c/keep", b"k3".to_vec(), r2).unwrap();
    let _ = r3;

    store.compact(r5).unwrap();
    assert_eq!(store.compacted_revision().unwrap(), r5);
    // Compacting to an older point is a no-op; to the future, an error.
    store.compact(r2).unwrap();
    assert_eq!(store.compacted_revision().unwrap(), r5);
    assert!(matches!(store.compact(r7 + 10), Err(StoreError::FutureRevision { .. })));

    assert!(matches!(
        store.list("/c/", &ListOptions { revision: Some(r4), ..Default::default() }),
        Err(StoreError::Compacted { requested, compacted }) if requested == r4 && compacted == r5
    ));
    assert!(
        matches!(store.watch("/c/", r4), Err(StoreError::Compacted { requested, compacted }) if requested == r4 && compacted == r5)
    );

    // The state at the compaction point is still readable.
    let l = store
        .list(
            "/c/",
            &ListOptions {
                revision: Some(r5),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(keys(&l.items), ["/c/keep", "/c/late"]);
    assert_eq!((l.items[0].value.as_slice(), l.items[0].mod_revision), (&b"k2"[..], r2));
    // Latest state untouched.
    let l = store.list("/c/", &ListOptions::default()).unwrap();
    assert_eq!(keys(&l.items), ["/c/keep", "/c/late"]);
    assert_eq!(store.get("/c/keep").unwrap().unwrap().mod_revision, r7);

    // A watch from the compaction point replays what followed it, with previous values.
    let mut w = store.watch("/c/", r5).unwrap();
    let ev = next_event(&rt, &mut w);
    assert_eq!(
        (ev.kind, ev.revision(), ev.prev.map(|p| p.mod_revision)),
        (EventKind::Updated, r6, Some(r5))
    );
    let ev = next_event(&rt, &mut w);
    assert_eq!(
        (ev.kind, ev.revision(), ev.prev.map(|p| p.value)),
        (EventKind::Updated, r7, Some(b"k2".to_vec()))
    );
    assert_quiet(&rt, &mut w);

    // Compacting everything keeps the live keys.
    store.compact(r7).unwrap();
    let l = store
        .list(
            "/c/",
            &ListOptions {
                revision: Some(r7),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(keys(&l.items), ["/c/keep", "/c/late"]);
    let r8 = store.update("/c/late", b"l3".to_vec(), r6).unwrap();
    let ev = next_event(&rt, &mut w);
    assert_eq!((ev.revision(), ev.prev.map(|p| p.mod_revision)), (r8, Some(r6)));
    assert_eq!(store.current_revision().unwrap(), r8);
}
