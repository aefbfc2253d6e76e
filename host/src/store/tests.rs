//! Store tests: sessions, names, prefixes, events, checkpoints, the async handle, and a child
//! process killed mid-writes.

use super::*;
use crate::session::{Event, Observed, SessionId, SessionName, SessionOptions, Status};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn new_session(name: &str) -> NewSession {
    NewSession {
        id: SessionId::new(),
        name: SessionName::new(name).unwrap(),
        backend: "test".into(),
        repository: "/src/repo".into(),
        branch: Some("clauderon/x".into()),
        prompt: "fix it".into(),
        options: SessionOptions {
            cpu_limit: Some(crate::session::parse_cpu_limit("2").unwrap()),
            plan_mode: true,
            ..Default::default()
        },
    }
}

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("db.sqlite")).unwrap();
    (dir, db)
}

#[test]
fn insert_get_list_round_trip() {
    let (_d, mut db) = open();
    let n = new_session("alpha");
    let rec = db.insert_session(&n).unwrap();
    assert_eq!(rec.status, Status::Creating);
    assert_eq!(rec.options, n.options);
    assert_eq!(db.get(n.id).unwrap(), rec);
    db.set_instance(
        n.id,
        Some("sb-1"),
        Some(&serde_json::json!({"v":1,"x":"y"})),
    )
    .unwrap();
    let rec = db.get(n.id).unwrap();
    assert_eq!(rec.instance_id.as_deref(), Some("sb-1"));
    assert_eq!(rec.instance_state, Some(serde_json::json!({"v":1,"x":"y"})));
    // Oldest first; sessions made within the same millisecond are ordered by id.
    std::thread::sleep(std::time::Duration::from_millis(3));
    db.insert_session(&new_session("beta")).unwrap();
    let names: Vec<_> = db
        .list(false)
        .unwrap()
        .into_iter()
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
}

#[test]
fn names_are_unique_among_live_sessions() {
    let (_d, mut db) = open();
    let a = new_session("dup");
    db.insert_session(&a).unwrap();
    let e = db.insert_session(&new_session("dup")).unwrap_err();
    assert!(
        matches!(e, StoreError::NameTaken(ref n) if n == "dup"),
        "{e}"
    );
    assert!(e.to_string().contains("choose another --name"));
    let base = SessionName::new("dup").unwrap();
    assert_eq!(db.unique_name(&base).unwrap().as_str(), "dup-2");
    // Deleting frees the name.
    db.apply_event(a.id, Event::DeleteRequested, None).unwrap();
    db.apply_event(a.id, Event::Deleted, None).unwrap();
    assert_eq!(db.unique_name(&base).unwrap().as_str(), "dup");
    db.insert_session(&new_session("dup")).unwrap();
    assert_eq!(db.list(false).unwrap().len(), 1);
    assert_eq!(db.list(true).unwrap().len(), 2);
}

#[test]
fn find_by_name_or_unique_prefix() {
    let (_d, mut db) = open();
    let ids = [
        "aaaa1111-0000-4000-8000-000000000001",
        "aaaa2222-0000-4000-8000-000000000002",
    ];
    for (i, id) in ids.iter().enumerate() {
        let mut n = new_session(&format!("s{i}"));
        n.id = id.parse().unwrap();
        db.insert_session(&n).unwrap();
    }
    assert_eq!(db.find("s1").unwrap().id.to_string(), ids[1]);
    assert_eq!(db.find("AAAA1").unwrap().id.to_string(), ids[0]);
    assert_eq!(db.find(ids[1]).unwrap().name.as_str(), "s1");
    let e = db.find("aaaa").unwrap_err();
    match &e {
        StoreError::Ambiguous { matches, .. } => assert_eq!(matches.len(), 2),
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("matches 2 sessions") && msg.contains("s0") && msg.contains("s1"),
        "{msg}"
    );
    for missing in ["nope", "b", "%", "_", "", "aaaa3"] {
        let e = db.find(missing).unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{missing}: {e}");
    }
    // A session named like a hex prefix is found by name first.
    let mut n = new_session("aaaa");
    n.id = "bbbb0000-0000-4000-8000-000000000003".parse().unwrap();
    db.insert_session(&n).unwrap();
    assert_eq!(db.find("aaaa").unwrap().id, n.id);
}

