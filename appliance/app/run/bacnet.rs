//! The read-only BACnet/IP server (`[bacnet]`): one Device object and the
//! live counts as Analog and Binary Values (`disclosure::bacnet`), served
//! with rustbac's frame decoding and service dispatch (Who-Is/I-Am,
//! ReadProperty, ReadPropertyMultiple, SubscribeCOV) over headcount's own
//! BACnet/IP link ([`Link`]: what may come in, and identifiers widened on
//! the way out, see `frames`). This
//! module answers the properties from a fresh `LiveView` snapshot, refuses
//! every write, CreateObject and DeleteObject (write-access-denied), and
//! sends the change-of-value notifications itself: every 250 ms each
//! subscribed object whose present value changed goes to its subscribers
//! as an UnconfirmedCOVNotification, and a new subscription gets one at
//! once. BACnet/IP has no authentication: off unless configured, and it
//! serves nothing a facilities dashboard would not show.
//!
//! Bounded: subscriptions are capped (`bacnet.max_subscriptions`, a
//! quarter of them per host) and last at most an hour (an indefinite or
//! longer one is refused); only unconfirmed notifications are offered, so
//! no client can make the appliance wait for acknowledgements; responses
//! are single frames of at most 1476 bytes (no segmentation).

use frames::{cancellation, object_list_ack, simple_ack, whole_object_list_read, SUBSCRIBE_COV};
use headcount_domain::analytics::OccupancyBoard;
use headcount_domain::clock::Clock;
use headcount_domain::config::BacnetConfig;
use headcount_domain::disclosure::bacnet::{self, ObjectKind, Point, PointValue};
use headcount_domain::disclosure::live::LiveView;
use headcount_domain::health::HealthBoard;
use rustbac_client::server::{
    encode_unconfirmed_cov_notification, BacnetServer, BacnetServiceError, ServiceHandler,
};
use rustbac_client::ClientDataValue;
use rustbac_core::types::{ObjectId, ObjectType, PropertyId};
use rustbac_datalink::bip::bvlc::{BvlcFunction, BVLC_TYPE_BIP};
use rustbac_datalink::{DataLink, DataLinkAddress, DataLinkError};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod frames;

/// How often subscribed values are compared.
const COV_LOOK_EVERY: Duration = Duration::from_millis(250);
/// The longest subscription; a longer or indefinite one is cut to this.
const MAX_LIFETIME_SECS: u32 = 3600;

// Property identifiers (ASHRAE 135 clause 21) not named by rustbac.
const APPLICATION_SOFTWARE_VERSION: u32 = 12;
const COV_INCREMENT: u32 = 22;
const FIRMWARE_REVISION: u32 = 44;
const MODEL_NAME: u32 = 70;
const OBJECT_IDENTIFIER: u32 = 75;
const OBJECT_LIST: u32 = 76;
const OBJECT_NAME: u32 = 77;
const OBJECT_TYPE: u32 = 79;
const OUT_OF_SERVICE: u32 = 81;
const PRESENT_VALUE: u32 = 85;
const PROTOCOL_VERSION: u32 = 98;
const STATUS_FLAGS: u32 = 111;
const SYSTEM_STATUS: u32 = 112;
const UNITS: u32 = 117;
const VENDOR_IDENTIFIER: u32 = 120;
const VENDOR_NAME: u32 = 121;
const PROTOCOL_REVISION: u32 = 139;
const EVENT_STATE: u32 = 36;
/// Engineering units: no-units.
const NO_UNITS: u32 = 95;

/// Where the objects are read from.
pub struct Points {
    pub view: LiveView,
    pub board: OccupancyBoard,
    pub health: HealthBoard,
    pub clock: Arc<dyn Clock>,
    pub device_instance: u32,
    pub device_name: String,
    /// The objects as last built and when: a ReadPropertyMultiple of many
    /// properties reads them once, not once per property.
    pub latest: Mutex<Option<(Instant, Arc<Vec<Point>>)>>,
}

