//! `cargo bench -p clauderon --bench store_list`: listing 10,000 sessions through the store
//! (`Db::list`: SELECT plus parsing ids, names, options JSON, status, instance state) against
//! a baseline measured in the same run: a raw rusqlite SELECT of the same rows into tuples of
//! strings, with no parsing. The ratio is the store's own overhead.

use clauderon::session::{BuildCache, SessionId, SessionName, SessionOptions};
use clauderon::store::{Db, NewSession};
use std::time::{Duration, Instant};

const SESSIONS: usize = 10_000;
const ROUNDS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

type RawRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

fn raw_select(db: &Db) -> Vec<RawRow> {
    let mut stmt = db
        .connection()
        .prepare_cached(
            "SELECT id, name, backend, repository, branch, prompt, options, status, instance_id, \
             instance_state, failure_reason, created_at, updated_at FROM sessions \
             WHERE status != 'deleted' ORDER BY created_at, id",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
        ))
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = Db::open(&dir.path().join("db.sqlite")).expect("open");
    // Setup only: per-commit fsyncs would make filling 10,000 rows take minutes.
    db.connection()
        .pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    let setup = Instant::now();
    for i in 0..SESSIONS {
        let id = SessionId::new();
        db.insert_session(&NewSession {
            id,
            name: SessionName::new(&format!("session-{i}")).expect("name"),
            backend: "test".into(),
            repository: format!("/home/me/src/repo-{}", i % 50),
            branch: Some(format!("clauderon/session-{i}")),
            prompt: "Fix the flaky test in the store and add a regression test".into(),
            options: SessionOptions {
                cpu_limit: Some(clauderon::session::parse_cpu_limit("2").expect("cpus")),
                memory_limit: Some("2G".parse().expect("size")),
                build_cache: vec![BuildCache::Cargo, BuildCache::Npm],
                model: Some("opus".into()),
                ..Default::default()
            },
        })
        .expect("insert");
        db.set_instance(
            id,
            Some(&format!("sb-{i}")),
            Some(&serde_json::json!({"v": 1, "sprite": format!("clauderon-{i}"), "url": "https://x"})),
        )
        .expect("instance");
    }
    println!(
        "store_list: {SESSIONS} sessions inserted in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    // Warm both paths (page cache, statement cache) before measuring, then alternate them so
    // any drift on a shared machine hits both equally.
    assert_eq!(db.list(false).expect("list").len(), SESSIONS);
    assert_eq!(raw_select(&db).len(), SESSIONS);
    let (mut store_t, mut raw_t) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let rows = raw_select(&db);
        raw_t.push(t.elapsed());
        std::hint::black_box(rows);
        let t = Instant::now();
        let rows = db.list(false).expect("list");
        store_t.push(t.elapsed());
        std::hint::black_box(rows);
    }
    let (s, r) = (median(store_t), median(raw_t));
    println!(
        "store_list: Db::list of {SESSIONS} sessions: median {:.2} ms over {ROUNDS} rounds",
        s.as_secs_f64() * 1e3
    );
    println!(
        "store_list: baseline raw rusqlite SELECT of the same rows: median {:.2} ms",
        r.as_secs_f64() * 1e3
    );
    println!(
        "store_list: ratio store/baseline = {:.2}x",
        s.as_secs_f64() / r.as_secs_f64()
    );
}
