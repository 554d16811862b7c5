//! What Leaf's credential statuses mean for us. One place, so connect and verify agree.

/// The status Leaf gives credentials that work.
pub const LEAF_STATUS_OK: &str = "OK";

/// Whether credentials with this Leaf status are working. Anything but `OK` is not.
pub fn is_working(leaf_status: &str) -> bool {
    leaf_status == LEAF_STATUS_OK
}
