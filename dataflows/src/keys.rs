//! Fixed-size keys for devices and sensors.
//!
//! Sensors enter the dataflow, the workers' tallies and the checkpoints as 128-bit keys, not
//! as strings: a million sensors then cost a million 16- or 32-byte keys, compared with
//! integers, instead of a million heap strings compared byte by byte. Only the names of
//! devices travel as text (to the report, through the `names` input), and with alerts on the
//! names of the sensors the alerts must print.
//!
//! A key is XXH3-128 of the name's UTF-8 bytes, with the default seed: a published algorithm
//! with a fixed output, so keys agree between workers, processes, restarts and versions of
//! hygroflow. A sensor is `(device key, guid key)`.
//!
//! **Collisions.** Two different names share a key with probability 2^-128 per pair, so among
//! `n` distinct names the chance that any two collide is at most `n² / 2^129`: 1.5e-21 for
//! 10^9 sensors (and for 10^9 devices). Two sensors collide only if their guids' keys do (a
//! guid at two devices is two sensors, told apart by the device key), so a report counts a
//! wrong number of distinct sensors with at most that probability. XXH3 is not a cryptographic
//! hash: someone who can write to the topic could craft two guids with one key, and would so
//! hide one sensor from the distinct counts; they could as well send false readings.

use serde::{Deserialize, Serialize};

/// A 128-bit key of a name: XXH3-128 of its bytes, as two `u64` (8-byte aligned, so a sensor
/// key is 32 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Key(pub u64, pub u64);

impl Key {
    /// The key of `name`.
    pub fn of(name: &str) -> Key {
        let hash = xxhash_rust::xxh3::xxh3_128(name.as_bytes());
        Key((hash >> 64) as u64, hash as u64)
    }

    /// The key as 16 bytes, high half first (as checkpoints store it).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.0.to_be_bytes());
        bytes[8..].copy_from_slice(&self.1.to_be_bytes());
        bytes
    }

    /// The key stored by [`Key::to_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Key {
        let mut high = [0; 8];
        let mut low = [0; 8];
        high.copy_from_slice(&bytes[..8]);
        low.copy_from_slice(&bytes[8..]);
        Key(u64::from_be_bytes(high), u64::from_be_bytes(low))
    }
}

/// A device's key: the [`Key`] of its name.
pub type DeviceKey = Key;

/// A sensor's guid as a key: the [`Key`] of the guid.
pub type GuidKey = Key;

/// One sensor as the analyses key it: `(device, guid)`.
pub type SensorKey = (DeviceKey, GuidKey);

/// The key of the sensor `guid` at `device`.
pub fn sensor_key(device: &str, guid: &str) -> SensorKey {
    (Key::of(device), Key::of(guid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_xxh3_128_and_stable() {
        // Checkpoints store keys: they must never change between versions of hygroflow.
        // XXH3-128 of "" with seed 0 is 0x99aa06d3014798d86001c324468d497f.
        assert_eq!(Key::of(""), Key(0x99aa06d3014798d8, 0x6001c324468d497f));
        let k = Key::of("0-ZZZ12345678-08K");
        assert_eq!(k, Key::of("0-ZZZ12345678-08K"));
        assert_ne!(k, Key::of("0-ZZZ12345678-08L"));
        assert_eq!(Key::from_bytes(k.to_bytes()), k);
        assert_eq!(std::mem::size_of::<SensorKey>(), 32);
    }
}
