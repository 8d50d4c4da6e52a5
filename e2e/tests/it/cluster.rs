//! Redis Cluster (G11): what only a cluster shows. The guarantee tests themselves run on a
//! cluster too, unchanged, with `E2E_REDIS=cluster` (see `helpers::RedisKind`).

use std::collections::HashMap;
use std::path::PathBuf;

use queue_core::Settings;

use crate::helpers::{RedisKind, TestRedis};

/// The test settings with REDIS_URL set to `url`.
fn settings_for(url: &str) -> Settings {
    let env = HashMap::from([
        ("REDIS_URL".to_owned(), url.to_owned()),
        ("PORT".to_owned(), "0".to_owned()),
        ("LOG_LEVEL".to_owned(), "warn".to_owned()),
    ]);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    Settings::load_with(&dir, |name| env.get(name).cloned()).expect("valid settings")
}

#[tokio::test]
async fn a_plain_url_naming_a_cluster_node_stops_startup_saying_what_to_write() {
    // Arrange: a cluster, named by a plain redis:// URL of one of its nodes.
    let cluster = TestRedis::start_cluster(&[]);
    let settings = settings_for(&format!("redis://127.0.0.1:{}", cluster.port));

    // Act: the API and a worker start.
    let api = api::Application::build(&settings).await;
    let worker = worker::Application::build(&settings, "w".into()).await;

    // Assert: both refuse, naming the cluster form and the cluster's primaries as seeds.
    let primaries = cluster.primary_ports();
    for (who, error) in [
        ("the API", api.err().map(|e| format!("{e:#}"))),
        ("a worker", worker.err().map(|e| format!("{e:#}"))),
    ] {
        let error = error.unwrap_or_else(|| panic!("{who} refuses to start"));
        assert!(
            error.contains("is a Redis Cluster node") && error.contains("write redis-cluster://"),
            "{who} says what is wrong and what to write: {error}"
        );
        for port in &primaries {
            assert!(
                error.contains(&format!("127.0.0.1:{port}")),
                "{who} names primary {port} in the URL to write: {error}"
            );
        }
    }
}

#[tokio::test]
async fn a_cluster_url_naming_a_lone_redis_stops_startup_saying_what_to_write() {
    // Arrange: one redis-server, named by a cluster URL.
    let redis = TestRedis::start_kind(RedisKind::Single, &[]);
    let settings = settings_for(&format!("redis-cluster://127.0.0.1:{}", redis.port));

    // Act
    let api = api::Application::build(&settings).await;
    let worker = worker::Application::build(&settings, "w".into()).await;

    // Assert
    let want = format!("write redis://127.0.0.1:{}", redis.port);
    for (who, error) in [
        ("the API", api.err().map(|e| format!("{e:#}"))),
        ("a worker", worker.err().map(|e| format!("{e:#}"))),
    ] {
        let error = error.unwrap_or_else(|| panic!("{who} refuses to start"));
        assert!(
            error.contains("is not a Redis Cluster node") && error.contains(&want),
            "{who} says what is wrong and `{want}`: {error}"
        );
    }
}
