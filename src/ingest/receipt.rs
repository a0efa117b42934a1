//! The acknowledgements QoS 1 messages are owed. firelane acknowledges a
//! sensor reading only once the reading is recorded: until then the
//! broker keeps it in firelane's session and delivers it again after a
//! crash or a lost connection. (Acknowledged on receipt, a reading waiting
//! in the queue or in a stalled commit was lost to a SIGKILL.)
//!
//! Acknowledgements leave in the order the messages arrived, as MQTT
//! requires (rumqttd drops a client that breaks it): one whose message is
//! recorded waits for those before it. Owed on a connection that was then
//! lost, they are void; the broker delivers those messages again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Publish;

/// The acknowledgements owed on the current connection, in arrival order.
pub struct Acks {
    client: AsyncClient,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// Counts connections and losses of one: a receipt from an earlier
    /// count is void.
    connection: u64,
    /// Between a ConnAck and the loss of that connection: only then are
    /// acknowledgements sent (one queued while down would reach the next
    /// connection, where its packet id means another message).
    live: bool,
    /// The sequence number of the next message to arrive.
    next: u64,
    /// Contiguous sequence numbers from the oldest unacknowledged.
    owed: VecDeque<Owed>,
}

struct Owed {
    seq: u64,
    /// Only the packet id and QoS: the payload is not kept alive for it.
    ack: Publish,
    done: bool,
}

impl Acks {
    pub fn new(client: AsyncClient) -> Arc<Acks> {
        Arc::new(Acks {
            client,
            book: Mutex::new(Book::default()),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic elsewhere leaves the book consistent (no await, no
        // partial update): keep using it.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection (its ConnAck): what was owed before is void.
    pub fn connected(&self) {
        self.reset(true);
    }

    /// The connection is lost: nothing owed on it is sent any more. The
    /// caller then clears acknowledgements already in the client's queue
    /// (`EventLoop::clean`), which the broker must not see on the next one.
    /// Returns whether a connection was live: after a failed connect there
    /// is nothing to clear.
    #[must_use]
    pub fn disconnected(&self) -> bool {
        self.reset(false)
    }

    /// A new connection epoch: receipts of the old one are void. Returns
    /// whether the previous epoch was live.
    fn reset(&self, live: bool) -> bool {
        let mut b = self.book();
        b.connection += 1;
        b.owed.clear();
        std::mem::replace(&mut b.live, live)
    }

    /// The receipt of `p`, just received: for QoS 0, nothing is owed.
    pub fn receipt(self: &Arc<Self>, p: &Publish) -> Receipt {
        if p.qos == QoS::AtMostOnce {
            return Receipt(None);
        }
        let mut b = self.book();
        let seq = b.next;
        b.next += 1;
        b.owed.push_back(Owed {
            seq,
            ack: Publish {
                qos: p.qos,
                pkid: p.pkid,
                ..Publish::default()
            },
            done: false,
        });
        Receipt(Some((self.clone(), b.connection, seq)))
    }

    /// Sends, in order, every acknowledgement whose message and all before
    /// it are done. One the client's queue has no room for stays first in
    /// line and goes on the next call (the event loop calls this on every
    /// event).
    pub fn flush(&self) {
        let mut b = self.book();
        while b.live && b.owed.front().is_some_and(|o| o.done) {
            let ack = &b.owed[0].ack;
            if self.client.try_ack(ack).is_err() {
                break;
            }
            b.owed.pop_front();
        }
    }

    fn done(&self, connection: u64, seq: u64) {
        {
            let mut b = self.book();
            if b.connection != connection {
                return;
            }
            let Some(first) = b.owed.front().map(|o| o.seq) else {
                return;
            };
            if let Some(o) = seq
                .checked_sub(first)
                .and_then(|i| b.owed.get_mut(i as usize))
            {
                o.done = true;
            }
        }
        self.flush();
    }
}

/// A message's acknowledgement, owed until [`Receipt::ack`]. Dropped
/// unsent (only when firelane stops), it leaves the message with the
/// broker.
#[must_use = "an unsent receipt holds back every acknowledgement after it"]
pub struct Receipt(Option<(Arc<Acks>, u64, u64)>);

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some((_, connection, seq)) => write!(f, "Receipt({connection}/{seq})"),
            None => f.write_str("Receipt(none)"),
        }
    }
}

impl Receipt {
    /// For input that owes the broker nothing (QoS 0, or not from MQTT).
    pub fn none() -> Receipt {
        Receipt(None)
    }