#[test]
fn status_changes_go_through_the_state_machine_and_log() {
    let (_d, mut db) = open();
    let n = new_session("m");
    db.insert_session(&n).unwrap();
    let c = db.apply_event(n.id, Event::Created, None).unwrap();
    assert_eq!((c.from, c.to), (Status::Creating, Status::Running));
    let e = db
        .apply_event(n.id, Event::WakeRequested, None)
        .unwrap_err();
    assert!(e.to_string().contains("already"), "{e}");
    assert_eq!(db.get(n.id).unwrap().status, Status::Running);
    let c = db
        .apply_event(
            n.id,
            Event::Observed(Observed::Missing),
            Some("sandbox vanished"),
        )
        .unwrap();
    assert_eq!(c.to, Status::Failed);
    assert_eq!(
        db.get(n.id).unwrap().failure_reason.as_deref(),
        Some("sandbox vanished")
    );
    db.apply_event(n.id, Event::WakeRequested, Some("ignored"))
        .unwrap();
    assert_eq!(db.get(n.id).unwrap().failure_reason, None);

    // Observing what the store already knows writes nothing.
    let c = db
        .apply_event(n.id, Event::Observed(Observed::Running), None)
        .unwrap();
    assert_eq!((c.from, c.to), (Status::Waking, Status::Running));
    assert!(c.seq.is_some());
    let c = db
        .apply_event(n.id, Event::Observed(Observed::Running), None)
        .unwrap();
    assert_eq!((c.to, c.seq), (Status::Running, None));

    let events = db.events_since(n.id, 0, 100).unwrap();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e.data["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["creating", "running", "failed", "waking", "running"]
    );
    assert_eq!(events[2].data["reason"], "sandbox vanished");
    let later = db.events_since(n.id, events[1].seq, 100).unwrap();
    assert_eq!(later.len(), 3);
    let seq = db
        .append_event(n.id, "log", &serde_json::json!({"line":"hi"}))
        .unwrap();
    assert!(seq > events[4].seq);
    assert_eq!(
        db.events_since(n.id, events[4].seq, 1).unwrap()[0].kind,
        "log"
    );
    // The newest events, oldest first, with or without the agent's output.
    db.append_event(n.id, "output", &serde_json::json!({"b64": "aGk="}))
        .unwrap();
    let kinds = |v: Vec<EventRecord>| v.into_iter().map(|e| e.kind).collect::<Vec<_>>();
    assert_eq!(
        kinds(db.recent_events(n.id, 2, true).unwrap()),
        ["log", "output"]
    );
    assert_eq!(
        kinds(db.recent_events(n.id, 2, false).unwrap()),
        ["status", "log"]
    );
    let missing = SessionId::new();
    assert!(matches!(
        db.append_event(missing, "log", &serde_json::json!({})),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.apply_event(missing, Event::Created, None),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn checkpoints_and_removal() {
    let (_d, mut db) = open();
    let n = new_session("c");
    db.insert_session(&n).unwrap();
    let cp = db
        .add_checkpoint(&NewCheckpoint {
            session_id: n.id,
            comment: "before refactor".into(),
            git_head: Some("abc123".into()),
            backend_ref: Some("v3".into()),
        })
        .unwrap();
    assert_eq!(db.checkpoints(n.id).unwrap(), vec![cp]);
    db.remove_session(n.id).unwrap();
    assert!(db.checkpoints(n.id).unwrap().is_empty());
    assert!(db.events_since(n.id, 0, 10).unwrap().is_empty());
    assert!(matches!(db.get(n.id), Err(StoreError::NotFound(_))));
    assert!(matches!(
        db.add_checkpoint(&NewCheckpoint {
            session_id: n.id,
            comment: String::new(),
            git_head: None,
            backend_ref: None
        }),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn corrupt_rows_are_reported_not_panicked() {
    let (_d, mut db) = open();
    let n = new_session("bad");
    db.insert_session(&n).unwrap();
    db.connection()
        .execute("UPDATE sessions SET options = '{\"cpu_limit\":0,' ", [])
        .unwrap();
    let e = db.get(n.id).unwrap_err();
    assert!(e.to_string().contains("unreadable"), "{e}");
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db.sqlite");
    let n = new_session("keep");
    {
        let mut db = Db::open(&p).unwrap();
        db.insert_session(&n).unwrap();
        db.apply_event(n.id, Event::Created, None).unwrap();
    }
    let db = Db::open(&p).unwrap();
    assert_eq!(db.get(n.id).unwrap().status, Status::Running);
}

#[tokio::test]
async fn async_handle_works_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.insert_session(new_session(&format!("t{i}")))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.list(false).await.unwrap().len(), 20);
    let r = store.find("t7").await.unwrap();
    store.apply_event(r.id, Event::Created, None).await.unwrap();
    assert_eq!(store.get(r.id).await.unwrap().status, Status::Running);
}

/// The environment variable that turns [`crash_child`] into a writer.
const CRASH_DB_ENV: &str = "CLAUDERON_TEST_CRASH_DB";

/// Runs only as a child of [`killed_writer_loses_nothing_acknowledged`]: writes sessions and
/// events as fast as it can and prints each id after its commit returned.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_DB_ENV) else {
        return;
    };
    let mut db = Db::open(std::path::Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..100_000u32 {
        let n = new_session(&format!("c{i}"));
        db.insert_session(&n).unwrap();
        db.append_event(n.id, "log", &serde_json::json!({"i": i}))
            .unwrap();
        db.apply_event(n.id, Event::Created, None).unwrap();
        use std::io::Write;
        writeln!(out, "ACK {}", n.id).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn killed_writer_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.parse::<SessionId>().unwrap());
            if acked.len() == 200 {
                // SIGKILL: no destructors, no chance to flush anything else.
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 200, "the child stopped before 200 writes");
    let db = Db::open(&path).unwrap();
    for id in &acked {
        let rec = db.get(*id).unwrap();
        assert_eq!(rec.status, Status::Running);
        let ev = db.events_since(*id, 0, 10).unwrap();
        assert_eq!(ev.len(), 3, "every event of {id} survives");
    }
    assert!(db.list(false).unwrap().len() >= acked.len());
}

#[test]
fn branch_and_all_events() {
    let (_d, mut db) = open();
    let a = new_session("a");
    let b = new_session("b");
    db.insert_session(&a).unwrap();
    db.insert_session(&b).unwrap();
    db.set_branch(a.id, Some("clauderon/a-1")).unwrap();
    assert_eq!(
        db.get(a.id).unwrap().branch.as_deref(),
        Some("clauderon/a-1")
    );
    assert!(matches!(
        db.set_branch(SessionId::new(), None),
        Err(StoreError::NotFound(_))
    ));
    let all = db.all_events_since(0, 100).unwrap();
    assert_eq!(
        all.iter().map(|e| e.session_id).collect::<Vec<_>>(),
        [a.id, b.id]
    );
    db.apply_event(b.id, Event::Created, None).unwrap();
    let later = db.all_events_since(all[1].seq, 100).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].session_id, b.id);
    assert_eq!(db.all_events_since(0, 1).unwrap().len(), 1);
}

#[test]
fn the_cache_index_keeps_stores_entries_plans_and_housekeeping() {
    use crate::store::{CacheEntryRecord, CacheStoreRecord};
    use time::macros::datetime;
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&dir.path().join("db.sqlite")).unwrap();
    let t0 = datetime!(2026-01-01 00:00 UTC);
    let store = CacheStoreRecord {
        store_key: "p-0123456789abcdef".into(),
        backend: "sprites".into(),
        project_key: "0123456789abcdef".into(),
        project: "github.com/a/b".into(),
        scope: crate::session::CacheScope::Project,
        session_name: None,
        instance_id: Some("clauderon-cache-p-0123456789abcdef".into()),
        instance_state: Some(serde_json::json!({"v": 1})),
        created_at: t0,
        last_used: t0,
    };
    db.put_cache_store(&store).unwrap();
    assert_eq!(
        db.cache_store(&store.store_key).unwrap(),
        Some(store.clone())
    );
    let entry = |key: &str, at| CacheEntryRecord {
        store_key: store.store_key.clone(),
        key: key.into(),
        kind: "cargo".into(),
        size: 10,
        created_at: at,
        last_used: at,
        base: None,
    };
    db.put_cache_entry(&entry("cargo-a", t0)).unwrap();
    let t1 = datetime!(2026-01-02 00:00 UTC);
    db.put_cache_entry(&entry("cargo-b", t1)).unwrap();
    // The last complete save of a key replaces it whole, here with a layer over another.
    db.put_cache_entry(&CacheEntryRecord {
        size: 20,
        base: Some("cargo-a".into()),
        ..entry("cargo-b", t1)
    })
    .unwrap();
    let es = db.cache_entries(&store.store_key).unwrap();
    assert_eq!(es.len(), 2);
    assert_eq!(es[1].size, 20);
    assert_eq!(es[1].base.as_deref(), Some("cargo-a"));
    assert_eq!(es[0].base, None);
    assert_eq!(
        db.cache_store(&store.store_key).unwrap().unwrap().last_used,
        t1
    );
    let t2 = datetime!(2026-01-03 00:00 UTC);
    db.touch_cache_entry(&store.store_key, "cargo-a", t2)
        .unwrap();
    assert_eq!(db.cache_entries(&store.store_key).unwrap()[0].last_used, t2);
    db.remove_cache_entries(&store.store_key, &["cargo-a".into()])
        .unwrap();
    assert_eq!(db.all_cache_entries().unwrap().len(), 1);
    db.set_cache_meta("last_gc", "x").unwrap();
    assert_eq!(db.cache_meta("last_gc").unwrap().as_deref(), Some("x"));
    // Removing a store removes its entries.
    db.remove_cache_store(&store.store_key).unwrap();
    assert!(db.all_cache_entries().unwrap().is_empty());
    assert!(db.cache_stores().unwrap().is_empty());
}

