//! The BACnet frames headcount handles itself, around rustbac's server:
//! which datagrams reach the server at all (a Forwarded-NPDU, whose origin
//! any host can forge, does not); the identifiers in what the server sends
//! (rustbac writes some too short: [`widen_object_ids`]); and the two
//! requests the server cannot answer: a SubscribeCOV that cancels a
//! subscription (answered with a SimpleAck), and a read of a whole
//! Object_List (an array, which rustbac's values cannot hold). Only rustbac-core and
//! rustbac-datalink's frame header are used here, so the fuzz target
//! `bacnet_frames` compiles this file as it is.

use rustbac_core::apdu::{
    abort_reason, AbortPdu, ApduType, ComplexAckHeader, ConfirmedRequestHeader, SimpleAck,
};
use rustbac_core::encoding::{
    primitives::{
        decode_unsigned, encode_app_object_id, encode_closing_tag, encode_ctx_object_id,
        encode_ctx_unsigned, encode_opening_tag,
    },
    reader::Reader,
    tag::{AppTag, Tag},
    writer::Writer,
};
use rustbac_core::npdu::Npdu;
use rustbac_core::types::ObjectId;
use rustbac_datalink::bip::bvlc::{BvlcFunction, BvlcHeader};

/// SubscribeCOV's service choice.
pub const SUBSCRIBE_COV: u8 = 5;
/// The longest APDU sent: BACnet/IP's, as there is no segmentation.
pub const MAX_APDU: usize = 1476;
/// ReadProperty's and ReadPropertyMultiple's service choices.
const READ_PROPERTY: u8 = 12;
const READ_PROPERTY_MULTIPLE: u8 = 14;
/// UnconfirmedCOVNotification's service choice.
const UNCONFIRMED_COV_NOTIFICATION: u8 = 2;
/// Object_List's property identifier.
const OBJECT_LIST: u32 = 76;

/// The NPDU of a BACnet/IP datagram that the server may see: an
/// Original-Unicast-NPDU or Original-Broadcast-NPDU whose length is the
/// datagram's. Its sender is the datagram's source address, which the
/// kernel reports. Everything else is dropped: a Forwarded-NPDU names its
/// origin inside the frame, so any host could act (and spend
/// subscriptions) in another's name, and headcount is no BBMD and
/// registers with none, so no Forwarded-NPDU or BBMD function is meant
/// for it.
pub fn npdu_of(datagram: &[u8]) -> Option<&[u8]> {
    let header = BvlcHeader::decode(&mut Reader::new(datagram)).ok()?;
    let original = matches!(
        header.function,
        BvlcFunction::OriginalUnicastNpdu | BvlcFunction::OriginalBroadcastNpdu
    );
    (original && usize::from(header.length) == datagram.len()).then(|| &datagram[4..])
}

