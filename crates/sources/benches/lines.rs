//! Line splitting throughput: `next_item` per line and `next_batch` into a
//! reused 256 KiB batch, over 64 MiB of sshd-like lines held in memory (so
//! the figure is the splitter's, not the disk's).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secmon_sources::{Item, LineBatch, LineReader};

fn corpus() -> Vec<u8> {
    let mut data = Vec::with_capacity(64 << 20);
    let mut i = 0u64;
    while data.len() < 64 << 20 {
        let line = format!(
            "Jan  3 12:{:02}:{:02} host sshd[{}]: Failed password for invalid user admin{} from 203.0.113.{} port {} ssh2\n",
            i % 60,
            (i / 60) % 60,
            1000 + i % 50000,
            i % 97,
            i % 250,
            1024 + i % 60000
        );
        data.extend_from_slice(line.as_bytes());
        i += 1;
    }
    data
}

fn bench(c: &mut Criterion) {
    let data = corpus();
    let mut g = c.benchmark_group("lines");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("next_item", |b| {
        b.iter(|| {
            let mut r = LineReader::new(&data[..]);
            let mut n = 0u64;
            while let Some(item) = r.next_item().expect("in-memory read") {
                if let Item::Line { bytes, .. } = item {
                    n += bytes.len() as u64;
                }
            }
            black_box(n)
        })
    });
    g.bench_function("next_batch_256k", |b| {
        let mut batch = LineBatch::new(256 << 10);
        b.iter(|| {
            let mut r = LineReader::new(&data[..]);
            let mut n = 0usize;
            while r.next_batch(&mut batch).expect("in-memory read") {
                n += batch.len();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