#[test]
fn retention_keeps_the_newest_events_and_output_of_each_session() {
    let (_d, mut db) = open();
    let (a, b) = (new_session("chatty"), new_session("quiet"));
    db.insert_session(&a).unwrap();
    db.insert_session(&b).unwrap();
    let chunk = serde_json::json!({"b64": "x".repeat(1000)});
    for i in 0..300 {
        db.append_event(a.id, "output", &chunk).unwrap();
        if i % 10 == 0 {
            db.append_event(a.id, "log", &serde_json::json!({"message": i}))
                .unwrap();
        }
    }
    db.append_event(b.id, "output", &chunk).unwrap();
    let quiet = db.event_footprint(b.id).unwrap();
    let r = Retention {
        max_events: 100,
        max_output_bytes: 50 * 1012,
        deleted_for: std::time::Duration::from_secs(60),
    };
    let removed = db.trim_events(a.id, &r).unwrap();
    let (n, bytes) = db.event_footprint(a.id).unwrap();
    assert!(removed > 0);
    assert!(n <= 100, "{n}");
    assert!(bytes <= 50 * 1012, "{bytes}");
    // What is kept is the newest: the last event appended is there.
    let last = db.last_event_seq(a.id).unwrap();
    let kept = db.events_since(a.id, 0, 1000).unwrap();
    assert_eq!(kept.last().unwrap().seq, last);
    assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
    // Output limits: exactly the newest 50 output events (1012 stored bytes each) remain.
    assert_eq!(kept.iter().filter(|e| e.kind == "output").count(), 50);
    // Another session is untouched; trimming again removes nothing.
    assert_eq!(db.event_footprint(b.id).unwrap(), quiet);
    assert_eq!(db.trim_events(a.id, &r).unwrap(), 0);
}

