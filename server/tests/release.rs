//! The release as an operator gets it (`scripts/release`): the tarball, going live with it
//! command by command exactly as the docs print them, and the container image run from its
//! unpacked layers under `chroot`. They need what `scripts/release` built, so they are ignored
//! in the ordinary run; `scripts/test` runs them after the release with
//! `NDN_RELEASE_TARBALL` and `NDN_RELEASE_IMAGE` set.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use server::wallet::ids::UserId;
use support::*;

fn artifact(variable: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run scripts/release, then this test with it")
    }));
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs `line` with `sh -c` in `folder` with only `PATH` and `vars` set; exit code and output.
async fn shell(folder: &Path, line: &str, vars: &[(&str, &str)]) -> (i32, String) {
    let mut command = tokio::process::Command::new("sh");
    command
        .args(["-c", line])
        .current_dir(folder)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("`{line}` did not end within two minutes"))
        .expect("sh runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Unpacks the release tarball into `into`; the release's folder.
async fn unpack(tarball: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let (code, output) = shell(into, &format!("tar -xzf '{}'", tarball.display()), &[]).await;
    assert_eq!(code, 0, "{output}");
    let name = tarball
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(".tar.gz");
    into.join(name)
}

/// The docs an operator follows, all of them.
fn docs() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    ["README.md", "docs/deploy.md", "docs/operate.md"]
        .iter()
        .map(|file| std::fs::read_to_string(root.join(file)).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `.env` block `docs/deploy.md` tells the operator to write (between the markers).
fn env_block_of_the_guide() -> Vec<(String, String)> {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy.md"))
            .unwrap();
    let start = guide
        .find("<!-- rehearsed: .env -->")
        .expect("docs/deploy.md marks its .env block");
    let block = &guide[start..];
    let block = &block[block.find("```").unwrap() + 3..];
    let block = &block[block.find('\n').unwrap() + 1..];
    let block = &block[..block.find("```").unwrap()];
    block
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains('='))
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap();
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

async fn wait_healthy(base: &str, child: &mut tokio::process::Child) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(answer) = http.get(format!("{base}/healthz")).send().await
            && answer.status() == 200
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server stopped: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base}/healthz never answered");
}

