//! The fleet feed over `mqtts://` to a broker that requires a client
//! certificate (Mosquitto with `require_certificate`): the appliance with
//! its per-device certificate connects and publishes its status and site
//! descriptor; the same appliance without one is refused by the broker
//! and never says it is online. Certificates are made by openssl here.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is missing: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, the broker's certificate for localhost, and two client
/// certificates (the appliance's and the test subscriber's), all signed
/// by the CA; EC P-256 keys.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=test fleet CA",
            "-out",
            "ca.pem",
        ],
    );
    for (name, subject, extension) in [
        (
            "broker",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ),
        (
            "appliance",
            "/CN=headcount-test",
            "extendedKeyUsage=clientAuth",
        ),
        (
            "subscriber",
            "/CN=city-subscriber",
            "extendedKeyUsage=clientAuth",
        ),
    ] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        std::fs::write(dir.join(&ext), format!("{extension}\n")).unwrap();
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ],
        );
        openssl(
            dir,
            &["req", "-new", "-key", &key, "-subj", subject, "-out", &csr],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
}

/// What the test subscriber (with its own certificate) receives on
/// `topic` within `wait` seconds.
fn subscribe_tls(
    dir: &Path,
    port: u16,
    topic: &str,
    count: usize,
    wait: u32,
) -> Vec<(String, String)> {
    let out = Command::new("mosquitto_sub")
        .args(mosquitto_sub_args("localhost", port, topic, count, wait))
        .arg("--cafile")
        .arg(dir.join("ca.pem"))
        .arg("--cert")
        .arg(dir.join("subscriber.pem"))
        .arg("--key")
        .arg(dir.join("subscriber.key"))
        .output()
        .expect("mosquitto_sub is missing: run scripts/setup.sh");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect()
}

#[test]
fn a_broker_that_requires_client_certificates_admits_only_the_appliance_with_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certificates(&certs);
    let port = free_port();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let conf = broker_dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            // `user root`: run as root, Mosquitto would otherwise become the
            // mosquitto user, who cannot read the test's private folder (a
            // broker started by another user stays that user).
            "user root\nlistener {port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/broker.pem\nkeyfile {0}/broker.key\n\
             require_certificate true\nuse_identity_as_username true\nallow_anonymous false\npersistence false\n",
            certs.display()
        ),
    )
    .unwrap();
    let _broker = Proc::spawn(
        Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));

    let api_port = free_port();
    let mqtt = |client_auth: &str| {
        format!(
            "[mqtt]\nbroker = \"mqtts://localhost:{port}\"\nca_file = \"{0}/ca.pem\"\n{client_auth}",
            certs.display()
        )
    };
    let with_certificate = format!(
        "client_cert = \"{0}/appliance.pem\"\nclient_key = \"{0}/appliance.key\"\n",
        certs.display()
    );

    // Without a client certificate: the broker refuses the TLS session.
    let refused_dir = dir.path().join("refused");
    std::fs::create_dir_all(&refused_dir).unwrap();
    let refused = config(
        &refused_dir,
        api_port,
        &[("desk", "testsrc:ball".into(), "")],
    );
    let text = std::fs::read_to_string(&refused).unwrap() + &mqtt("");
    std::fs::write(&refused, text).unwrap();
    let appliance = start_appliance(&refused, api_port);
    let heard = subscribe_tls(&certs, port, "headcount/test/status", 1, 8);
    assert!(
        heard.is_empty(),
        "an appliance without a certificate got through: {heard:?}"
    );
    drop(appliance);

    // With its certificate: online, and the site descriptor, retained.
    let admitted_dir = dir.path().join("admitted");
    std::fs::create_dir_all(&admitted_dir).unwrap();
    let api_port = free_port();
    let admitted = config(
        &admitted_dir,
        api_port,
        &[("desk", "testsrc:ball".into(), "")],
    );
    let text = std::fs::read_to_string(&admitted).unwrap() + &mqtt(&with_certificate);
    std::fs::write(&admitted, text).unwrap();
    let _appliance = start_appliance(&admitted, api_port);
    let mut heard = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            heard = subscribe_tls(&certs, port, "headcount/test/#", 2, 3);
            heard.len() == 2
        }),
        "the appliance with its certificate was not heard: {heard:?}"
    );
    assert!(
        heard.contains(&("headcount/test/status".into(), "online".into())),
        "{heard:?}"
    );
    let descriptor = heard
        .iter()
        .find(|(t, _)| t == "headcount/test/descriptor")
        .unwrap_or_else(|| panic!("no descriptor in {heard:?}"));
    check_schemas(&[("site-descriptor.schema.json", &descriptor.0, &descriptor.1)]);
}
