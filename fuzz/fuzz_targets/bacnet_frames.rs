//! The BACnet frames headcount handles itself
//! (`appliance/app/run/bacnet/frames.rs`, compiled here as it is), on
//! arbitrary bytes taken as a datagram and as a frame. Invariants: nothing
//! panics; a datagram let in carries exactly its stated length; widening
//! changes the frame and is done once (a widened frame needs no more); only
//! a frame longer than the longest APDU is aborted, with a 5-octet Abort; a
//! read of a whole Object_List is answered with its invoke id; a frame taken for a cancellation is
//! a confirmed SubscribeCOV that ends right after its process id and
//! object, so appending the notification choice makes it a subscription
//! (not a cancellation) again; the SimpleAck it answers with names the
//! request's invoke id.

#![no_main]

#[path = "../../appliance/app/run/bacnet/frames.rs"]
#[allow(dead_code)]
mod frames;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(npdu) = frames::npdu_of(data) {
        assert_eq!(npdu.len() + 4, data.len());
    }
    if let Some(widened) = frames::widen_object_ids(data) {
        assert_ne!(widened, data);
        assert_eq!(frames::widen_object_ids(&widened), None);
    }
    if let Some(abort) = frames::abort_if_too_long(data) {
        assert!(data.len() > frames::MAX_APDU);
        assert_eq!(abort.len(), 5);
    }
    if let Some((invoke_id, object)) = frames::whole_object_list_read(data) {
        let ack = frames::object_list_ack(invoke_id, object, &[object]).expect("a short list fits");
        assert_eq!(ack[3], invoke_id);
    }
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
