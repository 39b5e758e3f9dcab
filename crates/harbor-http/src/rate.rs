//! Rates per identity: a token bucket for each authenticated identity, refilled at
//! `per_second` up to `burst`. An identity over its rate gets `429` with `Retry-After`, so one
//! partner's runaway loop cannot take the others' share; the broker as a whole is protected by
//! the admission classes (`shed`).

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

/// Buckets kept at most; past it, those full again (idle long enough) are forgotten.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Requests per second each identity may sustain; 0 turns rates off.
    pub per_second: f64,
    /// Requests an identity may send at once after being idle.
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every identity.
pub struct Rates {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Rates {
    pub fn new(limit: RateLimit) -> Option<Rates> {
        (limit.per_second > 0.0).then(|| Rates {
            limit: RateLimit {
                per_second: limit.per_second,
                burst: limit.burst.max(1.0),
            },
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token for `who`; when there is none, the seconds until there is.
    pub fn take(&self, who: &str) -> Result<(), u64> {
        self.take_at(who, Instant::now())
    }

    fn take_at(&self, who: &str, now: Instant) -> Result<(), u64> {
        let RateLimit { per_second, burst } = self.limit;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(who) {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst
            });
        }
        let b = buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rates = Rates::new(RateLimit {
            per_second: 10.0,
            burst: 5.0,
        })
        .unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(rates.take_at("a", t0).is_ok());
        }
        assert_eq!(rates.take_at("a", t0), Err(1));
        assert!(
            rates.take_at("b", t0).is_ok(),
            "each identity has its own bucket"
        );
        assert!(rates.take_at("a", t0 + Duration::from_millis(100)).is_ok());
        assert!(rates.take_at("a", t0 + Duration::from_millis(100)).is_err());
        assert!(Rates::new(RateLimit {
            per_second: 0.0,
            burst: 1.0
        })
        .is_none());
    }
}
