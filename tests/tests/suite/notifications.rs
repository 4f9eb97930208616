//! Notifications (issue 14, items 4–5): who is told of mentions, replies, shares and
//! resolutions (and who is not: people who cannot read the document, the one who acted),
//! reading them, preferences, access that ends, bad input, a rebuild that keeps what was
//! read, and the live feed across two instances with resumption.

use std::time::Duration;

use collab_tests::{collab_bin, mint, CollabProcess, Http, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `user`'s notifications page once the read models reach `at`.
async fn inbox(http: &Http, user: &str, query: &str, at: i64) -> Value {
    let response = http
        .client
        .get(format!("{}/v1/me/notifications{query}", http.base))
        .bearer_auth(mint(user, 600))
        .header("X-Collab-Min-Position", at.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{user}'s notifications");
    response.json().await.unwrap()
}

/// `(kind, actor)` of each notification, newest first.
fn kinds(page: &Value) -> Vec<(String, String)> {
    page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["actor"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(kind: &str, actor: &str) -> (String, String) {
    (kind.to_owned(), actor.to_owned())
}

/// A request as `user` that must answer `status`.
async fn command(
    http: &Http,
    method: Method,
    path: &str,
    user: &str,
    body: Option<Value>,
    status: u16,
) -> collab_tests::Response {
    http.expect(method, path, user, body, status).await
}

async fn notification_rows(pool: &sqlx::PgPool) -> Vec<(String, String, String, bool, bool)> {
    sqlx::query_as(
        "SELECT notification_id::text, recipient, kind, in_app, read_at IS NOT NULL \
         FROM rm_notifications ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_replies_shares_and_resolutions_tell_the_right_people() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    http.add_member(&ws, "alice", "cy", "member").await;
    http.write_text(
        &doc,
        "alice",
        "The quick brown fox jumps over the lazy dog.",
    )
    .await;

    // Alice opens a thread mentioning bob (a member) and dave (an outsider): bob is told,
    // dave is not, and alice hears that dave cannot read the document.
    let opened = command(
        &http,
        Method::POST,
        &format!("/v1/documents/{doc}/threads"),
        "alice",
        Some(json!({"anchor": {"root": "text", "from": 4, "to": 9}, "body": "<@bob> <@dave> quick?"})),
        201,
    )
    .await;
    assert_eq!(opened.body["mentions_without_access"], json!(["dave"]));
    let thread = opened.body["thread_id"].as_str().unwrap().to_owned();
    let at = opened.position();
    let bobs = inbox(&http, "bob", "", at).await;
    assert_eq!(kinds(&bobs), vec![pair("mention", "alice")]);
    let mention = &bobs["notifications"][0];
    assert_eq!(mention["excerpt"], "<@bob> <@dave> quick?");
    assert_eq!(mention["document_title"], "Notes");
    assert_eq!(mention["thread_id"], thread.as_str());
    assert_eq!(mention["read"], false);
    assert_eq!(bobs["unread_count"], 1);
    assert_eq!(kinds(&inbox(&http, "dave", "", at).await), vec![]);
    assert_eq!(kinds(&inbox(&http, "alice", "", at).await), vec![]);

    // Bob replies mentioning cy: alice (who opened it) hears of a reply, cy of a mention
    // (once: not also of a reply), bob of nothing he did himself.
    let at = command(
        &http,
        Method::POST,
        &format!("/v1/threads/{thread}/comments"),
        "bob",
        Some(json!({"body": "Quick enough, <@cy>?"})),
        201,
    )
    .await
    .position();
    assert_eq!(
        kinds(&inbox(&http, "alice", "", at).await),
        vec![pair("reply", "bob")]
    );
    assert_eq!(
        kinds(&inbox(&http, "cy", "", at).await),
        vec![pair("mention", "bob")]
    );
    assert_eq!(
        kinds(&inbox(&http, "bob", "", at).await),
        vec![pair("mention", "alice")]
    );

    // Cy replies: both who took part (alice and bob) hear of it.
    let at = command(
        &http,
        Method::POST,
        &format!("/v1/threads/{thread}/comments"),
        "cy",
        Some(json!({"body": "Yes."})),
        201,
    )
    .await
    .position();
    assert_eq!(
        kinds(&inbox(&http, "alice", "", at).await),
        vec![pair("reply", "cy"), pair("reply", "bob")]
    );
    assert_eq!(
        kinds(&inbox(&http, "bob", "", at).await),
        vec![pair("reply", "cy"), pair("mention", "alice")]
    );

    // Bob resolves alice's thread: she hears of it; a resolution by herself would not.
    let at = command(
        &http,
        Method::POST,
        &format!("/v1/threads/{thread}/resolve"),
        "bob",
        None,
        200,
    )
    .await
    .position();
    let alices = inbox(&http, "alice", "", at).await;
    assert_eq!(kinds(&alices)[0], pair("resolved", "bob"));
    assert_eq!(alices["unread_count"], 3);

    // Sharing with erin (no member of the workspace) tells her, with the role; the
    // unshare takes the notification away with the document.
    let at = command(
        &http,
        Method::PUT,
        &format!("/v1/documents/{doc}/permissions/erin"),
        "alice",
        Some(json!({"role": "commenter"})),
        200,
    )
    .await
    .position();
    let erins = inbox(&http, "erin", "", at).await;
    assert_eq!(kinds(&erins), vec![pair("share", "alice")]);
    assert_eq!(erins["notifications"][0]["role"], "commenter");
    let at = command(
        &http,
        Method::DELETE,
        &format!("/v1/documents/{doc}/permissions/erin"),
        "alice",
        None,
        200,
    )
    .await
    .position();
    let erins = inbox(&http, "erin", "", at).await;
    assert_eq!(kinds(&erins), vec![]);
    assert_eq!(erins["unread_count"], 0);

    // Reading: one by id, then the rest at once; someone else's id is a 404 that marks
    // nothing; bad bodies are refused.
    let alices = inbox(&http, "alice", "", at).await;
    let newest = alices["notifications"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bobs_mention = mention["id"].as_str().unwrap().to_owned();
    let before = notification_rows(&env.pool).await;
    for (body, status) in [
        (json!({"ids": [bobs_mention]}), 404),
        (json!({"ids": [newest, uuid::Uuid::now_v7()]}), 404),
        (json!({}), 422),
        (json!({"ids": []}), 422),
        (json!({"ids": [newest], "all": true}), 422),
        (json!({"all": false}), 422),
        (json!({"ids": ["not-a-uuid"]}), 422),
        (json!({"idz": [newest]}), 422),
        (json!([newest]), 422),
    ] {
        let r = http
            .call(
                Method::POST,
                "/v1/me/notifications/read",
                "alice",
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.body);
    }
    assert_eq!(
        notification_rows(&env.pool).await,
        before,
        "refusals changed nothing"
    );
    let read = command(
        &http,
        Method::POST,
        "/v1/me/notifications/read",
        "alice",
        Some(json!({"ids": [newest]})),
        200,
    )
    .await;
    assert_eq!(read.body["unread_count"], 2);
    let unread = inbox(&http, "alice", "?unread=true", read.position()).await;
    assert_eq!(
        kinds(&unread),
        vec![pair("reply", "cy"), pair("reply", "bob")]
    );
    let all = command(
        &http,
        Method::POST,
        "/v1/me/notifications/read",
        "alice",
        Some(json!({"all": true})),
        200,
    )
    .await;
    assert_eq!(all.body["unread_count"], 0);
    assert_eq!(
        inbox(&http, "alice", "?unread=true", all.position()).await["notifications"],
        json!([])
    );
    // Paging: one at a time, newest first, to the end.
    let first = inbox(&http, "alice", "?limit=1", all.position()).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = inbox(&http, "alice", &format!("?limit=2&cursor={cursor}"), 0).await;
    assert_eq!(
        kinds(&second),
        vec![pair("reply", "cy"), pair("reply", "bob")]
    );
    assert!(second["next_cursor"].is_null());
    for query in ["?unread=maybe", "?limit=0", "?cursor=nope"] {
        let r = http
            .call(
                Method::GET,
                &format!("/v1/me/notifications{query}"),
                "alice",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
    }

    // Preferences: the defaults, then replies off in the app — a later reply is not shown
    // (it is kept for email); a typo is refused.
    let defaults = command(
        &http,
        Method::GET,
        "/v1/me/notification-preferences",
        "alice",
        None,
        200,
    )
    .await;
    assert_eq!(
        defaults.body["reply"],
        json!({"in_app": true, "email": "digest"})
    );
    assert_eq!(defaults.body["digest"], "daily");
    let mut quiet = defaults.body.clone();
    quiet["reply"]["in_app"] = false.into();
    let mut typo = quiet.clone();
    typo["reply"]["emial"] = "off".into();
    command(
        &http,
        Method::PUT,
        "/v1/me/notification-preferences",
        "alice",
        Some(typo),
        422,
    )
    .await;
    let mut unknown = quiet.clone();
    unknown["reply"]["email"] = "weekly".into();
    command(
        &http,
        Method::PUT,
        "/v1/me/notification-preferences",
        "alice",
        Some(unknown),
        422,
    )
    .await;
    let set = command(
        &http,
        Method::PUT,
        "/v1/me/notification-preferences",
        "alice",
        Some(quiet.clone()),
        200,
    )
    .await;
    let got = http
        .client
        .get(format!("{}/v1/me/notification-preferences", http.base))
        .bearer_auth(mint("alice", 600))
        .header("X-Collab-Min-Position", set.position().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(got.json::<Value>().await.unwrap(), quiet);
    let reopened = command(
        &http,
        Method::POST,
        &format!("/v1/threads/{thread}/reopen"),
        "alice",
        None,
        200,
    )
    .await;
    let reply = command(
        &http,
        Method::POST,
        &format!("/v1/threads/{thread}/comments"),
        "bob",
        Some(json!({"body": "One more thing"})),
        201,
    )
    .await;
    assert!(reopened.position() < reply.position());
    let alices = inbox(&http, "alice", "", reply.position()).await;
    assert_eq!(alices["unread_count"], 0, "replies are off in the app");
    assert_eq!(kinds(&alices)[0], pair("resolved", "bob"));
    // Cy, who took part, is told as before.
    assert_eq!(
        kinds(&inbox(&http, "cy", "", reply.position()).await)[0],
        pair("reply", "bob")
    );

    let comment = reply.body["comment_id"].as_str().unwrap();
    let email_only: Vec<(String, bool, String)> = sqlx::query_as(
        "SELECT recipient, in_app, email FROM rm_notifications WHERE comment_id = $1::uuid \
         ORDER BY recipient",
    )
    .bind(comment)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        email_only,
        [
            ("alice".to_owned(), false, "digest".to_owned()),
            ("cy".to_owned(), true, "digest".to_owned())
        ]
    );

    // A deleted comment's notifications go with its text.
    let deleted = command(
        &http,
        Method::DELETE,
        &format!("/v1/comments/{comment}"),
        "bob",
        None,
        200,
    )
    .await;
    assert_eq!(
        kinds(&inbox(&http, "cy", "", deleted.position()).await)[0],
        pair("mention", "bob")
    );

    // Service accounts have no notifications.
    let account = command(
        &http,
        Method::POST,
        &format!("/v1/workspaces/{ws}/service-accounts"),
        "alice",
        Some(json!({"name": "Bot", "scopes": ["documents:read"]})),
        201,
    )
    .await;
    let key = account.body["key"].as_str().unwrap();
    for path in [
        "/v1/me/notifications",
        "/v1/me/notification-preferences",
        "/v1/me/notifications/live",
    ] {
        let r = http
            .client
            .get(format!("{}{path}", http.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }

    // A rebuild from the log gives the same notifications with the same ids, read or not.
    let live = notification_rows(&env.pool).await;
    assert!(live.iter().any(|row| row.4), "some are read");
    let output = std::process::Command::new(collab_bin())
        .args(["projections", "rebuild", "notifications"])
        .env("COLLAB_DATABASE_URL", &env.database_url)
        .env("COLLAB_NATS_URL", &env.nats_url)
        .env("COLLAB_SUBJECT_PREFIX", &env.prefix)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(notification_rows(&env.pool).await, live);
}

/// The next event of an SSE stream (any kind), within a bounded wait.
async fn next_event(
    stream: &mut (impl futures::Stream<
        Item = Result<
            eventsource_stream::Event,
            eventsource_stream::EventStreamError<reqwest::Error>,
        >,
    > + Unpin),
) -> (String, String, Value) {
    use futures::StreamExt;
    let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an event within 20 s")
        .expect("the stream goes on")
        .unwrap();
    (
        event.event,
        event.id,
        serde_json::from_str(&event.data).unwrap(),
    )
}

async fn feed(http: &Http, user: &str, last: Option<&str>) -> reqwest::Response {
    let mut request = http
        .client
        .get(format!("{}/v1/me/notifications/live", http.base))
        .bearer_auth(mint(user, 600));
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_pushes_notifications_from_any_instance_and_resumes() {
    use eventsource_stream::Eventsource;
    let env = TestEnv::new().await;
    let one = CollabProcess::start(&env, &[]).await;
    let two = CollabProcess::start(&env, &[]).await;
    let http = Http::new(one.http());
    let http_two = Http::new(two.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    http.write_text(&doc, "alice", "Plans for the spring.")
        .await;

    // Bob listens on instance two; alice mentions him through instance one.
    let response = feed(&http_two, "bob", None).await;
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream().eventsource();
    let (kind, _, data) = next_event(&mut events).await;
    assert_eq!(
        (kind.as_str(), data),
        ("unread", json!({"unread_count": 0}))
    );
    let opened = command(
        &http,
        Method::POST,
        &format!("/v1/documents/{doc}/threads"),
        "alice",
        Some(json!({"anchor": {"root": "text", "from": 0, "to": 5}, "body": "<@bob> have a look"})),
        201,
    )
    .await;
    let thread = opened.body["thread_id"].as_str().unwrap().to_owned();
    let (kind, id, data) = next_event(&mut events).await;
    assert_eq!(kind, "notification");
    assert_eq!(data["kind"], "mention");
    assert_eq!(data["excerpt"], "<@bob> have a look");
    assert_eq!(id, data["position"].to_string());
    let (kind, _, data) = next_event(&mut events).await;
    assert_eq!(
        (kind.as_str(), data),
        ("unread", json!({"unread_count": 1}))
    );
    // Reading it elsewhere updates the count on the feed.
    command(
        &http,
        Method::POST,
        "/v1/me/notifications/read",
        "bob",
        Some(json!({"all": true})),
        200,
    )
    .await;
    let (kind, _, data) = next_event(&mut events).await;
    assert_eq!(
        (kind.as_str(), data),
        ("unread", json!({"unread_count": 0}))
    );
    drop(events);

    // While bob is away, two more; resuming after the first gives exactly those.
    for body in ["<@bob> one", "<@bob> two"] {
        command(
            &http,
            Method::POST,
            &format!("/v1/threads/{thread}/comments"),
            "alice",
            Some(json!({"body": body})),
            201,
        )
        .await;
    }
    let mut events = feed(&http, "bob", Some(&id))
        .await
        .bytes_stream()
        .eventsource();
    let mut got = vec![];
    while got.len() < 2 {
        let (kind, _, data) = next_event(&mut events).await;
        if kind == "notification" {
            got.push(data["excerpt"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(got, ["<@bob> one", "<@bob> two"]);

    // Bad resumption points and service accounts are refused.
    for last in ["-1", "soon"] {
        assert_eq!(feed(&http, "bob", Some(last)).await.status(), 400);
    }
    let r = http
        .client
        .get(format!("{}/v1/me/notifications/live?since=3", http.base))
        .bearer_auth(mint("bob", 600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn set_profile(http: &Http, user: &str, name: &str, email: &str) {
    command(
        http,
        Method::PUT,
        "/v1/me/profile",
        user,
        Some(json!({"display_name": name, "email": email})),
        200,
    )
    .await;
}

/// The email delivery of `user`'s newest notification of `kind`, once the mailer has
/// taken it on and it is in `state`.
async fn delivery(http: &Http, user: &str, kind: &str, state: &str) -> Value {
    collab_tests::eventually(
        &format!("{user}'s {kind} email to be {state}"),
        Duration::from_secs(30),
        || async {
            let page = inbox(http, user, "", 0).await;
            page["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["kind"] == kind)
                .filter(|n| n["email"]["state"] == state)
                .cloned()
        },
    )
    .await
}

/// Bodies of the emails to `address` that contain `text`.
async fn mails_with(smtp: &collab_tests::Maildev, address: &str, text: &str) -> usize {
    smtp.emails_to(address)
        .await
        .iter()
        .filter(|m| m["text"].as_str().unwrap_or_default().contains(text))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_emailed_once_at_once_or_in_digests_as_people_chose() {
    let env = TestEnv::new().await;
    let mut smtp = collab_tests::Maildev::start().await;
    let smtp_url = smtp.url();
    let mail_env = [
        ("COLLAB_SMTP_URL", smtp_url.as_str()),
        ("COLLAB_SMTP_FROM", "Collab <collab@example.com>"),
        ("COLLAB_PUBLIC_URL", "https://collab.example"),
        ("COLLAB_MAIL_DELAY_SECS", "5"),
        ("COLLAB_MAIL_POLL_MS", "100"),
        ("COLLAB_MAIL_DAILY_SECS", "6"),
        ("COLLAB_MAIL_RETRY_SECS", "1"),
    ];
    let mut server = CollabProcess::start(&env, &mail_env).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    for person in ["bob", "cy", "dan", "erin"] {
        http.add_member(&ws, "alice", person, "member").await;
        set_profile(
            &http,
            person,
            &person.to_uppercase(),
            &format!("{person}@example.com"),
        )
        .await;
    }
    set_profile(&http, "alice", "Alice", "alice@example.com").await;
    // Dan wants no email at all; alice none about replies (and has her address erased).
    let mut quiet = command(
        &http,
        Method::GET,
        "/v1/me/notification-preferences",
        "dan",
        None,
        200,
    )
    .await
    .body;
    for kind in ["mention", "reply", "share", "resolved"] {
        quiet[kind]["email"] = "off".into();
    }
    command(
        &http,
        Method::PUT,
        "/v1/me/notification-preferences",
        "dan",
        Some(quiet),
        200,
    )
    .await;
    command(
        &http,
        Method::PUT,
        "/v1/me/profile",
        "alice",
        Some(json!({"display_name": "Alice"})),
        200,
    )
    .await;
    http.write_text(&doc, "alice", "Release notes for the spring.")
        .await;

    let opened = command(
        &http,
        Method::POST,
        &format!("/v1/documents/{doc}/threads"),
        "alice",
        Some(json!({"anchor": {"root": "text", "from": 0, "to": 7}, "body": "<@bob> <@dan> <@erin>: ship it?"})),
        201,
    )
    .await;
    let thread = opened.body["thread_id"].as_str().unwrap().to_owned();
    // Erin reads it in the app before the delay is over (having seen it: the read waits
    // for the mention's position): no email for her.
    let read = http
        .client
        .post(format!("{}/v1/me/notifications/read", http.base))
        .bearer_auth(mint("erin", 600))
        .header("X-Collab-Min-Position", opened.position().to_string())
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap()["unread_count"], 0);
    // Replies gather into digests: cy's (two replies after hers), bob's (one).
    for (user, body) in [("cy", "I'm in"), ("bob", "Me too"), ("alice", "Great")] {
        command(
            &http,
            Method::POST,
            &format!("/v1/threads/{thread}/comments"),
            user,
            Some(json!({"body": body})),
            201,
        )
        .await;
    }

    let mention = delivery(&http, "bob", "mention", "sent").await;
    assert!(mention["email"]["sent_at"].is_string());
    let to_bob = smtp.emails_to("bob@example.com").await;
    let email = to_bob
        .iter()
        .find(|m| m["subject"] == "Alice mentioned you in “Notes”")
        .unwrap_or_else(|| panic!("bob's mention email in {to_bob:?}"));
    let text = email["text"].as_str().unwrap();
    assert!(text.contains("> <@bob> <@dan> <@erin>: ship it?"), "{text}");
    assert!(
        text.contains(&format!(
            "https://collab.example/documents/{doc}#thread-{thread}"
        )),
        "{text}"
    );
    let html = email["html"].as_str().unwrap();
    assert!(html.contains("&lt;@bob&gt;"), "escaped in HTML: {html}");
    assert_eq!(email["from"][0]["address"], "collab@example.com");

    let digest = delivery(&http, "cy", "reply", "sent").await;
    assert_eq!(digest["email"]["mode"], "digest");
    let to_cy = smtp.emails_to("cy@example.com").await;
    assert_eq!(to_cy.len(), 1, "one digest: {to_cy:?}");
    assert_eq!(to_cy[0]["subject"], "Your digest: 2 notifications");
    let text = to_cy[0]["text"].as_str().unwrap();
    assert!(
        text.contains("> Me too") && text.contains("> Great"),
        "{text}"
    );
    delivery(&http, "bob", "reply", "sent").await;
    assert_eq!(mails_with(&smtp, "bob@example.com", "> Great").await, 1);
    // Read in time, opted out, or no address: nothing sent, and each says why.
    assert_eq!(
        delivery(&http, "erin", "mention", "skipped_read").await["email"]["mode"],
        "immediate"
    );
    let dans = inbox(&http, "dan", "", 0).await;
    assert_eq!(dans["notifications"][0]["email"], json!({"mode": "off"}));
    delivery(&http, "alice", "reply", "no_address").await;
    assert!(smtp.emails_to("dan@example.com").await.is_empty());
    assert!(smtp.emails_to("erin@example.com").await.is_empty());
    assert!(smtp.emails_to("alice@example.com").await.is_empty());

    // The SMTP server goes down and the mailer restarts: the new email waits and is sent
    // once the server is back, and nothing sent before is sent again.
    smtp.stop().await;
    assert!(server.terminate().await, "collab stops on SIGTERM");
    server.restart().await;
    let http = Http::new(server.http());
    command(
        &http,
        Method::POST,
        &format!("/v1/threads/{thread}/comments"),
        "alice",
        Some(json!({"body": "<@bob> second call"})),
        201,
    )
    .await;
    let waiting = delivery(&http, "bob", "mention", "retry").await;
    assert_eq!(waiting["excerpt"], "<@bob> second call");
    smtp.resume().await;
    delivery(&http, "bob", "mention", "sent").await;
    assert_eq!(mails_with(&smtp, "bob@example.com", "second call").await, 1);
    assert_eq!(mails_with(&smtp, "bob@example.com", "ship it?").await, 1);
    assert_eq!(mails_with(&smtp, "bob@example.com", "> Great").await, 1);
    assert_eq!(mails_with(&smtp, "cy@example.com", "> Me too").await, 1);

    // Shares are folded a run at a time, each told as its recipient's preferences then
    // said: dan (no email) and cy (the defaults) are told of one; a rebuild from the log
    // gives the same rows, delivery modes included.
    let mut shared_at = 0;
    for person in ["dan", "cy"] {
        shared_at = command(
            &http,
            Method::PUT,
            &format!("/v1/documents/{doc}/permissions/{person}"),
            "alice",
            Some(json!({"role": "editor"})),
            200,
        )
        .await
        .position();
    }
    inbox(&http, "cy", "", shared_at).await;
    let modes = || async {
        sqlx::query_as::<_, (String, String, bool, String)>(
            "SELECT notification_id::text, recipient, in_app, email FROM rm_notifications \
             ORDER BY 1",
        )
        .fetch_all(&env.pool)
        .await
        .unwrap()
    };
    let live = modes().await;
    let shares: Vec<(String, String)> = sqlx::query_as(
        "SELECT recipient, email FROM rm_notifications WHERE kind = 'share' ORDER BY recipient",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        shares,
        [
            ("cy".into(), "immediate".into()),
            ("dan".into(), "off".into())
        ]
    );
    let report = collab_tests::rebuild_all(&env.database_url);
    assert!(
        report.contains("notifications: rebuilt to position"),
        "{report}"
    );
    assert_eq!(modes().await, live);
}

/// Regression (the browser test found it): someone a document is shared with, outside its
/// workspace, sees the share's notification — and can mark it read, by id or all at once
/// (it answered 404: the check read without the person's shares).
#[tokio::test]
async fn someone_outside_the_workspace_marks_a_share_notification_read() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (_ws, doc) = http.workspace_with_document("ada").await;
    let shared = command(
        &http,
        Method::PUT,
        &format!("/v1/documents/{doc}/permissions/user:cleo"),
        "ada",
        Some(json!({"role": "viewer"})),
        200,
    )
    .await;
    let page = inbox(&http, "cleo", "", shared.position()).await;
    assert_eq!(kinds(&page), vec![pair("share", "ada")]);
    assert_eq!(page["unread_count"], 1);
    let id = page["notifications"][0]["id"].as_str().unwrap().to_owned();

    let read = command(
        &http,
        Method::POST,
        "/v1/me/notifications/read",
        "cleo",
        Some(json!({"ids": [id]})),
        200,
    )
    .await;
    let page = inbox(&http, "cleo", "", read.position()).await;
    assert_eq!(page["unread_count"], 0, "{page}");
    assert_eq!(page["notifications"][0]["read"], true);

    // Someone else still cannot mark it.
    command(
        &http,
        Method::POST,
        "/v1/me/notifications/read",
        "mallory",
        Some(json!({"ids": [page["notifications"][0]["id"]]})),
        404,
    )
    .await;
    // And "all" covers shared documents' notifications too.
    let again = command(
        &http,
        Method::PUT,
        &format!("/v1/documents/{doc}/permissions/user:cleo"),
        "ada",
        Some(json!({"role": "editor"})),
        200,
    )
    .await;
    assert_eq!(
        inbox(&http, "cleo", "", again.position()).await["unread_count"],
        1
    );
    let all = command(
        &http,
        Method::POST,
        "/v1/me/notifications/read",
        "cleo",
        Some(json!({"all": true})),
        200,
    )
    .await;
    assert_eq!(
        inbox(&http, "cleo", "", all.position()).await["unread_count"],
        0
    );
}