/// The frame to send for `npdu`, with every object identifier at the top
/// level of a ReadProperty or ReadPropertyMultiple acknowledgement and of
/// a COV notification written in the 4 octets ASHRAE 135 (20.2.14)
/// requires. rustbac 0.4's server writes them as unsigned integers of
/// minimal length, so the identifiers of object types 0-3 (analog input,
/// output and value, binary input) come out shorter and clients refuse
/// the answer. Every other byte is kept. None when nothing needs widening
/// (any other frame, or one already right), or the frame does not parse.
pub fn widen_object_ids(npdu: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader::new(npdu);
    if Npdu::decode(&mut r).ok()?.message_type.is_some() {
        // A network layer message carries no APDU.
        return None;
    }
    let apdu_at = npdu.len() - r.remaining();
    let first = r.read_u8().ok()?;
    // (APDU header length, the context tags that hold object identifiers)
    let (header_len, object_tags): (usize, &[u8]) = match first >> 4 {
        // A segmented acknowledgement carries more header; rustbac's
        // server never segments.
        t if t == ApduType::ComplexAck as u8 && first & 0x08 == 0 => {
            r.read_u8().ok()?;
            match r.read_u8().ok()? {
                READ_PROPERTY | READ_PROPERTY_MULTIPLE => (3, &[0]),
                _ => return None,
            }
        }
        t if t == ApduType::UnconfirmedRequest as u8 => match r.read_u8().ok()? {
            // [1] initiating device, [2] monitored object
            UNCONFIRMED_COV_NOTIFICATION => (2, &[1, 2]),
            _ => return None,
        },
        _ => return None,
    };
    let mut out = npdu[..apdu_at + header_len].to_vec();
    let mut depth = 0usize;
    let mut widened = false;
    while !r.is_empty() {
        let tag_at = npdu.len() - r.remaining();
        let tag = Tag::decode(&mut r).ok()?;
        let content_len = match tag {
            Tag::Opening { .. } => {
                depth += 1;
                0
            }
            Tag::Closing { .. } => {
                depth = depth.checked_sub(1)?;
                0
            }
            // A boolean's value is in its tag; it has no content.
            Tag::Application {
                tag: AppTag::Boolean,
                ..
            } => 0,
            Tag::Application { len, .. } => len as usize,
            Tag::Context { tag_num, len }
                if depth == 0 && len < 4 && object_tags.contains(&tag_num) =>
            {
                let raw = decode_unsigned(&mut r, len as usize).ok()?;
                let mut buf = [0u8; 8];
                let mut w = Writer::new(&mut buf);
                Tag::Context { tag_num, len: 4 }.encode(&mut w).ok()?;
                w.write_be_u32(raw).ok()?;
                out.extend_from_slice(w.as_written());
                widened = true;
                continue;
            }
            Tag::Context { len, .. } => len as usize,
        };
        r.read_exact(content_len).ok()?;
        out.extend_from_slice(&npdu[tag_at..npdu.len() - r.remaining()]);
    }
    (widened && depth == 0).then_some(out)
}

/// What to send instead of an acknowledgement whose APDU is longer than
/// [`MAX_APDU`] (rustbac builds answers up to its own limit, and widening
/// adds octets): an Abort, segmentation-not-supported, with the request's
/// invoke id, so that the client asks for less at a time instead of
/// waiting for an answer that cannot be sent. None when `npdu` fits or is
/// no acknowledgement.
pub fn abort_if_too_long(npdu: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader::new(npdu);
    Npdu::decode(&mut r).ok()?;
    if r.remaining() <= MAX_APDU || r.read_u8().ok()? >> 4 != ApduType::ComplexAck as u8 {
        return None;
    }
    let invoke_id = r.read_u8().ok()?;
    let mut buf = [0u8; 16];
    let mut w = Writer::new(&mut buf);
    Npdu::new(0).encode(&mut w).ok()?;
    AbortPdu {
        server: true,
        invoke_id,
        reason: abort_reason::SEGMENTATION_NOT_SUPPORTED,
    }
    .encode(&mut w)
    .ok()?;
    Some(w.as_written().to_vec())
}

/// A ReadProperty of a whole Object_List (no array index): its invoke id
/// and the object it names.
pub fn whole_object_list_read(frame: &[u8]) -> Option<(u8, ObjectId)> {
    let (invoke_id, object, property) = request_of_two(frame, READ_PROPERTY)?;
    (property == OBJECT_LIST).then_some((invoke_id, ObjectId::from_raw(object)))
}

/// A confirmed, unsegmented request for `service` whose arguments are
/// exactly two context-tagged unsigned values, [0] and [1]: its invoke id
/// and the two values. Anything else, malformed frames included: None.
fn request_of_two(frame: &[u8], service: u8) -> Option<(u8, u32, u32)> {
    let mut r = Reader::new(frame);
    Npdu::decode(&mut r).ok()?;
    if r.peek_u8().ok()? >> 4 != ApduType::ConfirmedRequest as u8 {
        return None;
    }
    let header = ConfirmedRequestHeader::decode(&mut r).ok()?;
    if header.service_choice != service || header.segmented {
        return None;
    }
    let mut context = |number: u8| match Tag::decode(&mut r).ok()? {
        Tag::Context { tag_num, len } if tag_num == number => {
            decode_unsigned(&mut r, len as usize).ok()
        }
        _ => None,
    };
    let first = context(0)?;
    let second = context(1)?;
    r.is_empty().then_some((header.invoke_id, first, second))
}

