//! Backup and restore as docs/operations.md tells an operator to do it: a loaded
//! database dumped by `ops/deploy/backup.sh` while the server runs, restored by
//! `ops/deploy/restore.sh` into a fresh database under a fresh subject prefix (an empty
//! JetStream stream). The restored log verifies, its stream holds the whole log in order,
//! and a server on it serves exactly what the old one served at the backup.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use collab_tests::{
    assert_stream_holds_log, collab_bin, eventually, mint, CollabProcess, Http, NodeClient, TestEnv,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ops/deploy")
        .join(name)
}

fn run(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .env("COLLAB_BIN", collab_bin())
        .env("COLLAB_LOG", "warn")
        .envs(envs.iter().copied())
        .output()
        .expect("the script runs")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a reader sees of the workspace: documents (archived too), the text, threads and
/// history of each.
async fn served(http: &Http, workspace: &str, documents: &[String]) -> Value {
    let mut seen = json!({});
    let list = http
        .call(
            Method::GET,
            &format!("/v1/workspaces/{workspace}/documents?archived=include"),
            "alice",
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    seen["documents"] = list.body;
    for doc in documents {
        let mut one = json!({"text": http.content_text(doc, "alice").await});
        for part in ["threads?status=all", "history"] {
            let r = http
                .call(
                    Method::GET,
                    &format!("/v1/documents/{doc}/{part}"),
                    "alice",
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{part}: {}", r.body);
            one[part] = r.body;
        }
        seen[doc.as_str()] = one;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_a_fresh_database_serves_the_same_documents() {
    let source = TestEnv::new().await;
    let server = CollabProcess::start(&source, &[]).await;
    let http = Http::new(server.http());
    let (workspace, notes) = http.workspace_with_document("alice").await;
    http.add_member(&workspace, "alice", "bob", "member").await;
    let plans = http
        .call(
            Method::POST,
            &format!("/v1/workspaces/{workspace}/documents"),
            "bob",
            Some(json!({"title": "Plans", "folder": "/q1"})),
        )
        .await;
    assert_eq!(plans.status, StatusCode::CREATED, "{}", plans.body);
    let plans = plans.body["id"].as_str().unwrap().to_owned();
    let archived = http
        .call(
            Method::POST,
            &format!("/v1/documents/{plans}/archive"),
            "bob",
            Some(json!({})),
        )
        .await;
    assert_eq!(archived.status, StatusCode::OK, "{}", archived.body);

    // Edits through the stock client, and a comment on them.
    let mut alice = NodeClient::open(&server.ws(), &notes, &mint("alice", 3600)).await;
    alice.insert(Some(0), "Written before the backup.").await;
    eventually("the text to be stored", Duration::from_secs(20), || async {
        (http.content_text(&notes, "alice").await == "Written before the backup.").then_some(())
    })
    .await;
    let thread = http
        .call(
            Method::POST,
            &format!("/v1/documents/{notes}/threads"),
            "bob",
            Some(json!({"anchor": {"root": "text", "from": 0, "to": 7}, "body": "Keep this"})),
        )
        .await;
    assert_eq!(thread.status, StatusCode::CREATED, "{}", thread.body);
    let documents = vec![notes.clone(), plans.clone()];
    let last = thread.position();
    assert_eq!(
        http.get_at(&format!("/v1/documents/{notes}/history"), "alice", last)
            .await
            .status,
        StatusCode::OK
    );
    let before = eventually(
        "the text and the thread to be served",
        Duration::from_secs(20),
        || async {
            let seen = served(&http, &workspace, &documents).await;
            (seen[notes.as_str()]["text"] == "Written before the backup."
                && seen[notes.as_str()]["threads?status=all"]["threads"]
                    .as_array()
                    .is_some_and(|t| t.len() == 1))
            .then_some(seen)
        },
    )
    .await;

    // The backup, taken while the server runs.
    let backup = std::env::temp_dir().join(format!("collab-backup-{}", uuid::Uuid::now_v7()));
    let output = run(
        &script("backup.sh"),
        &[backup.to_str().unwrap()],
        &[("COLLAB_DATABASE_URL", &source.database_url)],
    );
    assert!(output.status.success(), "{}", text(&output));
    let manifest = std::fs::read_to_string(backup.join("MANIFEST")).unwrap();
    let at_least: i64 = manifest
        .lines()
        .find_map(|l| l.strip_prefix("log_head_at_least: "))
        .expect("the manifest names the log head")
        .parse()
        .unwrap();
    assert!(at_least >= last, "{manifest}");
    // Written after the backup: not in what is restored.
    alice.insert(None, " And after it.").await;
    alice.kill().await;
    let source_head: i64 = eventually(
        "the edit after the backup to be stored",
        Duration::from_secs(20),
        || async {
            let text = http.content_text(&notes, "alice").await;
            if text != "Written before the backup. And after it." {
                return None;
            }
            let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
                .fetch_one(&source.pool)
                .await
                .unwrap();
            Some(head)
        },
    )
    .await;

    // Restored into a new, empty database under a new prefix (an empty stream).
    let target = TestEnv::unmigrated(source.nats_url.clone()).await;
    let envs = [
        ("COLLAB_DATABASE_URL", target.database_url.as_str()),
        ("COLLAB_NATS_URL", target.nats_url.as_str()),
        ("COLLAB_SUBJECT_PREFIX", target.prefix.as_str()),
    ];
    let output = run(&script("restore.sh"), &[backup.to_str().unwrap()], &envs);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("documents: rebuilt to position"),
        "{stdout}"
    );
    assert!(stdout.contains("republished:"), "{stdout}");
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
        .fetch_one(&target.pool)
        .await
        .unwrap();
    assert!(
        head >= last && head < source_head,
        "{last} ≤ {head} < {source_head}"
    );

    // The stream holds exactly the log: message n is position n, each once.
    assert_stream_holds_log(&target, head).await;

    // A server on the restored database serves what the old one served at the backup,
    // and takes new edits.
    let restored = CollabProcess::start(&target, &[]).await;
    let http_restored = Http::new(restored.http());
    let after = served(&http_restored, &workspace, &documents).await;
    assert_eq!(after, before);
    let mut bob = NodeClient::open(&restored.ws(), &notes, &mint("bob", 3600)).await;
    assert_eq!(bob.text().await, "Written before the backup.");
    bob.insert(None, " Restored.").await;
    eventually(
        "an edit on the restored server",
        Duration::from_secs(20),
        || async {
            (http_restored.content_text(&notes, "alice").await
                == "Written before the backup. Restored.")
                .then_some(())
        },
    )
    .await;
    bob.kill().await;

    // A restore never goes over existing data.
    let output = run(&script("restore.sh"), &[backup.to_str().unwrap()], &envs);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("restore goes into an empty database"),
        "{}",
        text(&output)
    );

    // A stream holding another log (the source's, which runs ahead of this database) is
    // refused, with the way out named.
    let output = run(
        &collab_bin(),
        &["relay", "republish"],
        &[
            ("COLLAB_DATABASE_URL", target.database_url.as_str()),
            ("COLLAB_NATS_URL", source.nats_url.as_str()),
            ("COLLAB_SUBJECT_PREFIX", source.prefix.as_str()),
        ],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("--delete-existing"),
        "{}",
        text(&output)
    );
    let _ = std::fs::remove_dir_all(&backup);
}