/// The operator's path, on the sandbox's fake Telegram: unpack the tarball into an empty
/// folder, write `.env` as the guide says, migrate, register the webhook, serve, sell, back
/// up, stop, restore into a fresh folder and verify the books — each command as the docs
/// print it, run by a shell in the release's folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the release: scripts/test runs it after scripts/release"]
async fn going_live_with_the_tarball_as_the_docs_say() {
    let tarball = artifact("NDN_RELEASE_TARBALL");
    let docs = docs();
    let documented = |line: &str| {
        assert!(
            docs.contains(line),
            "`{line}` is not printed in README.md, docs/deploy.md or docs/operate.md"
        );
        line.to_owned()
    };
    let machine = tempfile::tempdir().unwrap();
    let release = unpack(&tarball, &machine.path().join("live")).await;
    for file in [
        "server",
        "hash.txt",
        ".env.example",
        "LICENSE",
        "site/pkg",
        "docs/deploy.md",
    ] {
        assert!(release.join(file).exists(), "{file} is not in the tarball");
    }

    // Nothing set up yet: the sandbox runs from the unpacked folder, the site beside the binary.
    let port = free_port();
    // Its own process group: the shell runs the line (variables first, so no `exec`), and the
    // whole group is stopped after.
    let mut sandbox = tokio::process::Command::new("sh")
        .args([
            "-c",
            &documented("NDN_SANDBOX=1 DATABASE_URL=sqlite://sandbox/ndn.db ./server"),
        ])
        .current_dir(&release)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut sandbox).await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{base}/sandbox")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let group = sandbox.id().unwrap();
    let (code, output) = shell(&release, &format!("kill -TERM -{group}"), &[]).await;
    assert_eq!(code, 0, "{output}");
    sandbox.wait().await.unwrap();
    let mut stopped = false;
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the sandbox still answers after SIGTERM");
    assert!(
        !release.join("data").exists(),
        "the sandbox kept to its own database"
    );

    // `.env` as the guide has it, with this test's bot and its fake Telegram.
    let (telegram, telegram_url) = serve_fake_telegram().await;
    let port = free_port();
    let mut env = String::new();
    for (key, value) in env_block_of_the_guide() {
        let value = match key.as_str() {
            "TELEGRAM_BOT_TOKEN" => TOKEN.to_owned(),
            "TELEGRAM_WEBHOOK_SECRET" => SECRET.to_owned(),
            "LEPTOS_SITE_ADDR" => format!("127.0.0.1:{port}"),
            _ => value,
        };
        env.push_str(&format!("{key}={value}\n"));
    }
    assert!(env.contains("PUBLIC_URL=https://"), "{env}");
    env.push_str(&format!("TELEGRAM_API_URL={telegram_url}\n"));
    std::fs::write(release.join(".env"), &env).unwrap();

    let (code, output) = shell(&release, &documented("./server migrate"), &[]).await;
    assert_eq!(code, 0, "{output}");
    let (code, output) = shell(&release, &documented("./server webhook set"), &[]).await;
    assert_eq!(code, 0, "{output}");
    let registered = telegram.last_call_params("setWebhook").unwrap();
    assert!(
        registered["url"]
            .as_str()
            .unwrap()
            .ends_with("/webhook/telegram"),
        "{registered}"
    );

    let mut serving = tokio::process::Command::new("sh")
        .args(["-c", &format!("exec {}", documented("./server serve"))])
        .current_dir(&release)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut serving).await;
    let (code, output) = shell(&release, &documented("./server health"), &[]).await;
    assert_eq!(code, 0, "{output}");

    // The Mini App's page and its hashed files, from site/ beside the binary.
    let page = http.get(&base).send().await.unwrap().text().await.unwrap();
    let wasm = page
        .split('"')
        .find(|part| part.starts_with("/pkg/") && part.ends_with(".wasm"))
        .unwrap_or_else(|| panic!("no wasm in the page: {page}"))
        .to_owned();
    let answer = http.get(format!("{base}{wasm}")).send().await.unwrap();
    assert_eq!(answer.status(), 200, "{wasm}");

    // A purchase, as Telegram delivers it.
    let init_data = signed_init_data(BUYER);
    let invoice = server_function(
        &http,
        &base,
        "create_invoice",
        &init_data,
        "package_id=ndn-500",
    )
    .await;
    let order = invoice["order_id"].as_str().unwrap().to_owned();
    let deliver = |update: Value| {
        http.post(format!("{base}/webhook/telegram"))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(&update)
            .send()
    };
    let answer = deliver(pre_checkout(1, BUYER, &order, "XTR", 225))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let charge = telegram.record_charge(UserId(BUYER), 225, &order);
    let answer = deliver(successful_payment(2, BUYER, &order, 225, &charge))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let wallet = server_function(&http, &base, "wallet", &init_data, "").await;
    assert_eq!(wallet["balance"], 500, "{wallet}");

    // A backup while it serves, then the server stops (SIGTERM, as systemd does).
    let backup = documented("./server backup backups/ndn-$(date +%F).db");
    let (code, output) = shell(&release, &backup, &[]).await;
    assert_eq!(code, 0, "{output}");
    let (code, output) = shell(&release, &documented("./server ledger verify"), &[]).await;
    assert_eq!(code, 0, "{output}");
    let pid = serving.id().unwrap().to_string();
    let (code, output) = shell(&release, &format!("kill -TERM {pid}"), &[]).await;
    assert_eq!(code, 0, "{output}");
    let stopped = tokio::time::timeout(Duration::from_secs(30), serving.wait())
        .await
        .expect("the server stops on SIGTERM")
        .unwrap();
    assert!(stopped.success(), "{stopped}");

    // A new machine: the release unpacked again, the same .env, the backups copied over.
    let fresh = unpack(&tarball, &machine.path().join("new-machine")).await;
    std::fs::copy(release.join(".env"), fresh.join(".env")).unwrap();
    let (code, output) = shell(
        &fresh,
        &format!("cp -r '{}' backups", release.join("backups").display()),
        &[],
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let restore = documented("./server restore backups/ndn-$(date +%F).db");
    let (code, output) = shell(&fresh, &restore, &[]).await;
    assert_eq!(code, 0, "{output}");
    let (code, report) = shell(&fresh, &documented("./server ledger verify"), &[]).await;
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("transfers: 1"), "{report}");
    assert!(report.contains("OK: the books balance"), "{report}");
}

