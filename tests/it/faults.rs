//! Failure paths that only run when something breaks, each with its fault
//! injected through a seam (a SQLite trigger, the writer's flush function, a
//! third party that does not answer in time), never by racing a sleep:
//! the intake writer's row-by-row fallback, a failed WAL flush answered 503,
//! and the wall-clock limits of events and tasks.

use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use recoco_sync::config::{Config, Overrides};
use recoco_sync::ids::{now_ms, EventId};
use recoco_sync::intake::{EventSink, EventWriter};
use recoco_sync::store::events::{EventStatus, NewEvent};
use recoco_sync::store::{self};
use recoco_sync::Service;
use recoco_sync_tests::components;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SECRET, SOURCE};
use recoco_sync_tests::webhook::{envelope, headers, now_secs};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn event(topic: &str) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        source_id: 1,
        status: EventStatus::Ignored,
        topic: Some(topic.into()),
        object_type: Some("projects.Project".into()),
        object_id: Some("1312".into()),
        action: Some("update".into()),
        webhook_uuid: None,
        body: bytes::Bytes::from_static(b"{}"),
        headers: json!({}),
        remote_addr: None,
        error: None,
        received_at: now_ms(),
        filtered: None,
    }
}

#[tokio::test]
async fn a_failed_batch_is_written_row_by_row_so_one_bad_event_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("intake.db");
    let pool = store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    recoco_sync::store::sql::query("INSERT INTO sources (id, code, secrets, created_at, updated_at) VALUES (1, 's', '[]', 0, 0)")
        .execute(&pool)
        .await
        .unwrap();
    // The fault: the database refuses one particular event.
    recoco_sync::store::sql::query(
        "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.topic = 'poison'
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let writer = EventWriter::start(
        &path,
        256,
        recoco_sync::store::DEFAULT_WAL_MAX_BYTES,
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(recoco_sync::store::write_turn::WriteTurn::open(&path).unwrap()),
    )
    .unwrap();

    // Hold the write lock while the writes are queued, so they share batches
    // (the writer waits for the lock with the first batch it took; the rest
    // queue behind it and make the next batch).
    let mut lock = pool.begin().await.unwrap();
    recoco_sync::store::sql::query("UPDATE sources SET updated_at = 1")
        .execute(&mut lock)
        .await
        .unwrap();
    let mut writes: Vec<_> = (0..20)
        .map(|i| {
            let topic = if i == 10 {
                "poison"
            } else {
                "projects.Project/update"
            };
            let writer = writer.clone();
            let w = recoco_sync::intake::writer::Write {
                event: event(topic),
                jobs: Vec::new(),
                // No dedup keys: each of these writes is a new event.
                claim: recoco_sync::intake::dedup::Claim {
                    keys: Vec::new(),
                    expired_before: 0,
                },
            };
            Box::pin(async move { writer.write(w).await })
        })
        .collect();
    for w in &mut writes {
        // One poll hands the write to the writer's channel; the answer waits.
        assert!(matches!(futures::poll!(w.as_mut()), Poll::Pending));
    }
    lock.commit().await.unwrap();
    let results = futures::future::join_all(writes).await;

    for (i, result) in results.iter().enumerate() {
        if i == 10 {
            assert_eq!(result, &Err("storage failed".to_string()));
        } else {
            assert_eq!(
                result,
                &Ok(recoco_sync::intake::writer::Stored::New),
                "write {i}"
            );
        }
    }
    let stored: i64 = recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored, 19,
        "every other event of the failed batch is stored"
    );
    let poisoned: i64 =
        recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM events WHERE topic = 'poison'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(poisoned, 0);
}

/// The fault: the disk refuses to flush the write-ahead log.
fn failing_flush(_wal: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("injected: the disk refused to flush"))
}

