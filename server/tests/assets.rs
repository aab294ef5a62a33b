//! The site's files and pages on the wire: hashed names served precompressed by content
//! negotiation and cached for a year, other names under `/pkg/` refused; the page compressed on
//! the fly, revalidated by its ETag and allowed exactly its inline scripts; server-function
//! answers compressed; the event stream never compressed nor held back.

mod support;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use server::wallet::ids::UserId;
use sha2::{Digest, Sha256};
use support::*;

const HASHES: [(&str, &str); 3] = [
    ("js", "Jh4sh_js-0123456789abcd"),
    ("wasm", "Wh4sh_wasm-0123456789ab"),
    ("css", "Ch4sh_css-0123456789abc"),
];

/// A site as `cargo leptos build --release --precompress` leaves it after two releases: this
/// one's files (each with `.br` and `.gz` beside it), the previous one's, and the hash file.
fn site(dir: &Path) -> std::path::PathBuf {
    let pkg = dir.join("site/pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    for (kind, hash) in HASHES {
        let name = format!("ndn.{hash}.{kind}");
        std::fs::write(pkg.join(&name), format!("{kind} as is")).unwrap();
        std::fs::write(pkg.join(format!("{name}.br")), format!("{kind} in brotli")).unwrap();
        std::fs::write(pkg.join(format!("{name}.gz")), format!("{kind} in gzip")).unwrap();
        std::fs::write(pkg.join(format!("ndn.0ld-release.{kind}")), "old").unwrap();
    }
    // The split build's lazily loaded parts: the loader, its manifest, the console's chunk.
    for name in [
        SPLIT_LOADER,
        SPLIT_MANIFEST,
        CONSOLE_CHUNK,
        "split_open_console_1.0ld.wasm",
    ] {
        std::fs::write(pkg.join(name), format!("{name} as is")).unwrap();
        std::fs::write(pkg.join(format!("{name}.br")), format!("{name} in brotli")).unwrap();
    }
    std::fs::write(
        pkg.join(SPLIT_MANIFEST),
        r#"{"open_console_1":["split_open_console_1.Xh4sh-chunk"]}"#,
    )
    .unwrap();
    let hash_file = dir.join("hash.txt");
    let mut text: String = HASHES
        .iter()
        .map(|(kind, hash)| format!("{kind}: {hash}\n"))
        .collect();
    text.push_str("manifest: Mh4sh-manifest\nsplit: Sh4sh-split\n");
    std::fs::write(&hash_file, text).unwrap();
    hash_file
}

const SPLIT_LOADER: &str = "__wasm_split.Sh4sh-split.js";
const SPLIT_MANIFEST: &str = "__wasm_split_manifest.Mh4sh-manifest.json";
const CONSOLE_CHUNK: &str = "split_open_console_1.Xh4sh-chunk.wasm";

#[tokio::test]
async fn the_lazily_loaded_parts_of_a_split_build_are_served_like_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_site(dir.path()).await;
    for name in [SPLIT_LOADER, SPLIT_MANIFEST, CONSOLE_CHUNK] {
        let response = get(&app, &format!("/pkg/{name}"), Some("br")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            header(&response, "content-encoding").as_deref(),
            Some("br"),
            "{name}"
        );
        assert_eq!(
            header(&response, "cache-control").as_deref(),
            Some("public, max-age=31536000, immutable"),
            "{name}"
        );
    }
    let chunk = get(&app, &format!("/pkg/{CONSOLE_CHUNK}"), None).await;
    assert_eq!(
        chunk.text().await.unwrap(),
        format!("{CONSOLE_CHUNK} as is")
    );
    // A chunk of another release is not this release's.
    let old = get(&app, "/pkg/split_open_console_1.0ld.wasm", Some("br")).await;
    assert_eq!(old.status(), 404);
}

async fn app_with_site(dir: &Path) -> TestApp {
    let hash_file = site(dir);
    let root = dir.join("site");
    TestApp::spawn_configured(
        Database::sqlite(),
        &[
            ("LEPTOS_SITE_ROOT", root.to_str().unwrap()),
            ("LEPTOS_HASH_FILE_NAME", hash_file.to_str().unwrap()),
        ],
    )
    .await
}

async fn get(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(format!("{}{path}", app.base));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn each_file_is_answered_in_the_encoding_asked_and_cached_for_a_year() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_site(dir.path()).await;
    for (kind, hash) in HASHES {
        let path = format!("/pkg/ndn.{hash}.{kind}");
        for (accept, encoding, body) in [
            (Some("br, gzip"), Some("br"), format!("{kind} in brotli")),
            (
                Some("gzip, deflate"),
                Some("gzip"),
                format!("{kind} in gzip"),
            ),
            (Some("identity"), None, format!("{kind} as is")),
            (None, None, format!("{kind} as is")),
        ] {
            let response = get(&app, &path, accept).await;
            assert_eq!(response.status(), 200, "{path} {accept:?}");
            assert_eq!(
                header(&response, "content-encoding"),
                encoding.map(Into::into)
            );
            assert_eq!(
                header(&response, "cache-control").as_deref(),
                Some("public, max-age=31536000, immutable")
            );
            assert_eq!(
                header(&response, "vary").as_deref(),
                Some("accept-encoding")
            );
            let expected_type = match kind {
                "js" => "text/javascript",
                "wasm" => "application/wasm",
                _ => "text/css",
            };
            assert!(
                header(&response, "content-type")
                    .unwrap()
                    .starts_with(expected_type)
            );
            assert_eq!(response.text().await.unwrap(), body);
        }
    }
}