/// The image as a container runtime would run it: its layers unpacked into a folder, the
/// entrypoint run there under `chroot` as the image's user with the image's environment (and
/// `NDN_SANDBOX=1` on a loopback address, which the sandbox requires): `/healthz` answers, the
/// sandbox page loads, a purchase credits, `server health` is the healthcheck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the release: scripts/test runs it after scripts/release"]
async fn the_image_runs_from_its_layers() {
    let archive = artifact("NDN_RELEASE_IMAGE");
    let work = tempfile::tempdir().unwrap();
    let (code, output) = shell(
        work.path(),
        &format!(
            "mkdir archive rootfs && tar -xf '{}' -C archive",
            archive.display()
        ),
        &[],
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("archive/manifest.json")).unwrap())
            .unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(
            work.path()
                .join("archive")
                .join(manifest[0]["Config"].as_str().unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let config = &config["config"];
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert_eq!(config["Entrypoint"], json!(["/app/server"]), "{config}");
    assert_eq!(config["Cmd"], json!(["serve"]), "{config}");
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    assert!(config["ExposedPorts"].get("3000/tcp").is_some(), "{config}");
    assert_eq!(
        config["Healthcheck"]["Test"],
        json!(["CMD", "/app/server", "health"]),
        "{config}"
    );
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let (code, output) = shell(
            work.path(),
            &format!(
                "tar --same-owner -xf 'archive/{}' -C rootfs",
                layer.as_str().unwrap()
            ),
            &[],
        )
        .await;
        assert_eq!(code, 0, "{output}");
    }
    let rootfs = work.path().join("rootfs");
    for file in [
        "app/server",
        "app/hash.txt",
        "app/site/pkg",
        "etc/ssl/certs/ca-certificates.crt",
        "usr/share/zoneinfo/Europe/Moscow",
        "etc/passwd",
    ] {
        assert!(rootfs.join(file).exists(), "{file} is not in the image");
    }
    assert!(!rootfs.join("bin/sh").exists(), "the image has a shell");

    let port = free_port();
    let mut vars: Vec<(String, String)> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let (key, value) = pair.as_str().unwrap().split_once('=').unwrap();
            (key.to_owned(), value.to_owned())
        })
        .filter(|(key, _)| key != "LEPTOS_SITE_ADDR")
        .collect();
    vars.push(("LEPTOS_SITE_ADDR".into(), format!("127.0.0.1:{port}")));
    vars.push(("NDN_SANDBOX".into(), "1".into()));
    let user = config["User"].as_str().unwrap();
    let workdir = config["WorkingDir"].as_str().unwrap();
    let mut command = tokio::process::Command::new("chroot");
    command
        .arg(format!("--userspec={user}"))
        .arg(&rootfs)
        .arg("/app/server")
        .arg("serve")
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .kill_on_drop(true);
    assert_eq!(workdir, "/data");
    let mut container = command.spawn().expect("chroot runs (as root)");
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut container).await;

    // The healthcheck, as the runtime runs it: inside, as the user.
    let status = tokio::process::Command::new("chroot")
        .arg(format!("--userspec={user}"))
        .arg(&rootfs)
        .args(["/app/server", "health"])
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .status()
        .await
        .unwrap();
    assert!(status.success(), "server health: {status}");

    let http = reqwest::Client::new();
    let page = http.get(format!("{base}/sandbox")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let alice = 100_001;
    let (init_data, slug) = sandbox_invoice(&http, &base, alice, "ndn-500").await;
    let paid = http
        .post(format!("{base}/sandbox/api/pay"))
        .json(&json!({ "user": alice, "slug": slug }))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let mut balance = Value::Null;
    for _ in 0..100 {
        balance = server_function(&http, &base, "wallet", &init_data, "").await["balance"].clone();
        if balance == 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(balance, 500);
    // The database is in the volume, written as the image's user.
    let data = rootfs.join("data/ndn.db");
    assert!(data.exists());
    let (code, owner) = shell(
        work.path(),
        &format!("stat -c %u '{}'", data.display()),
        &[],
    )
    .await;
    assert_eq!((code, owner.trim()), (0, "10001"));
    container.kill().await.unwrap();
}

/// `compose.yaml` as podman-compose reads it (`--dry-run`: it prints the containers it would
/// run; running them does not work on these machines): the release's image with its volume and
/// the environment it needs, Caddy in front for the domain. Docker Compose was not run here.
#[tokio::test]
#[ignore = "needs podman-compose: scripts/test runs it after scripts/release"]
async fn the_compose_file_runs_the_image_behind_caddy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        root.join("compose.yaml"),
        folder.path().join("compose.yaml"),
    )
    .unwrap();
    std::fs::write(folder.path().join(".env"), "NDN_DOMAIN=ndn.example.org\n").unwrap();
    let project = format!("ndncheck{}", std::process::id());
    let vars = [("NDN_DOMAIN", "ndn.example.org")];
    let (code, plan) = shell(
        folder.path(),
        &format!("podman-compose --dry-run -p {project} -f compose.yaml up -d"),
        &vars,
    )
    .await;
    // --dry-run still creates the volumes and the network: remove them.
    let _ = shell(
        folder.path(),
        &format!(
            "podman volume rm {project}_ndn-data {project}_caddy-data; \
             podman network rm {project}_default"
        ),
        &[],
    )
    .await;
    assert_eq!(code, 0, "{plan}");
    let run_line = |service: &str| {
        plan.lines()
            .find(|line| {
                line.starts_with("podman run")
                    && line.contains(&format!("--name={project}_{service}_1"))
            })
            .unwrap_or_else(|| panic!("no {service} container in:\n{plan}"))
            .to_owned()
    };
    let ndn = run_line("ndn");
    let version = env!("CARGO_PKG_VERSION");
    for part in [
        format!("-v {project}_ndn-data:/data"),
        "-e DATABASE_URL=sqlite:///data/ndn.db".to_owned(),
        "-e LEPTOS_SITE_ADDR=0.0.0.0:3000".to_owned(),
        "--env-file".to_owned(),
        format!("localhost/ndn:{version}"),
    ] {
        assert!(ndn.contains(&part), "`{part}` not in: {ndn}");
    }
    let caddy = run_line("caddy");
    assert!(
        caddy.contains("-p 443:443")
            && caddy.contains("reverse-proxy --from ndn.example.org --to ndn:3000"),
        "{caddy}"
    );
}
