//! Every MQTT topic firelane reads or writes, in one place. `prefix` is
//! `[mqtt] topic_prefix` without a trailing slash.

/// A camera's frames, unless the camera names its own topic.
pub fn camera_frame(prefix: &str, camera: &str) -> String {
    format!("{prefix}/cameras/{camera}/frame")
}

/// A presence sensor's readings, unless it names its own topic.
pub fn sensor(prefix: &str, sensor: &str) -> String {
    format!("{prefix}/sensors/{sensor}")
}

/// Subscribed so frames of cameras not configured are seen and refused
/// by name.
pub fn all_camera_frames(prefix: &str) -> String {
    camera_frame(prefix, "+")
}

/// As [`all_camera_frames`], for sensors.
pub fn all_sensors(prefix: &str) -> String {
    sensor(prefix, "+")
}

/// `online` / `offline` (retained, the last will).
pub fn availability(prefix: &str) -> String {
    format!("{prefix}/available")
}

/// The violation event stream: `new`, `update`, `end`.
pub fn violations(prefix: &str) -> String {
    format!("{prefix}/violations")
}

/// A zone's retained state.
pub fn zone_state(prefix: &str, zone: &str) -> String {
    format!("{prefix}/zones/{zone}/state")
}

/// A zone's latest evidence frame (Home Assistant's image entity).
pub fn zone_evidence(prefix: &str, zone: &str) -> String {
    format!("{prefix}/zones/{zone}/evidence")
}

/// A site's count of open violations (retained).
pub fn site_open_violations(prefix: &str, site: &str) -> String {
    format!("{prefix}/sites/{site}/open_violations")
}

/// Home Assistant's discovery topic of one entity.
pub fn discovery(discovery_prefix: &str, component: &str, object: &str) -> String {
    format!("{discovery_prefix}/{component}/firelane/{object}/config")
}