#[test]
fn a_deleted_sessions_events_go_after_the_retention_time() {
    let (_d, mut db) = open();
    let (gone, live) = (new_session("gone"), new_session("live"));
    for s in [&gone, &live] {
        db.insert_session(s).unwrap();
        db.apply_event(s.id, Event::Created, None).unwrap();
        db.append_event(s.id, "log", &serde_json::json!({"message": "hi"}))
            .unwrap();
    }
    db.apply_event(gone.id, Event::DeleteRequested, None)
        .unwrap();
    db.apply_event(gone.id, Event::Deleted, None).unwrap();
    let r = Retention {
        deleted_for: std::time::Duration::from_secs(7 * 24 * 3600),
        ..Retention::default()
    };
    let now = time::OffsetDateTime::now_utc();
    // Deleted just now: kept, at six days later too.
    assert_eq!(db.forget_deleted_events(&r, now).unwrap(), 0);
    assert_eq!(
        db.forget_deleted_events(&r, now + time::Duration::days(6))
            .unwrap(),
        0
    );
    // Eight days later: the deleted session's events go, its row and the live one stay.
    assert!(
        db.forget_deleted_events(&r, now + time::Duration::days(8))
            .unwrap()
            > 0
    );
    assert_eq!(db.event_footprint(gone.id).unwrap().0, 0);
    assert_eq!(db.get(gone.id).unwrap().status, Status::Deleted);
    assert!(db.event_footprint(live.id).unwrap().0 > 0);
}