/// How long one build of the objects is served.
const POINTS_FRESH_FOR: Duration = Duration::from_millis(200);

impl Points {
    fn now(&self) -> Arc<Vec<Point>> {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built, points)) = latest.as_ref() {
            if built.elapsed() < POINTS_FRESH_FOR {
                return points.clone();
            }
        }
        let points = Arc::new(bacnet::points(&self.view.snapshot(
            &self.board.snapshot(),
            &self.health.snapshot(),
            self.clock.now_ms(),
        )));
        *latest = Some((Instant::now(), points.clone()));
        points
    }

    fn device(&self) -> ObjectId {
        ObjectId::new(ObjectType::Device, self.device_instance)
    }

    /// The Device, then every point of this snapshot.
    fn object_list(&self, points: &[Point]) -> Vec<ObjectId> {
        std::iter::once(self.device())
            .chain(points.iter().map(object_id))
            .collect()
    }
}

fn object_id(point: &Point) -> ObjectId {
    let kind = match point.kind {
        ObjectKind::AnalogValue => ObjectType::AnalogValue,
        ObjectKind::BinaryValue => ObjectType::BinaryValue,
    };
    ObjectId::new(kind, point.instance)
}

fn present_value(point: &Point) -> ClientDataValue {
    match point.value {
        // A REAL holds every count up to 2^24 exactly.
        PointValue::Count(value) => ClientDataValue::Real(value.unwrap_or(0) as f32),
        // BACnetBinaryPV: inactive 0, active 1.
        PointValue::Binary(active) => ClientDataValue::Enumerated(u32::from(active)),
    }
}

/// in-alarm, fault, overridden, out-of-service: only the last may be set
/// (an occupancy not counted yet).
fn status_flags(point: &Point) -> ClientDataValue {
    let out_of_service = matches!(point.value, PointValue::Count(None));
    ClientDataValue::BitString {
        unused_bits: 4,
        data: vec![if out_of_service { 0b0001_0000 } else { 0 }],
    }
}

/// BACnet/IP on one UDP socket, as rustbac's server sees it: only
/// Original-Unicast/Broadcast-NPDUs come in (`frames::npdu_of`: a
/// Forwarded-NPDU's origin can be forged), each frame sent has its object
/// identifiers widened to 4 octets (`frames::widen_object_ids`), the
/// source of the frame being handled is remembered (rustbac's server
/// handles one frame at a time, and its SubscribeCOV hook is not told the
/// subscriber's address), and the two requests rustbac's server cannot
/// answer are answered here: a SubscribeCOV without its notification
/// choice and lifetime, which cancels a subscription, and a read of the
/// whole Object_List.
#[derive(Clone)]
struct Link {
    socket: Arc<UdpSocket>,
    points: Arc<Points>,
    source: Arc<Mutex<Option<DataLinkAddress>>>,
    subscriptions: Arc<Mutex<Vec<Subscription>>>,
}

/// The largest BACnet/IP datagram (ASHRAE 135 Annex J: 1497 octets).
const MAX_DATAGRAM: usize = 1497;

impl Link {
    /// Sends `npdu` to one host (every frame answers a datagram or goes to
    /// a subscriber: nothing is broadcast).
    async fn send_npdu(&self, to: DataLinkAddress, npdu: &[u8]) -> Result<(), DataLinkError> {
        let mut npdu = frames::widen_object_ids(npdu).map_or(Cow::Borrowed(npdu), Cow::Owned);
        if let Some(abort) = frames::abort_if_too_long(&npdu) {
            tracing::debug!("a BACnet answer too long for one frame was aborted");
            npdu = Cow::Owned(abort);
        }
        let length = u16::try_from(4 + npdu.len())
            .ok()
            .filter(|&l| usize::from(l) <= MAX_DATAGRAM)
            .ok_or(DataLinkError::FrameTooLarge)?;
        let mut datagram = Vec::with_capacity(length.into());
        datagram.extend_from_slice(&[BVLC_TYPE_BIP, BvlcFunction::OriginalUnicastNpdu.to_u8()]);
        datagram.extend_from_slice(&length.to_be_bytes());
        datagram.extend_from_slice(&npdu);
        self.socket.send_to(&datagram, to.as_socket_addr()).await?;
        Ok(())
    }
}

