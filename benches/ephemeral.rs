//! The ephemeral store's put and take (every login writes ceremonies, a session, a pending
//! request and a code through it): `MemoryStore`, and `RedisStore` when Redis answers at
//! `LATCHKEY_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`; skipped with a notice
//! otherwise). Run with `cargo bench --bench ephemeral`.

use std::{sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::ephemeral::{EphemeralStore, memory::MemoryStore, redis::RedisStore};

/// About the size of a stored session or authorization code.
const VALUE: [u8; 400] = [b'x'; 400];
const TTL: Duration = Duration::from_secs(600);

fn put_take(c: &mut Criterion, name: &str, store: Arc<dyn EphemeralStore>, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group(format!("ephemeral/{name}"));
    let mut n = 0u64;
    group.bench_function("put_then_take", |b| {
        b.to_async(runtime).iter(|| {
            n += 1;
            let (store, key) = (store.clone(), format!("bench:{n}"));
            async move {
                store.put(&key, VALUE.to_vec(), TTL).await.unwrap();
                store.take(&key).await.unwrap().unwrap()
            }
        })
    });
    let filled: Vec<String> = (0..10_000).map(|i| format!("bench:live:{i}")).collect();
    runtime.block_on(async {
        for key in &filled {
            store.put(key, VALUE.to_vec(), TTL).await.unwrap();
        }
    });
    let mut i = 0usize;
    group.bench_function("get_among_10k", |b| {
        b.to_async(runtime).iter(|| {
            i = (i + 1) % filled.len();
            let (store, key) = (store.clone(), filled[i].clone());
            async move { store.get(&key).await.unwrap().unwrap() }
        })
    });
    runtime.block_on(async {
        for key in &filled {
            store.delete(key).await.unwrap();
        }
    });
    group.finish();
}

fn stores(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    put_take(c, "memory", Arc::new(MemoryStore::new()), &runtime);
    let url = std::env::var("LATCHKEY_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("latchkey-bench:{}:", uuid::Uuid::new_v4().simple());
    let connect = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(2), RedisStore::connect(&url, &prefix)).await });
    match connect {
        Ok(Ok(redis)) => put_take(c, "redis", Arc::new(redis), &runtime),
        _ => eprintln!("notice: no Redis at {url}; skipping the Redis store benchmarks"),
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