/// The answer to a whole Object_List read of `device`: the list in one
/// frame, or, when it does not fit, the Abort (segmentation-not-supported)
/// that tells the client to read it element by element.
pub fn object_list_ack(invoke_id: u8, device: ObjectId, objects: &[ObjectId]) -> Option<Vec<u8>> {
    // NPDU, header, object, property, the tags: 32 octets; 5 an object.
    let mut buf = vec![0u8; 32 + 5 * objects.len()];
    let mut w = Writer::new(&mut buf);
    Npdu::new(0).encode(&mut w).ok()?;
    ComplexAckHeader {
        segmented: false,
        more_follows: false,
        invoke_id,
        sequence_number: None,
        proposed_window_size: None,
        service_choice: READ_PROPERTY,
    }
    .encode(&mut w)
    .ok()?;
    encode_ctx_object_id(&mut w, 0, device.raw()).ok()?;
    encode_ctx_unsigned(&mut w, 1, OBJECT_LIST).ok()?;
    encode_opening_tag(&mut w, 3).ok()?;
    for object in objects {
        encode_app_object_id(&mut w, object.raw()).ok()?;
    }
    encode_closing_tag(&mut w, 3).ok()?;
    let frame = w.as_written().to_vec();
    abort_if_too_long(&frame).or(Some(frame))
}

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
    let (invoke_id, process, object) = request_of_two(frame, SUBSCRIBE_COV)?;
    Some(Cancellation {
        invoke_id,
        process,
        object: ObjectId::from_raw(object),
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

    /// A confirmed SubscribeCOV as bacpypes3 sends it: NPDU version 1 (no
    /// control bits), confirmed request (max APDU 1476), invoke id 9,
    /// service 5, [0] process 7, [1] analog-value 1001, and optionally
    /// [2] unconfirmed and [3] lifetime 120.
    fn subscribe(cancel: bool) -> Vec<u8> {
        let mut frame = vec![0x01, 0x00, 0x00, 0x05, 0x09, 0x05, 0x09, 0x07, 0x1c];
        frame.extend_from_slice(
            &ObjectId::new(ObjectType::AnalogValue, 1001)
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
                object: ObjectId::new(ObjectType::AnalogValue, 1001),
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

    use rustbac_core::encoding::primitives::{
        encode_app_real, encode_closing_tag, encode_ctx_object_id, encode_ctx_unsigned,
        encode_opening_tag,
    };

    /// Writes a frame: NPDU version 1 without control bits, then `apdu`.
    fn frame(apdu: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let mut w = Writer::new(&mut buf);
        w.write_all(&[0x01, 0x00]).unwrap();
        apdu(&mut w);
        w.as_written().to_vec()
    }

    /// A ReadPropertyMultiple acknowledgement of two objects, their object
    /// identifiers written by `object`: analog-value 1000's present value
    /// (a real) and out-of-service (a boolean, whose value is in its tag),
    /// then binary-value 1000's present value read as an error. The [0]
    /// inside the error is not an object identifier and is never touched.
    fn rpm_ack(object: fn(&mut Writer<'_>, u8, u32)) -> Vec<u8> {
        frame(|w| {
            w.write_all(&[0x30, 0x07, READ_PROPERTY_MULTIPLE]).unwrap();
            object(w, 0, ObjectId::new(ObjectType::AnalogValue, 1000).raw());
            encode_opening_tag(w, 1).unwrap();
            encode_ctx_unsigned(w, 2, 85).unwrap();
            encode_opening_tag(w, 4).unwrap();
            encode_app_real(w, 41.0).unwrap();
            encode_closing_tag(w, 4).unwrap();
            encode_ctx_unsigned(w, 2, 81).unwrap();
            encode_opening_tag(w, 4).unwrap();
            w.write_u8(0x11).unwrap(); // application boolean true
            encode_closing_tag(w, 4).unwrap();
            encode_closing_tag(w, 1).unwrap();
            object(w, 0, ObjectId::new(ObjectType::BinaryValue, 1000).raw());
            encode_opening_tag(w, 1).unwrap();
            encode_ctx_unsigned(w, 2, 85).unwrap();
            encode_opening_tag(w, 5).unwrap();
            encode_ctx_unsigned(w, 0, 2).unwrap();
            encode_closing_tag(w, 5).unwrap();
            encode_closing_tag(w, 1).unwrap();
        })
    }

    fn short(w: &mut Writer<'_>, tag: u8, raw: u32) {
        encode_ctx_unsigned(w, tag, raw).unwrap();
    }

    fn full(w: &mut Writer<'_>, tag: u8, raw: u32) {
        encode_ctx_object_id(w, tag, raw).unwrap();
    }

    #[test]
    fn short_object_identifiers_are_widened_and_nothing_else_changes() {
        // analog-value 1000 is 0x0080_03e8: three octets the way rustbac
        // writes it.
        let sent = rpm_ack(short);
        let right = rpm_ack(full);
        assert_eq!(right.len(), sent.len() + 1);
        assert_eq!(widen_object_ids(&sent), Some(right.clone()));
        assert_eq!(widen_object_ids(&right), None, "already right");

        let read_property = |object: fn(&mut Writer<'_>, u8, u32)| {
            frame(|w| {
                w.write_all(&[0x30, 0x03, READ_PROPERTY]).unwrap();
                object(w, 0, ObjectId::new(ObjectType::AnalogInput, 3).raw());
                encode_ctx_unsigned(w, 1, 85).unwrap();
                encode_opening_tag(w, 3).unwrap();
                encode_app_real(w, 2.0).unwrap();
                encode_closing_tag(w, 3).unwrap();
            })
        };
        // analog-input 3: one octet.
        assert_eq!(
            widen_object_ids(&read_property(short)),
            Some(read_property(full))
        );
    }

    #[test]
    fn a_cov_notification_names_its_device_and_object_in_four_octets() {
        use rustbac_client::server::encode_unconfirmed_cov_notification;
        use rustbac_client::ClientDataValue;
        use rustbac_core::types::PropertyId;
        let object = ObjectId::new(ObjectType::AnalogValue, 1001);
        let sent = encode_unconfirmed_cov_notification(
            7,
            ObjectId::new(ObjectType::Device, 4711),
            object,
            120,
            &[(PropertyId::PresentValue, ClientDataValue::Real(7.0))],
        )
        .unwrap();
        let widened = widen_object_ids(&sent).expect("the object's identifier is short");
        assert_eq!(widened.len(), sent.len() + 1);
        // NPDU (2), unconfirmed request and service (2), [0] process 7 (2),
        // [1] the device (already 4 octets: 5), then [2] the object.
        assert_eq!(widened[..11], sent[..11]);
        assert_eq!(widened[11], 0x2c);
        assert_eq!(widened[12..16], object.raw().to_be_bytes());
        assert_eq!(widened[16..], sent[15..]);
    }

    #[test]
    fn other_and_malformed_frames_are_left_alone() {
        let sent = rpm_ack(short);
        let right = rpm_ack(full);
        for cut in 0..sent.len() {
            // Cut anywhere but after a whole result, a frame does not
            // parse; cut there, it is widened as far as it goes.
            if let Some(widened) = widen_object_ids(&sent[..cut]) {
                assert_eq!(widened, right[..widened.len()], "cut at {cut}");
            }
        }
        // An unbalanced closing tag, a simple ack, garbage.
        let mut unbalanced = sent.clone();
        unbalanced.push(0x1f);
        assert_eq!(widen_object_ids(&unbalanced), None);
        assert_eq!(
            widen_object_ids(&simple_ack(9, SUBSCRIBE_COV).unwrap()),
            None
        );
        assert_eq!(widen_object_ids(&[0x01, 0x00, 0x30]), None);
        assert_eq!(widen_object_ids(&[]), None);
    }

    #[test]
    fn a_whole_object_list_is_answered_in_one_frame_or_aborted() {
        let device = ObjectId::new(ObjectType::Device, 4711);
        // ReadProperty, invoke id 3: [0] device 4711, [1] object-list (76).
        let mut read = vec![0x01, 0x04, 0x00, 0x05, 0x03, 0x0c, 0x0c];
        read.extend_from_slice(&device.raw().to_be_bytes());
        read.extend_from_slice(&[0x19, 76]);
        assert_eq!(whole_object_list_read(&read), Some((3, device)));
        // With an array index ([2] 0), or another property: not this one.
        let mut indexed = read.clone();
        indexed.extend_from_slice(&[0x29, 0x00]);
        assert_eq!(whole_object_list_read(&indexed), None);
        let mut name = read.clone();
        *name.last_mut().unwrap() = 77;
        assert_eq!(whole_object_list_read(&name), None);
        assert_eq!(whole_object_list_read(&subscribe(true)), None);

        let objects: Vec<ObjectId> = (0..3)
            .map(|i| ObjectId::new(ObjectType::AnalogValue, 1000 + i))
            .collect();
        let ack = object_list_ack(3, device, &objects).unwrap();
        let mut expected = vec![0x01, 0x00, 0x30, 0x03, 0x0c, 0x0c];
        expected.extend_from_slice(&device.raw().to_be_bytes());
        expected.extend_from_slice(&[0x19, 76, 0x3e]);
        for object in &objects {
            expected.push(0xc4);
            expected.extend_from_slice(&object.raw().to_be_bytes());
        }
        expected.push(0x3f);
        assert_eq!(ack, expected);
        // 5 octets an object: 290 fit, 300 do not.
        let many = |n: u32| -> Vec<ObjectId> {
            (0..n)
                .map(|i| ObjectId::new(ObjectType::AnalogValue, i))
                .collect()
        };
        assert!(object_list_ack(3, device, &many(290)).unwrap().len() > 1400);
        assert_eq!(
            object_list_ack(3, device, &many(300)),
            Some(vec![0x01, 0x00, 0x71, 0x03, 0x04])
        );
    }

    #[test]
    fn an_acknowledgement_too_long_for_one_frame_becomes_an_abort() {
        let ack = |values: usize| {
            frame(|w| {
                w.write_all(&[0x30, 0x2a, READ_PROPERTY_MULTIPLE]).unwrap();
                for i in 0..values {
                    full(w, 0, ObjectId::new(ObjectType::AnalogValue, i as u32).raw());
                    encode_opening_tag(w, 1).unwrap();
                    encode_ctx_unsigned(w, 2, 85).unwrap();
                    encode_opening_tag(w, 4).unwrap();
                    encode_app_real(w, 1.0).unwrap();
                    encode_closing_tag(w, 4).unwrap();
                    encode_closing_tag(w, 1).unwrap();
                }
            })
        };
        // A 3-octet header and 16 octets a value: 92 fit in 1476, 93 do not.
        assert_eq!(abort_if_too_long(&ack(92)), None);
        assert_eq!(
            abort_if_too_long(&ack(93)),
            Some(vec![0x01, 0x00, 0x71, 0x2a, 0x04])
        );
        // Not an acknowledgement: left to the caller.
        let mut long_request = vec![0x01, 0x00, 0x00, 0x05, 0x09, 0x0e];
        long_request.resize(1600, 0);
        assert_eq!(abort_if_too_long(&long_request), None);
    }

    #[test]
    fn only_original_npdus_of_their_stated_length_reach_the_server() {
        let npdu = subscribe(true);
        let datagram = |function: u8, body: &[u8]| {
            let mut d = vec![0x81, function];
            d.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
            d.extend_from_slice(body);
            d
        };
        // Original-Unicast-NPDU and Original-Broadcast-NPDU.
        assert_eq!(npdu_of(&datagram(0x0a, &npdu)), Some(&npdu[..]));
        assert_eq!(npdu_of(&datagram(0x0b, &npdu)), Some(&npdu[..]));
        // A Forwarded-NPDU claiming to come from 127.0.0.1:47809.
        let mut forwarded = vec![127, 0, 0, 1, 0xba, 0xc1];
        forwarded.extend_from_slice(&npdu);
        assert_eq!(npdu_of(&datagram(0x04, &forwarded)), None);
        // Distribute-Broadcast-To-Network is for a BBMD.
        assert_eq!(npdu_of(&datagram(0x09, &npdu)), None);
        // A length that is not the datagram's, and not BACnet/IP at all.
        let mut long = datagram(0x0a, &npdu);
        long.push(0);
        assert_eq!(npdu_of(&long), None);
        assert_eq!(npdu_of(&[0x82, 0x0a, 0x00, 0x04]), None);
        assert_eq!(npdu_of(&[0x81]), None);
    }
}
