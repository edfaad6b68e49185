//! Arbitrary input never panics, never loops, and keeps the table's invariants.

use super::*;

/// xorshift64*: deterministic, so a failure reproduces from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fragments that steer the parsers into their less common states.
const FRAGMENTS: [&[u8]; 14] = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 7\r\n\r\n",
    b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"\r\n",
    b"\n\n",
    b"FFFFFFFFFFFFFFFFF\r\n",
    b"HTTP/1.1 9",
];

fn soup(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..rng.below(4) {
        if rng.below(3) == 0 {
            let n = rng.below(40) as usize;
            bytes.extend((0..n).map(|_| rng.next() as u8));
        } else {
            bytes.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len() as u64) as usize]);
        }
    }
    bytes
}

fn ret_for(rng: &mut Rng, bytes: &[u8]) -> i64 {
    match rng.below(10) {
        0 => -i64::from(libc::EAGAIN),
        1 => -i64::from(libc::EPIPE),
        2 => 0,
        // More moved than was captured: invisible bytes.
        3 => bytes.len() as i64 + rng.below(5_000) as i64,
        _ => bytes.len() as i64,
    }
}

#[test]
fn random_event_streams_keep_invariants() {
    let mut statuses = 0;
    let mut aborts = 0;
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut sim = Sim::with_cap(4);
        for _ in 0..400 {
            let fd = rng.below(6) as i32;
            let ts = 1_000 + rng.below(1_000_000);
            match rng.below(12) {
                0 => sim.accept(fd, ts),
                1..=4 => {
                    let bytes = soup(&mut rng);
                    let ret = ret_for(&mut rng, &bytes);
                    let shown = &bytes[..bytes.len().min(1024)];
                    sim.read_ret(fd, ts, ret, shown);
                }
                5..=8 => {
                    let bytes = soup(&mut rng);
                    let ret = ret_for(&mut rng, &bytes);
                    let shown = &bytes[..bytes.len().min(1024)];
                    sim.write_ret(fd, ts, ret, shown);
                }
                9 => sim.shutdown(fd, ts),
                10 => sim.close(fd, ts),
                _ => sim.exit(if rng.below(2) == 0 { TGID } else { TGID + 1 }, ts),
            }
            assert!(sim.table.len() <= 4, "seed {seed}: table over its cap");
        }

        for output in sim.take() {
            if let Output::Request(done) = output {
                assert!(done.end_ns >= done.start_ns, "seed {seed}: {done:?}");
                assert_eq!(done.conn.tgid, TGID, "seed {seed}");
                match done.outcome {
                    Outcome::Status(_) => statuses += 1,
                    Outcome::Aborted(_) => aborts += 1,
                }
            }
        }
        // Every connection ends with its process.
        sim.exit(TGID, u64::MAX);
        assert!(sim.table.is_empty(), "seed {seed}: connections left");
    }
    // The soup is meant to reach the reporting paths, not only the error ones.
    assert!(statuses > 0 && aborts > 0);
}
