//! Which live instance should hold each camera: rendezvous (highest random
//! weight) hashing, so an instance joining or leaving moves only the
//! cameras it gains or had, and every instance computes the same answer
//! from the same member list with no coordination.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

fn weight(member: &str, camera: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(member.as_bytes());
    h.update([0]);
    h.update(camera.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Camera → the member that should hold it (none without members).
pub fn spread<'a>(cameras: &'a [String], members: &'a [String]) -> BTreeMap<&'a str, &'a str> {
    cameras
        .iter()
        .filter_map(|c| {
            members
                .iter()
                .max_by_key(|m| (weight(m, c), m.as_str()))
                .map(|m| (c.as_str(), m.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn every_camera_once_and_evenly_enough() {
        let cameras = names("cam-", 600);
        let members = names("node-", 3);
        let s = spread(&cameras, &members);
        assert_eq!(s.len(), 600);
        for m in &members {
            let n = s.values().filter(|v| **v == m.as_str()).count();
            assert!((150..=250).contains(&n), "{m}: {n} of 600");
        }
        assert!(spread(&cameras, &[]).is_empty());
    }

    #[test]
    fn a_member_leaving_moves_only_its_cameras() {
        let cameras = names("cam-", 300);
        let three = names("node-", 3);
        let two: Vec<String> = three[..2].to_vec();
        let before = spread(&cameras, &three);
        let after = spread(&cameras, &two);
        for (c, m) in &before {
            if *m != "node-2" {
                assert_eq!(after[c], *m, "{c} moved though its holder stayed");
            }
        }
        // And joining again gives exactly the first spread back.
        assert_eq!(spread(&cameras, &three), before);
    }

    #[test]
    fn the_order_of_members_does_not_matter() {
        let cameras = names("cam-", 50);
        let members = names("node-", 4);
        let mut reversed = members.clone();
        reversed.reverse();
        assert_eq!(spread(&cameras, &members), spread(&cameras, &reversed));
    }
}