#[test]
fn sync_state_round_trips_through_its_changes() {
    use crate::sync::{Conflict, SyncState};
    use clauderon_sync::{ContentHash, Entry};
    let (_d, mut db) = open();
    let n = new_session("synced");
    db.insert_session(&n).unwrap();
    db.put_sync_record(
        n.id,
        &SyncRecord {
            worktree: "/w".into(),
            running: true,
            ..SyncRecord::default()
        },
    )
    .unwrap();
    let file = |b: &[u8]| Entry::File {
        hash: ContentHash::of(b),
        size: b.len() as u64,
        exec: false,
    };
    let mut st = SyncState::default();
    for (p, b) in [
        ("a.txt", b"a".as_slice()),
        ("dir/\"quoted\" name.rs", b"q"),
        ("ünï/côde", b"u"),
        ("gone", b"g"),
    ] {
        st.ancestor.insert(p.into(), file(b));
    }
    st.ancestor.insert(
        "link".into(),
        Entry::Link {
            target: "a.txt".into(),
        },
    );
    st.conflicts.insert(
        "c".into(),
        Conflict {
            path: "c".into(),
            local: file(b"l"),
            remote: file(b"r"),
        },
    );
    db.put_sync_state(n.id, &st).unwrap();
    assert_eq!(db.sync_state(n.id).unwrap(), st);
    // One removed, one changed, one added, the conflict settled: only those rows move.
    let before = st.clone();
    st.ancestor.remove("gone");
    st.ancestor.insert("a.txt".into(), file(b"changed"));
    st.ancestor.insert("new/file".into(), file(b"n"));
    st.conflicts.clear();
    st.new_epoch = false;
    db.put_sync_state_since(n.id, &before, &st).unwrap();
    assert_eq!(db.sync_state(n.id).unwrap(), st);
    assert_eq!(db.sync_path_count(n.id).unwrap(), 5);
}