#[tokio::test]
async fn a_failed_wal_flush_is_answered_503_so_the_sender_retries() {
    recoco_sync_tests::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("connectors")).unwrap();
    let text = format!(
        "database_url = \"sqlite://{d}/db.sqlite\"\nplugins_dir = \"{d}/connectors\"\nsecret_key_file = \"{d}/secret.key\"\n\
         [queue]\nworkers = 0\n{}",
        source_block(None)
    );
    let config = Config::from_parts(&text, &[], &Overrides::default()).unwrap();
    let database = config.sqlite_path().unwrap();
    let service = Service::start(config).await.unwrap();
    let serve = |sink: EventSink| {
        let router = service.router(sink);
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!(
                "http://{}/api/webhook/{SOURCE}",
                listener.local_addr().unwrap()
            );
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .await
                .unwrap();
            });
            url
        }
    };
    let failing = serve(EventSink::Store(
        EventWriter::start_with_flush(
            &database,
            256,
            recoco_sync::store::DEFAULT_WAL_MAX_BYTES,
            service.wake.clone(),
            service.write_turn().unwrap(),
            failing_flush,
        )
        .unwrap(),
    ))
    .await;
    let healthy = serve(service.event_writer().unwrap()).await;

    let client = reqwest::Client::new();
    let post = |url: String| {
        let client = client.clone();
        async move {
            let body = envelope("projects.Project", "update", json!({"id": 1312}));
            let mut request = client.post(url).body(body.clone());
            for (k, v) in headers(&body, &[SECRET], now_secs()) {
                request = request.header(k, v);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, answer) = post(failing).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["detail"], "Storage unavailable; retry later");
    // The same service with a disk that flushes answers 200 again.
    let (status, answer) = post(healthy).await;
    assert_eq!(status, 200, "{answer}");
}

fn echo_to(target: &Target, limits: &str) -> String {
    format!(
        "{}{FAST_QUEUE}{limits}\
         [outbound]\ntimeout = \"60s\"\nmax_timeout = \"60s\"\n\
         [[connections]]\nname = \"echo\"\nsource = {SOURCE:?}\nplugin = \"test-echo\"\n\
         [connections.config]\nurl = \"{}/slow\"\n",
        source_block(None),
        target.url
    )
}

#[tokio::test]
async fn event_timeout_and_task_timeout_stop_an_invocation_waiting_on_a_silent_target() {
    // The fault: a third party that accepts the request and does not answer
    // for longer than either limit (the outbound timeout is longer still).
    let target = Target::start().await;
    target.set_delay(Duration::from_secs(40));
    let limits = "[runtime]\nevent_timeout = \"1s\"\ntask_timeout = \"2s\"\n";
    let config = echo_to(&target, limits).replace("max_attempts = 4", "max_attempts = 1");
    let svc = TestService::start(&config, &[("echo.wasm", &components::echo())]).await;

    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 1312})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let task = svc
        .admin(reqwest::Method::POST, "/connections/echo/tasks/echo")
        .await;
    assert_eq!(task.status, 200, "{:?}", task.json);
    let task_id = task.json["job_id"].as_str().unwrap().to_string();

    let event_job = svc.jobs_of_event(&event_id).await.remove(0);
    for (job_id, limit, limit_ms) in [(&event_job.id, "1s", 1000), (&task_id, "2s", 2000)] {
        let job = svc.job_in(job_id, &["dead", "failed"], WAIT).await;
        let attempts = svc.attempts(job_id).await;
        let last = attempts.last().unwrap();
        let error = last.error.as_deref().unwrap();
        assert!(
            error.contains(&format!("took longer than {limit} and was stopped")),
            "{job:?} {error}"
        );
        // Stopped by its wall-clock limit, well before the outbound timeout.
        assert!(
            (limit_ms..limit_ms + 5000).contains(&last.duration_ms),
            "{limit}: ran {} ms",
            last.duration_ms
        );
    }
    assert!(
        !target.received().is_empty(),
        "the requests reached the target"
    );
    svc.stop().await;
}
