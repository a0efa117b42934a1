//! Sensor readings applied in memory whose record failed (the database was
//! away): their acknowledgements are held back, so the broker keeps them
//! across a crash, and each sensor's latest is stored again every second
//! until it is. A later reading of the sensor, recorded, stands for them.

use std::collections::BTreeMap;

use crate::base::input::SensorReading;
use crate::ingest::receipt::Receipt;

/// Per sensor: its latest unrecorded reading and every receipt owed since.
#[derive(Debug, Default)]
pub struct Held {
    sensors: BTreeMap<String, (SensorReading, Vec<Receipt>)>,
    /// Where the next retry starts: one sensor that cannot be stored must
    /// not keep the others waiting.
    turn: usize,
}

impl Held {
    /// `reading` was applied but not recorded.
    pub fn hold(&mut self, reading: SensorReading, receipt: Receipt) {
        let entry = self
            .sensors
            .entry(reading.sensor.clone())
            .or_insert_with(|| (reading.clone(), Vec::new()));
        if reading.measured_at >= entry.0.measured_at {
            entry.0 = reading;
        }
        entry.1.push(receipt);
    }

    /// Whether `sensor` has a reading not recorded yet.
    pub fn holds(&self, sensor: &str) -> bool {
        self.sensors.contains_key(sensor)
    }

    /// `sensor`'s state is recorded as of a reading at least as new as any
    /// held: the receipts owed for it, to send.
    pub fn recorded(&mut self, sensor: &str) -> Vec<Receipt> {
        self.sensors
            .remove(sensor)
            .map(|(_, receipts)| receipts)
            .unwrap_or_default()
    }

    /// Each held sensor's latest reading, to store again, starting one
    /// sensor further on each call.
    pub fn pending(&mut self) -> Vec<SensorReading> {
        let mut all: Vec<SensorReading> = self.sensors.values().map(|(r, _)| r.clone()).collect();
        if !all.is_empty() {
            let by = self.turn % all.len();
            all.rotate_left(by);
            self.turn = self.turn.wrapping_add(1);
        }
        all
    }

    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(sensor: &str, at: i64) -> SensorReading {
        SensorReading {
            sensor: sensor.into(),
            measured_at: at,
            occupied: at % 2 == 0,
        }
    }

    #[test]
    fn keeps_each_sensors_latest_and_every_receipt_until_recorded() {
        let mut h = Held::default();
        assert!(h.is_empty());
        h.hold(reading("a", 10), Receipt::none());
        h.hold(reading("a", 30), Receipt::none());
        // Out of order (never from the tracker, which refuses the past):
        // the latest stays.
        h.hold(reading("a", 20), Receipt::none());
        h.hold(reading("b", 5), Receipt::none());
        assert!(h.holds("a") && h.holds("b") && !h.holds("c"));
        assert_eq!(h.pending(), vec![reading("a", 30), reading("b", 5)]);
        assert_eq!(h.pending(), vec![reading("b", 5), reading("a", 30)]);
        assert_eq!(h.recorded("a").len(), 3);
        assert!(!h.holds("a"));
        assert!(h.recorded("a").is_empty(), "nothing owed twice");
        assert_eq!(h.pending(), vec![reading("b", 5)]);
        assert_eq!(h.recorded("b").len(), 1);
        assert!(h.is_empty());
    }
}