#[tokio::test]
async fn a_previous_releases_file_answers_404_and_the_page_names_only_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_site(dir.path()).await;
    for kind in ["js", "wasm", "css"] {
        let old = get(&app, &format!("/pkg/ndn.0ld-release.{kind}"), None).await;
        assert_eq!(old.status(), 404, "an old {kind} is still served");
        let plain = get(&app, &format!("/pkg/ndn.{kind}"), None).await;
        assert_eq!(plain.status(), 404);
    }
    assert_eq!(get(&app, "/pkg/../hash.txt", None).await.status(), 404);

    for page in ["/", "/privacy"] {
        let html = get(&app, page, None).await.text().await.unwrap();
        let named: Vec<&str> = html
            .split("/pkg/")
            .skip(1)
            .map(|rest| rest.split(['"', '\'']).next().unwrap())
            .collect();
        assert!(!named.is_empty(), "{page} names no files");
        for name in named {
            assert!(
                HASHES
                    .iter()
                    .any(|(kind, hash)| name == format!("ndn.{hash}.{kind}")),
                "{page} names {name}"
            );
        }
    }
    let html = get(&app, "/", None).await.text().await.unwrap();
    for (kind, hash) in HASHES {
        assert!(html.contains(&format!("/pkg/ndn.{hash}.{kind}")), "{kind}");
    }
}

#[tokio::test]
async fn the_page_is_compressed_revalidated_and_allows_exactly_its_inline_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_site(dir.path()).await;
    let page = get(&app, "/", Some("br")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-encoding").as_deref(), Some("br"));
    assert_eq!(header(&page, "cache-control").as_deref(), Some("no-cache"));
    assert!(header(&page, "vary").unwrap().contains("accept-encoding"));
    let gzip = get(&app, "/", Some("gzip")).await;
    assert_eq!(header(&gzip, "content-encoding").as_deref(), Some("gzip"));

    let plain = get(&app, "/", None).await;
    assert_eq!(header(&plain, "content-encoding"), None);
    let etag = header(&plain, "etag").expect("an ETag");
    let policy = header(&plain, "content-security-policy").unwrap();
    let html = plain.text().await.unwrap();
    assert!(!html.contains("nonce="), "the inert nonce is taken out");
    // Every inline script is allowed by its hash, and nothing else inline is.
    let mut inline = 0;
    for part in html.split("<script").skip(1) {
        let (attributes, rest) = part.split_once('>').unwrap();
        if attributes.contains("src=") {
            continue;
        }
        let script = rest.split("</script").next().unwrap();
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script));
        assert!(policy.contains(&format!("'sha256-{hash}'")), "{script}");
        inline += 1;
    }
    assert!(inline >= 2, "the hydration and early-wallet scripts");
    assert_eq!(policy.matches("'sha256-").count(), inline);
    assert!(!policy.contains("'unsafe-inline' 'wasm"));

    // The same page for everyone: the same ETag, and a 304 without a body when it is current.
    let again = get(&app, "/", None).await;
    assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));
    let revalidated = app
        .http
        .get(format!("{}/", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag").as_deref(), Some(etag.as_str()));
    assert!(revalidated.bytes().await.unwrap().is_empty());
    let stale = app
        .http
        .get(format!("{}/", app.base))
        .header("if-none-match", "W/\"not-this-page\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn server_function_answers_are_compressed_and_the_event_stream_never_is() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let authorization = format!("tma {}", app.init_data(BUYER));
    let wallet = app
        .http
        .post(format!("{}/api/wallet", app.base))
        .header("authorization", &authorization)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept-encoding", "gzip")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(wallet.status(), 200);
    assert_eq!(header(&wallet, "content-encoding").as_deref(), Some("gzip"));

    let wallet = server_function(&app.http, &app.base, "wallet", &app.init_data(BUYER), "").await;
    let token = wallet["events_token"].as_str().unwrap();
    let mut stream = app
        .http
        .get(format!("{}/api/events?token={token}", app.base))
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(header(&stream, "content-encoding"), None);
    assert!(
        header(&stream, "content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    // A payment's event arrives at once, in the clear, while the stream stays open.
    let order_id = app.create_order(BUYER, "ndn-500").await;
    let charge = app.telegram.record_charge(UserId(BUYER), 225, &order_id);
    app.deliver(&successful_payment(1, BUYER, &order_id, 225, &charge))
        .await;
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("the event is not held back")
        .unwrap()
        .expect("the stream is open");
    let text = String::from_utf8(chunk.to_vec()).expect("plain text");
    assert!(text.contains(&order_id), "{text}");
}
