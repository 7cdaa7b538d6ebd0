//! Which master of a Redis Cluster serves which slot, as its `CLUSTER NODES` says, so that
//! commands on keys of many slots can go as one pipeline per master instead of one command per
//! key ([`super::RedisStore`]'s `query_each`). The map is only a guess for grouping: a command
//! that reaches a node that no longer serves its slot fails, and the caller sends them one by
//! one again, routed by the cluster connection's own map.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long a read map is used before `CLUSTER NODES` is asked again.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(5);

/// The slot of a key, as Redis Cluster computes it: CRC16 (XMODEM) of its hash tag (the
/// bytes between the first `{` and the next `}`, when there are any) or of the whole key,
/// modulo 16384.
pub(super) fn slot_of(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % 16384
}

/// The slot ranges of the masters that serve any, each master named by a slot it serves (its
/// first), the name a command is routed to it by.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SlotOwners {
    /// (first slot, last slot, the master's name), sorted by first slot.
    ranges: Vec<(u16, u16, u16)>,
    /// Each master's name and node id, by name.
    masters: Vec<(u16, String)>,
}

impl SlotOwners {
    /// From a `CLUSTER NODES` reply: masters but those the cluster agreed have failed (`fail`;
    /// one only suspected, `fail?`, still serves its slots, maybe just slowly) and those with
    /// no slot (which hold no key). `[…]` entries are slots on the move, left out.
    pub(super) fn parse(nodes: &str) -> Self {
        let (mut ranges, mut masters) = (Vec::new(), Vec::new());
        for line in nodes.lines() {
            let mut fields = line.split_whitespace();
            let (Some(id), Some(flags)) = (fields.next(), fields.nth(1)) else {
                continue;
            };
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.contains(&"fail") {
                continue;
            }
            let mut name = None;
            for range in fields.skip(5).filter(|r| !r.starts_with('[')) {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) else {
                    continue;
                };
                let name = *name.get_or_insert(a);
                ranges.push((a, b, name));
            }
            if let Some(name) = name {
                masters.push((name, id.to_owned()));
            }
        }
        ranges.sort_unstable();
        masters.sort_unstable();
        Self { ranges, masters }
    }

    /// Each master once: its name and node id.
    pub(super) fn masters(&self) -> &[(u16, String)] {
        &self.masters
    }

    /// The name of the master that serves `slot`.
    pub(super) fn owner(&self, slot: u16) -> Option<u16> {
        let at = self.ranges.partition_point(|&(first, _, _)| first <= slot);
        let &(first, last, name) = self.ranges.get(at.checked_sub(1)?)?;
        (first..=last).contains(&slot).then_some(name)
    }
}

/// The last map read, and when.
#[derive(Default)]
pub(super) struct OwnersCache(Mutex<Option<(Instant, Arc<SlotOwners>)>>);

impl OwnersCache {
    /// The map when it is younger than [`FRESH_FOR`].
    pub(super) fn fresh(&self) -> Option<Arc<SlotOwners>> {
        let guard = self.0.lock().ok()?;
        let (read_at, owners) = guard.as_ref()?;
        (read_at.elapsed() < FRESH_FOR).then(|| owners.clone())
    }

    pub(super) fn store(&self, owners: Arc<SlotOwners>) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = Some((Instant::now(), owners));
        }
    }

    /// Forgets the map (a group failed: it may be stale).
    pub(super) fn forget(&self) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_computed_as_redis_cluster_does() {
        // The examples of the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_ne!(
            slot_of(b"foo{}{bar}"),
            slot_of(b"bar"),
            "an empty tag hashes the key"
        );
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b"foo{bar}{zap}"), slot_of(b"bar"));
    }

    #[test]
    fn the_masters_and_their_slots_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master,fail? - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 [::1]:7004@17004 master - 0 0 5 connected 10923-16000 16001 16002-16383
f6 :0@0 master,noaddr - 0 0 6 disconnected";
        let owners = SlotOwners::parse(nodes);
        let names: Vec<u16> = owners.masters().iter().map(|(name, _)| *name).collect();
        assert_eq!(names, [0, 5461, 10923]);
        assert_eq!(owners.masters()[2].1, "e5");
        let owner = |slot| owners.owner(slot);
        assert_eq!(
            [0, 5460, 5461, 10922, 10923, 16001, 16383].map(owner),
            [
                Some(0),
                Some(0),
                Some(5461),
                Some(5461),
                Some(10923),
                Some(10923),
                Some(10923)
            ]
        );
        // A master's first slot may be on the move; the slots it serves name it.
        let moving = SlotOwners::parse(
            "g7 127.0.0.1:7005@17005 myself,master - 0 0 7 connected [93->-h8] 94-200 300",
        );
        assert_eq!(moving.masters(), [(94, "g7".to_owned())]);
        assert_eq!(
            [93, 94, 201, 300].map(|s| moving.owner(s)),
            [None, Some(94), None, Some(94)]
        );
    }
}
