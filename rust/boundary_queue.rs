//! A bounded lock-free multi-producer queue for step and window boundaries.
//!
//! `mark_step()` may be called from any thread (free-threaded Python has no GIL to serialise
//! callers), so the push side must be multi-producer; the sampler thread is the one consumer.
//! This is Vyukov's bounded queue: each slot carries a sequence number that says whose turn it
//! is, so a push is one compare-and-swap on the tail plus two stores, with no lock and no
//! allocation. When the queue is full the push fails and the caller counts a drop.

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BoundaryKind {
    Step = 1,
    WindowOpen = 2,
    WindowClose = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boundary {
    pub t_ns: u64,
    pub kind: BoundaryKind,
    /// The window's registered name; 0 for steps.
    pub name_id: u32,
    /// Boundaries dropped (queue full) before this one was pushed, so that the record spanning
    /// the lost marks is the one flagged, however late the boundaries are resolved.
    pub drops_before: u32,
}

/// A slot's sequence number is kept relative to the slot's index (`sequence - index`), so that
/// an all-zero slot is a fresh one (sequence == index, nothing written): the slots come from
/// zeroed memory, which the allocator hands out untouched, and a new queue costs no pass over
/// its megabytes (a run's start, on the training thread).
struct Slot {
    sequence_offset: AtomicUsize,
    value: UnsafeCell<MaybeUninit<Boundary>>,
}

impl Slot {
    #[inline]
    fn sequence(&self, index: usize, ordering: Ordering) -> usize {
        self.sequence_offset.load(ordering).wrapping_add(index)
    }

    #[inline]
    fn set_sequence(&self, index: usize, sequence: usize, ordering: Ordering) {
        self.sequence_offset
            .store(sequence.wrapping_sub(index), ordering);
    }
}

/// Keeps head and tail on separate cache lines so producers and the consumer do not contend.
#[repr(align(128))]
struct Padded(AtomicUsize);

pub struct BoundaryQueue {
    slots: Box<[Slot]>,
    mask: usize,
    tail: Padded,
    head: Padded,
}

// SAFETY: a slot's value is written only by the producer that won its sequence number and read
// only by the one consumer (`BoundaryConsumer`, which is not Sync and pops through `&mut`) after
// the release store that publishes it.
unsafe impl Sync for BoundaryQueue {}

/// The one reading end of a queue. It is not `Sync` and pops through `&mut self`, so two
/// threads can never pop at once: the soundness of `pop` rests on the types, not on a comment.
pub struct BoundaryConsumer {
    queue: Arc<BoundaryQueue>,
    _not_sync: PhantomData<Cell<()>>,
}

impl BoundaryQueue {
    /// A queue and its only consumer. `capacity` is rounded up to a power of two (at least 2).
    pub fn with_consumer(capacity: usize) -> (Arc<BoundaryQueue>, BoundaryConsumer) {
        let queue = Arc::new(BoundaryQueue::new(capacity));
        let consumer = BoundaryConsumer {
            queue: Arc::clone(&queue),
            _not_sync: PhantomData,
        };
        (queue, consumer)
    }

    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2).next_power_of_two();
        // SAFETY: all zero bits are a valid `Slot`: a zero `AtomicUsize` (a fresh slot, see
        // `Slot`) and a `MaybeUninit` value, which is read only after a producer wrote it.
        let slots = unsafe { Box::<[Slot]>::new_zeroed_slice(capacity).assume_init() };
        BoundaryQueue {
            slots,
            mask: capacity - 1,
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(AtomicUsize::new(0)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Returns false when the queue is full; never blocks.
    #[inline]
    pub fn push(&self, value: Boundary) -> bool {
        let mut position = self.tail.0.load(Ordering::Relaxed);
        loop {
            let index = position & self.mask;
            let slot = &self.slots[index];
            let sequence = slot.sequence(index, Ordering::Acquire);
            let lag = sequence as isize - position as isize;
            if lag == 0 {
                match self.tail.0.compare_exchange_weak(
                    position,
                    position + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS gives this producer exclusive use of the slot.
                        unsafe { (*slot.value.get()).write(value) };
                        slot.set_sequence(index, position + 1, Ordering::Release);
                        return true;
                    }
                    Err(current) => position = current,
                }
            } else if lag < 0 {
                return false;
            } else {
                position = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }
}

impl BoundaryConsumer {
    #[inline]
    pub fn pop(&mut self) -> Option<Boundary> {
        let queue = &*self.queue;
        let position = queue.head.0.load(Ordering::Relaxed);
        let index = position & queue.mask;
        let slot = &queue.slots[index];
        if slot.sequence(index, Ordering::Acquire) != position + 1 {
            return None;
        }
        // SAFETY: the sequence says a producer finished writing this slot.
        let value = unsafe { (*slot.value.get()).assume_init() };
        slot.set_sequence(index, position + queue.mask + 1, Ordering::Release);
        queue.head.0.store(position + 1, Ordering::Relaxed);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(t_ns: u64) -> Boundary {
        Boundary {
            t_ns,
            kind: BoundaryKind::Step,
            name_id: 0,
            drops_before: 0,
        }
    }

    #[test]
    fn pops_in_push_order() {
        let (queue, mut consumer) = BoundaryQueue::with_consumer(8);
        for t in 0..5 {
            assert!(queue.push(step(t)));
        }
        let popped: Vec<u64> = std::iter::from_fn(|| consumer.pop())
            .map(|b| b.t_ns)
            .collect();
        assert_eq!(popped, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn many_laps_around_the_ring_keep_order_and_capacity() {
        // Each lap leaves the slots' relative sequence numbers further from zero; a queue
        // that started from zeroed memory must behave the same on every lap.
        let (queue, mut consumer) = BoundaryQueue::with_consumer(4);
        let mut next_push = 0u64;
        let mut next_pop = 0u64;
        for lap in 0..1000u64 {
            let fill = 1 + lap % 4;
            for _ in 0..fill {
                assert!(queue.push(step(next_push)));
                next_push += 1;
            }
            if fill == 4 {
                assert!(
                    !queue.push(step(u64::MAX)),
                    "a full queue took a fifth value"
                );
            }
            for _ in 0..(1 + lap % fill) {
                assert_eq!(consumer.pop().map(|b| b.t_ns), Some(next_pop));
                next_pop += 1;
            }
            while let Some(boundary) = consumer.pop() {
                assert_eq!(boundary.t_ns, next_pop);
                next_pop += 1;
            }
        }
        assert_eq!(next_pop, next_push);
    }

    #[test]
    fn full_queue_refuses_push_and_recovers_after_pop() {
        let (queue, mut consumer) = BoundaryQueue::with_consumer(4);
        for t in 0..4 {
            assert!(queue.push(step(t)));
        }
        assert!(!queue.push(step(99)));
        assert_eq!(consumer.pop().unwrap().t_ns, 0);
        assert!(queue.push(step(4)));
        let rest: Vec<u64> = std::iter::from_fn(|| consumer.pop())
            .map(|b| b.t_ns)
            .collect();
        assert_eq!(rest, vec![1, 2, 3, 4]);
    }

    #[test]
    fn concurrent_producers_lose_nothing_that_was_accepted() {
        let (queue, mut consumer) = BoundaryQueue::with_consumer(1 << 16);
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    (0..10_000u64)
                        .filter(|i| queue.push(step(p * 1_000_000 + i)))
                        .count()
                })
            })
            .collect();
        let accepted: usize = producers.into_iter().map(|h| h.join().unwrap()).sum();
        let mut seen: Vec<u64> = std::iter::from_fn(|| consumer.pop())
            .map(|b| b.t_ns)
            .collect();
        assert_eq!(seen.len(), accepted);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), accepted, "no value was delivered twice");
    }
}
