# The Art. 13 first-layer notice for the sign at a camera (dpo::notice),
# in English. Every message here has its twin in de.ftl (a test checks).
# Texts from the config (purpose, names, contacts, a legal basis that is
# set) are printed as written.

notice-title = VIDEO ANALYSIS: PEOPLE COUNTING
notice-no-recording = No recording. Faces are { redacted }.
redacted = { $mode ->
    [blur] blurred
    [pixelate] pixelated
   *[fill] covered
}
notice-camera = Camera: { $camera } (site { $site })
notice-controller = Controller: { $name }
notice-contact = Contact: { $contact }
notice-dpo = Data protection officer: { $dpo }
notice-purpose = Purpose: { $purpose }
notice-legal-basis = Legal basis: { $basis }
legal-basis-default = legitimate interest, GDPR Art. 6(1)(f)
notice-what-happens = What happens: the camera's images are analysed on site, in memory, up to { $fps } frames a second. No images are recorded or stored. Faces are { redacted } before an image is used for anything else. Only counts of people are kept.
notice-calibration = The installer may view a calibration image with all persons made unrecognisable; it is not stored.
notice-retention = Retention: images none. Counts { $counts }.
per-minute = per minute { $lifetime }
per-quarter-hour = per quarter hour { $lifetime }
per-hour = per hour { $lifetime }
per-day = per day { $lifetime }
lifetime = { $unit ->
    [m] { $n } { $n ->
        [one] minute
       *[other] minutes
    }
    [h] { $n } { $n ->
        [one] hour
       *[other] hours
    }
    [d] { $n } { $n ->
        [one] day
       *[other] days
    }
   *[y] { $n } { $n ->
        [one] year
       *[other] years
    }
}
notice-rights = Your rights: access, erasure, restriction and objection (GDPR Art. 15-21), and complaint to a data protection supervisory authority. No images or identities are kept, so no data can be linked to you (Art. 11).
notice-information = Full information: { $where }
notice-information-default = from the controller (contact above)
