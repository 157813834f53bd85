//! The lateness buffer: turns arrival order into event-time order.
//!
//! `watermark = max event time seen − lateness`. Events wait in a deque kept
//! sorted by (time, arrival) until the watermark reaches them; in-order
//! arrivals are an O(1) push to the back. An event older than the watermark
//! on arrival is late and refused (the caller counts it): letting it in would
//! change verdicts already emitted. The buffer does not evaluate anything.

use std::collections::VecDeque;

use secmon_core::Event;

#[derive(Debug)]
pub(crate) struct Reorder {
    buf: VecDeque<Event>,
    lateness: i64,
    watermark: i64,
}

impl Reorder {
    pub fn new(lateness: i64) -> Self {
        Reorder {
            buf: VecDeque::new(),
            lateness: lateness.max(0),
            watermark: i64::MIN,
        }
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Buffers `ev` and raises the watermark; gives the event back if late.
    pub fn push(&mut self, ev: Event) -> Result<(), Event> {
        let t = ev.time.as_millis();
        if t < self.watermark {
            return Err(ev);
        }
        match self.buf.back() {
            Some(last) if last.time > ev.time => {
                // After every event with the same time: ties keep arrival order.
                let at = self.buf.partition_point(|e| e.time <= ev.time);
                self.buf.insert(at, ev);
            }
            _ => self.buf.push_back(ev),
        }
        self.raise(t.saturating_sub(self.lateness));
        Ok(())
    }

    /// Raises (never lowers) the watermark.
    pub fn raise(&mut self, w: i64) {
        self.watermark = self.watermark.max(w);
    }

    /// Time of the oldest buffered event.
    pub fn front_time(&self) -> Option<i64> {
        self.buf.front().map(|e| e.time.as_millis())
    }

    pub fn pop_front(&mut self) -> Option<Event> {
        self.buf.pop_front()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secmon_core::{Fields, Timestamp};

    fn ev(t: i64) -> Event {
        Event::new(Timestamp(t), Fields::new())
    }

    #[test]
    fn sorts_and_refuses_late() {
        let mut r = Reorder::new(10);
        r.push(ev(100)).unwrap();
        r.push(ev(95)).unwrap();
        r.push(ev(98)).unwrap();
        assert_eq!(r.watermark(), 90);
        assert!(r.push(ev(89)).is_err());
        assert!(r.push(ev(90)).is_ok());
        let order: Vec<i64> = std::iter::from_fn(|| r.pop_front())
            .map(|e| e.time.0)
            .collect();
        assert_eq!(order, vec![90, 95, 98, 100]);
    }
}
