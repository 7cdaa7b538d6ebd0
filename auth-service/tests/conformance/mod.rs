//! One conformance suite for the store traits, run against every backend. A backend is
//! correct when it passes all of it; the flows rely on nothing more.

mod suite;

use std::{path::Path, sync::Arc};

use auth_service::store::{Stores, sqlite::SqliteStore};

/// Instantiates every test of the suite for one backend factory.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            suite::all_tests!($make);
        }
    };
}

async fn sqlite_memory() -> Stores {
    sqlite(SqliteStore::open(Path::new(":memory:")).unwrap())
}

async fn sqlite_file() -> Stores {
    let dir = tempfile::tempdir().unwrap().keep();
    sqlite(SqliteStore::open(&dir.join("conformance.sqlite3")).unwrap())
}

/// Every store from one SQLite file, GetCurrentUser's one-job read included.
fn sqlite(store: SqliteStore) -> Stores {
    let store = Arc::new(store);
    Stores::single(store.clone()).with_current_user(store)
}

conformance!(sqlite_in_memory, sqlite_memory());
conformance!(sqlite_on_disk, sqlite_file());

/// What only the embedded backend has: GetCurrentUser's reads in one job.
mod sqlite_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_current_user_read_agrees_with_the_four_stores() {
        suite::the_current_user_read_agrees_with_the_four_stores(sqlite_file().await).await;
        suite::the_current_user_read_agrees_with_the_four_stores(sqlite_memory().await).await;
    }
}

mod mongo_backend;
conformance!(mongo, mongo_backend::stores());

mod redis_backend;
conformance!(redis, redis_backend::stores());
conformance!(redis_cluster_node, redis_backend::cluster_stores());
conformance!(redis_cluster, redis_backend::real_cluster_stores());
