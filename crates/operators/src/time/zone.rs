//! Turning parsed fields into an instant: which zone applies (stanza.md §5.7 "Zone handling").
//!
//! - No zone in the value: the configured location.
//! - `UTC`, `Z` or a numeric offset: that offset.
//! - An abbreviation (`MST`): as Go does, the location's own zones are searched for one with
//!   that name, preferring one in effect at that time. Failing that, Stanza loads a location
//!   named like the abbreviation (`MST`, `HST`, `EST` exist in the tz database) and searches
//!   it; for common daylight-saving abbreviations that are not zone names (`PDT`) a small table
//!   names a zone that uses them. If nothing matches, the offset is zero.

use super::parse::{Parsed, ZoneText};
use jiff::SignedDuration;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use std::borrow::Cow;

/// Abbreviations that are not zone names, and a zone that uses each.
const ABBREVIATION_ZONES: [(&str, &str); 14] = [
    ("PST", "America/Los_Angeles"),
    ("PDT", "America/Los_Angeles"),
    ("MDT", "America/Denver"),
    ("CST", "America/Chicago"),
    ("CDT", "America/Chicago"),
    ("EDT", "America/New_York"),
    ("AKST", "America/Anchorage"),
    ("AKDT", "America/Anchorage"),
    ("HDT", "America/Adak"),
    ("BST", "Europe/London"),
    ("IST", "Asia/Kolkata"),
    ("CEST", "Europe/Paris"),
    ("EEST", "Europe/Athens"),
    ("AEST", "Australia/Sydney"),
];

/// How many transitions either side of a time are searched for an abbreviation.
const TRANSITIONS_SEARCHED: usize = 32;

/// Zones loaded by abbreviation, kept so each is looked up once. Bounded, because the
/// abbreviations come from input.
#[derive(Debug, Default)]
pub(crate) struct ZoneCache {
    loaded: Vec<(String, Option<TimeZone>)>,
}

const MAX_CACHED_ZONES: usize = 64;

impl ZoneCache {
    fn load(&mut self, name: &str) -> Option<TimeZone> {
        if let Some((_, tz)) = self.loaded.iter().find(|(n, _)| n == name) {
            return tz.clone();
        }
        let tz = TimeZone::get(name).ok().or_else(|| {
            ABBREVIATION_ZONES
                .iter()
                .find(|(abbr, _)| *abbr == name)
                .and_then(|(_, zone)| TimeZone::get(zone).ok())
        });
        if self.loaded.len() < MAX_CACHED_ZONES {
            self.loaded.push((name.to_owned(), tz.clone()));
        }
        tz
    }
}

/// The zone that applies to `parsed` (whose civil time is `civil`) in `location`. The common
/// case, no zone in the value, borrows `location`.
pub(crate) fn zone_for<'l>(
    parsed: &Parsed<'_>,
    civil: DateTime,
    location: &'l TimeZone,
    cache: &mut ZoneCache,
) -> Cow<'l, TimeZone> {
    Cow::Owned(match parsed.zone {
        ZoneText::None => return Cow::Borrowed(location),
        ZoneText::Utc => TimeZone::UTC,
        ZoneText::Offset(secs) => fixed(secs),
        ZoneText::Name { name, offset } => {
            if let Some(found) = lookup_name(location, name, civil) {
                TimeZone::fixed(found)
            } else if offset != 0 {
                fixed(offset)
            } else {
                cache
                    .load(name)
                    .and_then(|tz| lookup_name(&tz, name, civil))
                    .map_or(TimeZone::UTC, TimeZone::fixed)
            }
        }
    })
}

fn fixed(secs: i32) -> TimeZone {
    // Parsed offsets are at most 24:60:60, inside jiff's range; fall back to UTC otherwise.
    Offset::from_seconds(secs).map_or(TimeZone::UTC, TimeZone::fixed)
}

/// Go's `Location.lookupName`: the offset of a zone named `name` in `tz`, preferring one in
/// effect at `civil`.
fn lookup_name(tz: &TimeZone, name: &str, civil: DateTime) -> Option<Offset> {
    let guess = TimeZone::UTC.to_timestamp(civil).ok()?;
    let here = tz.to_offset_info(guess);
    let here = (here.abbreviation() == name).then(|| here.offset());
    let around = || {
        let before = tz.preceding(guess).take(TRANSITIONS_SEARCHED);
        let after = tz.following(guess).take(TRANSITIONS_SEARCHED);
        here.into_iter().chain(
            before
                .chain(after)
                .filter(|t| t.abbreviation() == name)
                .map(|t| t.offset()),
        )
    };
    around()
        .find_map(|offset| {
            let at = guess.checked_sub(SignedDuration::from_secs(i64::from(offset.seconds())));
            let info = tz.to_offset_info(at.ok()?);
            (info.abbreviation() == name).then(|| info.offset())
        })
        .or_else(|| around().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn parsed(zone: ZoneText<'_>) -> Parsed<'_> {
        Parsed {
            year: 2006,
            month: 1,
            day: 2,
            hour: 15,
            minute: 4,
            second: 5,
            nanos: 0,
            zone,
        }
    }

    fn offset_of(zone: ZoneText<'_>, location: &TimeZone) -> i32 {
        let civil = date(2006, 1, 2).at(15, 4, 5, 0);
        let mut cache = ZoneCache::default();
        let tz = zone_for(&parsed(zone), civil, location, &mut cache);
        tz.to_offset(tz.to_timestamp(civil).unwrap()).seconds()
    }

    #[test]
    fn abbreviations_resolve_through_the_database() {
        let utc = TimeZone::UTC;
        let name = |name| ZoneText::Name { name, offset: 0 };
        assert_eq!(offset_of(name("MST"), &utc), -7 * 3600);
        assert_eq!(offset_of(name("HST"), &utc), -10 * 3600);
        assert_eq!(offset_of(name("EST"), &utc), -5 * 3600);
        assert_eq!(offset_of(name("PST"), &utc), -8 * 3600);
        assert_eq!(offset_of(name("XYZ"), &utc), 0, "unknown: zero offset");
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            offset_of(name("EDT"), &ny),
            -4 * 3600,
            "found in the location"
        );
        assert_eq!(
            offset_of(
                ZoneText::Name {
                    name: "GMT+3",
                    offset: 3 * 3600
                },
                &utc
            ),
            3 * 3600
        );
    }

    #[test]
    fn explicit_offsets_beat_the_location() {
        let hst = TimeZone::get("HST").unwrap();
        assert_eq!(offset_of(ZoneText::Utc, &hst), 0);
        assert_eq!(offset_of(ZoneText::Offset(3600), &hst), 3600);
        assert_eq!(offset_of(ZoneText::None, &hst), -10 * 3600);
    }

    #[test]
    fn cache_is_bounded() {
        let mut cache = ZoneCache::default();
        for i in 0..200 {
            cache.load(&format!("ZZ{i}"));
        }
        assert_eq!(cache.loaded.len(), MAX_CACHED_ZONES);
    }
}
