//! The one BACnet request headcount decodes itself, the cancellation of a
//! COV subscription (`appliance/app/run/bacnet/frames.rs`, compiled here as
//! it is), on arbitrary frames. Invariants: it never panics; a frame it
//! takes for a cancellation is a confirmed SubscribeCOV request that ends
//! right after its process id and object, so appending the notification
//! choice makes it a subscription (not a cancellation) again; the
//! SimpleAck it answers with names the request's invoke id.

#![no_main]

#[path = "../../appliance/app/run/bacnet/frames.rs"]
#[allow(dead_code)]
mod frames;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(cancel) = frames::cancellation(data) else {
        return;
    };
    let mut subscription = data.to_vec();
    // [2] issueConfirmedNotifications = false
    subscription.extend_from_slice(&[0x29, 0x00]);
    assert_eq!(frames::cancellation(&subscription), None);
    let ack = frames::simple_ack(cancel.invoke_id, frames::SUBSCRIBE_COV).expect("an ack fits");
    assert_eq!(ack[ack.len() - 2..], [cancel.invoke_id, frames::SUBSCRIBE_COV]);
});
