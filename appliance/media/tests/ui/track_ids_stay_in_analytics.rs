// Tracks, with their ids and positions, are private to the analytics
// module: nothing outside it can reach the tracker, so no track id or
// per-person position can be served or stored.
use headcount_domain::analytics::tracking::Tracker;

fn main() {
    let _ = std::mem::size_of::<Tracker>();
}
