//! Frames waiting to be scored: one slot per camera, latest frame wins.
//!
//! Overload policy: when frames come faster than they can be scored, a
//! camera's waiting frame is replaced by its newer one and the replaced
//! frame is counted as dropped. Memory is bounded by one frame per camera
//! (plus those being scored), and a slow camera never delays a fast one. A
//! camera has at most one frame being scored, so its frames reach the
//! tracker in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::base::input::Frame;

#[derive(Default)]
struct Slot {
    waiting: Option<Frame>,
    busy: bool,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    /// Cameras with a waiting frame and none being scored, oldest first.
    ready: VecDeque<String>,
    closed: bool,
}

#[derive(Default)]
pub struct FrameSlots {
    inner: Mutex<Inner>,
    wake: Notify,
    /// Frames replaced by a newer one of the same camera before scoring.
    pub dropped: AtomicU64,
}

impl FrameSlots {
    /// Offers a frame; never blocks.
    pub fn push(&self, frame: Frame) {
        let mut inner = self.inner.lock().expect("slots lock");
        if inner.closed {
            return;
        }
        let camera = frame.camera.clone();
        let slot = inner.slots.entry(camera.clone()).or_default();
        let replaced = slot.waiting.replace(frame).is_some();
        let busy = slot.busy;
        if replaced {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else if !busy {
            inner.ready.push_back(camera);
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// The next frame to score; `None` once closed and empty. The caller
    /// must call [`FrameSlots::done`] for its camera after handing the
    /// result on.
    pub async fn next(&self) -> Option<Frame> {
        loop {
            let notified = self.wake.notified();
            {
                let mut inner = self.inner.lock().expect("slots lock");
                while let Some(camera) = inner.ready.pop_front() {
                    let slot = inner.slots.get_mut(&camera).expect("ready has a slot");
                    if let Some(frame) = slot.waiting.take() {
                        slot.busy = true;
                        return Some(frame);
                    }
                }
                if inner.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The camera's frame was scored and passed on; its next may go.
    pub fn done(&self, camera: &str) {
        let mut inner = self.inner.lock().expect("slots lock");
        let requeue = match inner.slots.get_mut(camera) {
            Some(slot) => {
                slot.busy = false;
                slot.waiting.is_some()
            }
            None => false,
        };
        if requeue {
            inner.ready.push_back(camera.to_string());
            drop(inner);
            self.wake.notify_one();
        }
    }

    /// No more frames will come; `next` drains what is waiting, then ends.
    pub fn close(&self) {
        self.inner.lock().expect("slots lock").closed = true;
        self.wake.notify_waiters();
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(camera: &str, at: i64) -> Frame {
        Frame {
            camera: camera.into(),
            captured_at: at,
            jpeg: Arc::new(Vec::new()),
            arrived: None,
        }
    }

    #[tokio::test]
    async fn latest_frame_wins_and_each_camera_stays_in_order() {
        let slots = FrameSlots::default();
        slots.push(frame("a", 1));
        slots.push(frame("b", 1));
        slots.push(frame("a", 2)); // replaces a@1
        let first = slots.next().await.unwrap();
        assert_eq!((first.camera.as_str(), first.captured_at), ("a", 2));
        // a is busy: a newer a waits, b goes first.
        slots.push(frame("a", 3));
        let second = slots.next().await.unwrap();
        assert_eq!((second.camera.as_str(), second.captured_at), ("b", 1));
        slots.push(frame("a", 4)); // replaces a@3 while a@2 is being scored
        slots.done("a");
        let third = slots.next().await.unwrap();
        assert_eq!((third.camera.as_str(), third.captured_at), ("a", 4));
        assert_eq!(slots.dropped(), 2);
        slots.done("a");
        slots.done("b");
        slots.close();
        assert!(slots.next().await.is_none());
    }
}
