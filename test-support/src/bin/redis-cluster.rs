//! `redis-cluster`: starts a Redis Cluster of three masters and three replicas on loopback
//! ports, prints its `redis+cluster://` URL on one line, and keeps it until its standard input
//! closes (then every node goes with the process). The test command starts one for the whole
//! run and hands its URL to the tests as `TEST_REDIS_CLUSTER_URL`, so the tests share one
//! cluster instead of starting one each.

use std::io::{Read, Write};

use baatcheet_test_support::redis_server::RedisCluster;

fn main() {
    let cluster = RedisCluster::start();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", cluster.url());
    let _ = out.flush();
    // Until stdin closes (EOF) or fails.
    let mut sink = [0u8; 64];
    while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    drop(cluster);
}
