//! Log output: one line per record on stderr, `2024-12-04T17:16:01.224 INFO -> message`,
//! in the seed collector's shape so existing log searches keep working.

/// Installs the logger at `level`. Later calls are ignored; use [`set_level`] to change it.
pub fn init(level: log::LevelFilter) {
    let installed = fern::Dispatch::new()
        .level(log::LevelFilter::Trace)
        // Library chatter (rustls, ureq): warnings and errors only.
        .level_for("rustls", log::LevelFilter::Warn)
        .level_for("ureq", log::LevelFilter::Warn)
        .level_for("ureq_proto", log::LevelFilter::Warn)
        .format(|out, message, record| {
            let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            out.finish(format_args!(
                "{} {:>7} {}",
                now.trim_end_matches('Z'),
                record.level(),
                message
            ))
        })
        .chain(std::io::stderr())
        .apply();
    if installed.is_ok() {
        set_level(level);
    }
}

/// Changes the level of the installed logger (a config reload).
pub fn set_level(level: log::LevelFilter) {
    log::set_max_level(level);
}
