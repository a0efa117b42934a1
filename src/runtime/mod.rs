//! Running firelane: the one assembly of its parts ([`assemble`]), the
//! engine that feeds the pipeline from live input ([`engine`]), and the
//! daemon that wires MQTT, the API and alert delivery around it ([`daemon`]),
//! telling systemd how it is doing ([`systemd`]).

pub mod assemble;
pub mod daemon;
pub mod engine;
mod held;
pub mod systemd;