impl DataLink for Link {
    async fn send(&self, address: DataLinkAddress, payload: &[u8]) -> Result<(), DataLinkError> {
        self.send_npdu(address, payload).await
    }

    async fn recv(&self, buf: &mut [u8]) -> Result<(usize, DataLinkAddress), DataLinkError> {
        let mut datagram = [0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = self.socket.recv_from(&mut datagram).await?;
            let source = DataLinkAddress::Ip(from);
            let Some(npdu) = frames::npdu_of(&datagram[..n]) else {
                tracing::debug!(%from, "a BACnet/IP datagram that is not an original NPDU was dropped");
                continue;
            };
            if let Some(cancel) = cancellation(npdu) {
                self.subscriptions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|s| {
                        !(s.process == cancel.process
                            && s.object == cancel.object
                            && s.subscriber == source)
                    });
                if let Some(ack) = simple_ack(cancel.invoke_id, SUBSCRIBE_COV) {
                    let _ = self.send_npdu(source, &ack).await;
                }
                continue;
            }
            if let Some((invoke_id, device)) =
                whole_object_list_read(npdu).filter(|(_, object)| *object == self.points.device())
            {
                let objects = self.points.object_list(&self.points.now());
                if let Some(ack) = object_list_ack(invoke_id, device, &objects) {
                    let _ = self.send_npdu(source, &ack).await;
                }
                continue;
            }
            let into = buf
                .get_mut(..npdu.len())
                .ok_or(DataLinkError::FrameTooLarge)?;
            into.copy_from_slice(npdu);
            *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
            return Ok((npdu.len(), source));
        }
    }
}

/// One subscription: who, to what, until when, what it was last told.
struct Subscription {
    process: u32,
    object: ObjectId,
    /// The object's name when subscribed: an edit that renumbers the
    /// objects ends the subscription rather than send another's count.
    name: String,
    subscriber: DataLinkAddress,
    until: Instant,
    told: Option<ClientDataValue>,
}

struct Handler {
    points: Arc<Points>,
    source: Arc<Mutex<Option<DataLinkAddress>>>,
    subscriptions: Arc<Mutex<Vec<Subscription>>>,
    max_subscriptions: usize,
}

impl Handler {
    fn device_property(
        &self,
        property: u32,
        index: Option<u32>,
    ) -> Result<ClientDataValue, BacnetServiceError> {
        let text = |s: &str| Ok(ClientDataValue::CharacterString(s.to_string()));
        match property {
            OBJECT_IDENTIFIER => Ok(ClientDataValue::ObjectId(self.points.device())),
            OBJECT_NAME => text(&self.points.device_name),
            // device (8)
            OBJECT_TYPE => Ok(ClientDataValue::Enumerated(8)),
            // operational (0)
            SYSTEM_STATUS => Ok(ClientDataValue::Enumerated(0)),
            VENDOR_NAME => text("headcount"),
            // 0 is ASHRAE's own; headcount has no vendor id of its own.
            VENDOR_IDENTIFIER => Ok(ClientDataValue::Unsigned(0)),
            MODEL_NAME => text("headcount people-counting appliance"),
            FIRMWARE_REVISION | APPLICATION_SOFTWARE_VERSION => text(env!("CARGO_PKG_VERSION")),
            PROTOCOL_VERSION => Ok(ClientDataValue::Unsigned(1)),
            PROTOCOL_REVISION => Ok(ClientDataValue::Unsigned(14)),
            OBJECT_LIST => {
                let list = self.points.object_list(&self.points.now());
                match index {
                    Some(0) => Ok(ClientDataValue::Unsigned(list.len() as u32)),
                    Some(i) => list
                        .get(i as usize - 1)
                        .map(|o| ClientDataValue::ObjectId(*o))
                        .ok_or(BacnetServiceError::UnknownProperty),
                    // A ReadProperty of the whole list is answered by the
                    // link; inside a ReadPropertyMultiple it is read
                    // element by element.
                    None => Err(BacnetServiceError::UnknownProperty),
                }
            }
            _ => Err(BacnetServiceError::UnknownProperty),
        }
    }
}

