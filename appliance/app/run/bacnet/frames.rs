//! The one BACnet request headcount decodes itself (rustbac's server
//! leaves it unanswered): a SubscribeCOV that cancels a subscription, and
//! the SimpleAck that answers it. Only rustbac-core is used here, so the
//! fuzz target `bacnet_cancellation` compiles this file as it is.

use rustbac_core::apdu::{ApduType, ConfirmedRequestHeader, SimpleAck};
use rustbac_core::encoding::{
    primitives::decode_unsigned, reader::Reader, tag::Tag, writer::Writer,
};
use rustbac_core::npdu::Npdu;
use rustbac_core::types::ObjectId;

/// SubscribeCOV's service choice.
pub const SUBSCRIBE_COV: u8 = 5;

/// A SubscribeCOV request that cancels a subscription.
#[derive(Debug, PartialEq)]
pub struct Cancellation {
    pub invoke_id: u8,
    pub process: u32,
    pub object: ObjectId,
}

/// The cancellation this frame (an NPDU) asks for, if it is one: a
/// confirmed SubscribeCOV with only its process id [0] and object [1].
/// Anything else, malformed frames included, is left to the server.
pub fn cancellation(frame: &[u8]) -> Option<Cancellation> {
    let mut r = Reader::new(frame);
    Npdu::decode(&mut r).ok()?;
    if r.peek_u8().ok()? >> 4 != ApduType::ConfirmedRequest as u8 {
        return None;
    }
    let header = ConfirmedRequestHeader::decode(&mut r).ok()?;
    if header.service_choice != SUBSCRIBE_COV || header.segmented {
        return None;
    }
    let mut context = |number: u8| match Tag::decode(&mut r).ok()? {
        Tag::Context { tag_num, len } if tag_num == number => {
            decode_unsigned(&mut r, len as usize).ok()
        }
        _ => None,
    };
    let process = context(0)?;
    let object = ObjectId::from_raw(context(1)?);
    r.is_empty().then_some(Cancellation {
        invoke_id: header.invoke_id,
        process,
        object,
    })
}

pub fn simple_ack(invoke_id: u8, service_choice: u8) -> Option<Vec<u8>> {
    let mut buf = [0u8; 16];
    let mut w = Writer::new(&mut buf);
    Npdu::new(0).encode(&mut w).ok()?;
    SimpleAck {
        invoke_id,
        service_choice,
    }
    .encode(&mut w)
    .ok()?;
    Some(w.as_written().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustbac_core::types::ObjectType;

    /// The Positive Integer Value object type.
    const POSITIVE_INTEGER_VALUE: u16 = 48;

    /// A confirmed SubscribeCOV as bacpypes3 sends it: NPDU version 1 (no
    /// control bits), confirmed request (max APDU 1476), invoke id 9,
    /// service 5, [0] process 7, [1] positive-integer-value 1001, and optionally
    /// [2] unconfirmed and [3] lifetime 120.
    fn subscribe(cancel: bool) -> Vec<u8> {
        let mut frame = vec![0x01, 0x00, 0x00, 0x05, 0x09, 0x05, 0x09, 0x07, 0x1c];
        frame.extend_from_slice(
            &ObjectId::new(ObjectType::from_u16(POSITIVE_INTEGER_VALUE), 1001)
                .raw()
                .to_be_bytes(),
        );
        if !cancel {
            frame.extend_from_slice(&[0x29, 0x00, 0x39, 0x78]);
        }
        frame
    }

    #[test]
    fn a_cancellation_is_told_apart_from_a_subscription_and_from_garbage() {
        assert_eq!(
            cancellation(&subscribe(true)),
            Some(Cancellation {
                invoke_id: 9,
                process: 7,
                object: ObjectId::new(ObjectType::from_u16(POSITIVE_INTEGER_VALUE), 1001),
            })
        );
        assert_eq!(cancellation(&subscribe(false)), None);
        for garbage in [
            &[][..],
            &[0x01],
            &[0x01, 0x00, 0x00],
            &subscribe(true)[..10],
        ] {
            assert_eq!(cancellation(garbage), None, "{garbage:?}");
        }
        let ack = simple_ack(9, SUBSCRIBE_COV).unwrap();
        assert_eq!(ack, [0x01, 0x00, 0x20, 0x09, 0x05]);
    }
}