    /// The message is dealt with: its acknowledgement goes once those of
    /// the messages before it have. Never waits.
    pub fn ack(self) {
        if let Some((acks, connection, seq)) = self.0 {
            acks.done(connection, seq);
        }
    }
}

/// A sensor reading on its way to the tracker, with what it owes the
/// broker.
#[derive(Debug)]
pub struct Queued {
    pub reading: crate::base::input::SensorReading,
    pub receipt: Receipt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::Request;

    fn publish(qos: QoS, pkid: u16) -> Publish {
        Publish {
            qos,
            pkid,
            ..Publish::default()
        }
    }

    /// The packet ids of the acknowledgements sent so far.
    fn sent(rx: &flume::Receiver<Request>) -> Vec<u16> {
        rx.drain()
            .map(|r| match r {
                Request::PubAck(a) => a.pkid,
                other => panic!("not an acknowledgement: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn acknowledgements_leave_in_arrival_order_and_never_across_connections() {
        let (tx, rx) = flume::bounded(8);
        let acks = Acks::new(AsyncClient::from_senders(tx));
        acks.connected();
        assert!(acks.receipt(&publish(QoS::AtMostOnce, 0)).0.is_none());
        let (r1, r2, r3) = (
            acks.receipt(&publish(QoS::AtLeastOnce, 11)),
            acks.receipt(&publish(QoS::AtLeastOnce, 12)),
            acks.receipt(&publish(QoS::AtLeastOnce, 13)),
        );
        r2.ack();
        assert_eq!(sent(&rx), [0u16; 0], "12 waits for 11");
        r1.ack();
        assert_eq!(sent(&rx), [11, 12]);
        // The connection is lost: 13 is void, the broker sends it again.
        acks.connected();
        r3.ack();
        assert_eq!(sent(&rx), [0u16; 0]);
        let again = acks.receipt(&publish(QoS::AtLeastOnce, 1));
        again.ack();
        assert_eq!(sent(&rx), [1]);
        // Lost: nothing dealt with while down is sent, now or on the next
        // connection (its packet ids start again and name other messages).
        let (late, during) = (
            acks.receipt(&publish(QoS::AtLeastOnce, 2)),
            acks.receipt(&publish(QoS::AtLeastOnce, 3)),
        );
        assert!(acks.disconnected(), "a live connection was lost");
        assert!(!acks.disconnected(), "a failed connect: nothing was live");
        late.ack();
        acks.flush();
        let early = acks.receipt(&publish(QoS::AtLeastOnce, 4));
        acks.connected();
        during.ack();
        early.ack();
        assert_eq!(sent(&rx), [0u16; 0]);
    }

    #[test]
    fn an_acknowledgement_the_queue_has_no_room_for_goes_on_the_next_flush() {
        let (tx, rx) = flume::bounded(1);
        let acks = Acks::new(AsyncClient::from_senders(tx));
        acks.connected();
        let (a, b) = (
            acks.receipt(&publish(QoS::AtLeastOnce, 1)),
            acks.receipt(&publish(QoS::AtLeastOnce, 2)),
        );
        a.ack();
        b.ack();
        assert_eq!(sent(&rx), [1], "the queue held one");
        acks.flush();
        assert_eq!(sent(&rx), [2]);
        acks.flush();
        assert_eq!(sent(&rx), [0u16; 0], "each sent once");
    }
}