impl ServiceHandler for Handler {
    fn read_property(
        &self,
        object: ObjectId,
        property: PropertyId,
        index: Option<u32>,
    ) -> Result<ClientDataValue, BacnetServiceError> {
        let property = property.to_u32();
        if object.object_type() == ObjectType::Device {
            if object.instance() != self.points.device_instance {
                return Err(BacnetServiceError::UnknownObject);
            }
            return self.device_property(property, index);
        }
        let points = self.points.now();
        let point = points
            .iter()
            .find(|p| object_id(p) == object)
            .ok_or(BacnetServiceError::UnknownObject)?;
        match property {
            OBJECT_IDENTIFIER => Ok(ClientDataValue::ObjectId(object)),
            OBJECT_NAME => Ok(ClientDataValue::CharacterString(point.name.clone())),
            OBJECT_TYPE => Ok(ClientDataValue::Enumerated(
                object.object_type().to_u16().into(),
            )),
            PRESENT_VALUE => Ok(present_value(point)),
            STATUS_FLAGS => Ok(status_flags(point)),
            // normal (0)
            EVENT_STATE => Ok(ClientDataValue::Enumerated(0)),
            OUT_OF_SERVICE => Ok(ClientDataValue::Boolean(matches!(
                point.value,
                PointValue::Count(None)
            ))),
            UNITS if point.kind == ObjectKind::AnalogValue => {
                Ok(ClientDataValue::Enumerated(NO_UNITS))
            }
            // Every change of a count is notified.
            COV_INCREMENT if point.kind == ObjectKind::AnalogValue => {
                Ok(ClientDataValue::Real(1.0))
            }
            _ => Err(BacnetServiceError::UnknownProperty),
        }
    }

    fn write_property(
        &self,
        object: ObjectId,
        _property: PropertyId,
        _index: Option<u32>,
        _value: ClientDataValue,
        _priority: Option<u8>,
    ) -> Result<(), BacnetServiceError> {
        tracing::warn!(object = %object.raw(), "BACnet write refused: the server is read-only");
        Err(BacnetServiceError::WriteAccessDenied)
    }

    fn subscribe_cov(
        &self,
        process: u32,
        object: ObjectId,
        issue_confirmed: bool,
        lifetime: Option<u32>,
    ) -> Result<(), BacnetServiceError> {
        if issue_confirmed {
            // A confirmed notification waits for the client's answer.
            return Err(BacnetServiceError::ServiceNotSupported);
        }
        let Some(name) = self
            .points
            .now()
            .iter()
            .find(|p| object_id(p) == object)
            .map(|p| p.name.clone())
        else {
            return Err(BacnetServiceError::UnknownObject);
        };
        let subscriber = self
            .source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or(BacnetServiceError::ServiceNotSupported)?;
        // An indefinite or longer subscription is refused rather than cut
        // short unannounced: the client then asks for one it will renew.
        let Some(seconds) = lifetime.filter(|l| (1..=MAX_LIFETIME_SECS).contains(l)) else {
            return Err(BacnetServiceError::ServiceNotSupported);
        };
        let now = Instant::now();
        let mut subscriptions = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        subscriptions.retain(|s| s.until > now);
        // A renewal replaces its subscription, which keeps no place.
        subscriptions.retain(|s| {
            !(s.process == process && s.object == object && s.subscriber == subscriber)
        });
        // Per host, whatever its source port.
        let host = |a: &DataLinkAddress| match a {
            DataLinkAddress::Ip(ip) => Some(ip.ip()),
            _ => None,
        };
        let theirs = subscriptions
            .iter()
            .filter(|s| host(&s.subscriber) == host(&subscriber))
            .count();
        if subscriptions.len() >= self.max_subscriptions || theirs >= self.max_subscriptions / 4 {
            tracing::warn!(
                ?subscriber,
                "BACnet COV subscription refused: no place left"
            );
            return Err(BacnetServiceError::ServiceNotSupported);
        }
        subscriptions.push(Subscription {
            process,
            object,
            subscriber,
            name,
            until: now + Duration::from_secs(seconds.into()),
            told: None,
        });
        Ok(())
    }
}

