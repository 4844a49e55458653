# Der Erstinformations-Hinweis nach Art. 13 DSGVO für das Schild an einer
# Kamera (dpo::notice), auf Deutsch. Jede Nachricht hat ihr Gegenstück in
# en.ftl (ein Test prüft es). Texte aus der Konfiguration (Zweck, Namen,
# Kontakte, eine gesetzte Rechtsgrundlage) erscheinen, wie sie dort stehen.

notice-title = VIDEOANALYSE: PERSONENZÄHLUNG
notice-no-recording = Keine Aufzeichnung. Gesichter werden { redacted }.
redacted = { $mode ->
    [blur] unkenntlich gemacht (Weichzeichnung)
    [pixelate] verpixelt
   *[fill] abgedeckt
}
notice-camera = Kamera: { $camera } (Standort { $site })
notice-controller = Verantwortlicher: { $name }
notice-contact = Kontakt: { $contact }
notice-dpo = Datenschutzbeauftragte(r): { $dpo }
notice-purpose = Zweck: { $purpose }
notice-legal-basis = Rechtsgrundlage: { $basis }
legal-basis-default = berechtigtes Interesse, Art. 6 Abs. 1 lit. f DSGVO
notice-what-happens = Was geschieht: Die Bilder der Kamera werden vor Ort im Arbeitsspeicher ausgewertet, bis zu { $fps } Bilder pro Sekunde. Es werden keine Bilder aufgezeichnet oder gespeichert. Gesichter werden { redacted }, bevor ein Bild für etwas anderes verwendet wird. Gespeichert werden nur Personenzahlen.
notice-calibration = Der Einrichter kann ein Kalibrierbild ansehen, auf dem alle Personen unkenntlich gemacht sind; es wird nicht gespeichert.
notice-retention = Speicherdauer: Bilder keine. Zahlen { $counts }.
per-minute = je Minute { $lifetime }
per-quarter-hour = je Viertelstunde { $lifetime }
per-hour = je Stunde { $lifetime }
per-day = je Tag { $lifetime }
lifetime = { $unit ->
    [m] { $n } { $n ->
        [one] Minute
       *[other] Minuten
    }
    [h] { $n } { $n ->
        [one] Stunde
       *[other] Stunden
    }
    [d] { $n } { $n ->
        [one] Tag
       *[other] Tage
    }
   *[y] { $n } { $n ->
        [one] Jahr
       *[other] Jahre
    }
}
notice-rights = Ihre Rechte: Auskunft, Löschung, Einschränkung und Widerspruch (Art. 15-21 DSGVO) sowie Beschwerde bei einer Datenschutz-Aufsichtsbehörde. Es werden keine Bilder und keine Identitäten gespeichert, daher können keine Daten Ihnen zugeordnet werden (Art. 11 DSGVO).
notice-information = Vollständige Informationen: { $where }
notice-information-default = beim Verantwortlichen (Kontakt oben)
