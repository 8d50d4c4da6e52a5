//! `start.sh`'s Redis (G7): the redis-server it starts has a `maxmemory` (REDIS_MAXMEMORY,
//! default 1gb) and `noeviction`, and a Redis it did not start is checked for both. Its
//! `--redis-args` and `--check-redis` modes run exactly the code its normal run uses, and stop
//! before anything is built or started.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fred::interfaces::ClientLike;
use fred::interfaces::ConfigInterface;
use fred::types::config::Config;
use fred::types::Builder;

use crate::helpers::{free_port, TestRedis};

fn start_sh(args: &[&str], env: &[(&str, String)]) -> Output {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    Command::new("bash")
        .arg(root.join("start.sh"))
        .args(args)
        .env_remove("REDIS_MAXMEMORY")
        .env_remove("REDIS_URL")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("bash runs start.sh")
}

/// The redis-server arguments start.sh would use.
fn redis_args(env: &[(&str, String)]) -> Vec<String> {
    let out = start_sh(&["--redis-args"], env);
    assert!(out.status.success(), "start.sh --redis-args: {out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

async fn config_get(port: u16, name: &str) -> String {
    let config = Config::from_url(&format!("redis://127.0.0.1:{port}")).expect("a URL");
    let client = Builder::from_config(config).build().expect("a client");
    client.init().await.expect("the Redis answers");
    let (_, value): (String, String) = client.config_get(name).await.expect("CONFIG GET");
    value
}

#[tokio::test]
async fn start_sh_runs_its_redis_with_the_maxmemory_of_redis_maxmemory_and_noeviction() {
    // The default is 1gb.
    let port = free_port();
    let url = ("REDIS_URL", format!("redis://127.0.0.1:{port}"));
    let args = redis_args(std::slice::from_ref(&url));
    assert_eq!(value_of(&args, "--maxmemory"), Some("1gb"), "{args:?}");
    assert_eq!(
        value_of(&args, "--maxmemory-policy"),
        Some("noeviction"),
        "{args:?}"
    );

    // A real redis-server started with those arguments (in a directory of the test's own) has
    // the limit and the policy.
    let args = redis_args(&[url, ("REDIS_MAXMEMORY", "64mb".to_owned())]);
    assert_eq!(value_of(&args, "--port"), Some(port.to_string().as_str()));
    let dir = std::env::temp_dir().join(format!("e2e-start-sh-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let mut args = args;
    let at = args.iter().position(|a| a == "--dir").expect("--dir") + 1;
    args[at] = dir.display().to_string();
    let mut server = Command::new("redis-server")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server {args:?} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let max = config_get(port, "maxmemory").await;
    let policy = config_get(port, "maxmemory-policy").await;
    let aof = config_get(port, "appendonly").await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(max, (64 * 1024 * 1024).to_string(), "maxmemory");
    assert_eq!(policy, "noeviction");
    assert_eq!(aof, "yes");

    // A limit that is not a size stops start.sh, naming the variable.
    let out = start_sh(&["--redis-args"], &[("REDIS_MAXMEMORY", "lots".to_owned())]);
    assert!(!out.status.success(), "REDIS_MAXMEMORY=lots was taken");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("REDIS_MAXMEMORY"), "{said}");
}

#[tokio::test]
async fn start_sh_warns_about_a_redis_it_did_not_start_that_could_grow_or_evict() {
    let redis = TestRedis::start();
    let url = ("REDIS_URL", redis.url());
    let check = || {
        let out = start_sh(&["--check-redis"], std::slice::from_ref(&url));
        assert!(out.status.success(), "start.sh --check-redis: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = check();
    assert!(said.contains("has no maxmemory"), "no limit: {said}");

    let client = redis.client().await;
    let _: () = client
        .config_set("maxmemory", "100mb")
        .await
        .expect("CONFIG SET");
    let _: () = client
        .config_set("maxmemory-policy", "allkeys-lru")
        .await
        .expect("CONFIG SET");
    let said = check();
    assert!(
        said.contains("maxmemory-policy allkeys-lru") && !said.contains("no maxmemory"),
        "an evicting policy: {said}"
    );

    let _: () = client
        .config_set("maxmemory-policy", "noeviction")
        .await
        .expect("CONFIG SET");
    let said = check();
    assert!(!said.contains("warning"), "a limit and noeviction: {said}");
}

#[test]
fn start_sh_does_not_start_a_lone_redis_for_a_cluster_url_and_says_what_to_do() {
    // Arrange: a cluster URL whose first node does not answer (no cluster there).
    let port = free_port();
    let url = format!(
        "redis-cluster://127.0.0.1:{port}?node=127.0.0.1:{}",
        free_port()
    );

    // Act
    let out = start_sh(&[], &[("REDIS_URL", url)]);

    // Assert: it stops at once, before building or starting anything, and nothing listens.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start.sh stops: {stderr}");
    assert!(
        stderr.contains("not a cluster") && stderr.contains("--cluster create"),
        "it says it starts no cluster and how to make one: {stderr}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no redis-server was started on {port}"
    );
}