/// Binds `config.bind` and serves until aborted: the server and the COV
/// notifier.
pub async fn spawn(config: &BacnetConfig, points: Points) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let socket = UdpSocket::bind(config.bind)
        .await
        .and_then(|socket| socket.set_broadcast(true).map(|()| socket))
        .map_err(|e| anyhow::anyhow!("bacnet.bind {}: {e}", config.bind))?;
    let points = Arc::new(points);
    let subscriptions = Arc::new(Mutex::new(Vec::new()));
    let source = Arc::new(Mutex::new(None));
    let handler = Handler {
        points: points.clone(),
        source: source.clone(),
        subscriptions: subscriptions.clone(),
        max_subscriptions: config.max_subscriptions,
    };
    tracing::info!(
        bind = %config.bind,
        device = config.device_instance,
        objects = points.now().len(),
        "serving the live counts over BACnet/IP (read-only)"
    );
    let link = Link {
        socket: Arc::new(socket),
        points: points.clone(),
        source,
        subscriptions: subscriptions.clone(),
    };
    let server = BacnetServer::new(link.clone(), config.device_instance, handler);
    let serving = tokio::spawn(server.serve());
    let notifying = tokio::spawn(notify(link, points, subscriptions));
    Ok(vec![serving, notifying])
}

/// Every 250 ms: each live subscription whose object's present value is
/// not the one its subscriber was last told gets a notification.
async fn notify(link: Link, points: Arc<Points>, subscriptions: Arc<Mutex<Vec<Subscription>>>) {
    let device = points.device();
    loop {
        tokio::time::sleep(COV_LOOK_EVERY).await;
        let latest = points.now();
        let now_points: HashMap<ObjectId, &Point> =
            latest.iter().map(|p| (object_id(p), p)).collect();
        let now = Instant::now();
        let due: Vec<(DataLinkAddress, Vec<u8>)> = {
            let mut subscriptions = subscriptions.lock().unwrap_or_else(|e| e.into_inner());
            subscriptions.retain(|s| {
                s.until > now && now_points.get(&s.object).is_some_and(|p| p.name == s.name)
            });
            subscriptions
                .iter_mut()
                .filter_map(|s| {
                    let point = &now_points[&s.object];
                    let value = present_value(point);
                    if s.told.as_ref() == Some(&value) {
                        return None;
                    }
                    let remaining = s.until.saturating_duration_since(now).as_secs() as u32;
                    let frame = encode_unconfirmed_cov_notification(
                        s.process,
                        device,
                        s.object,
                        remaining,
                        &[
                            (PropertyId::PresentValue, value.clone()),
                            (PropertyId::StatusFlags, status_flags(point)),
                        ],
                    )?;
                    s.told = Some(value);
                    Some((s.subscriber, frame))
                })
                .collect()
        };
        for (subscriber, frame) in due {
            if let Err(e) = link.send_npdu(subscriber, &frame).await {
                tracing::debug!(error = %e, "a BACnet COV notification was not sent");
            }
        }
    }
}
