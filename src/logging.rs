//! Log output: one line per record on stderr, `2024-12-04T17:16:01.224 INFO -> message`,
//! in the seed collector's shape so existing log searches keep working.

/// Installs the logger at `level`. Later calls are ignored.
pub fn init(level: log::LevelFilter) {
    let _ = fern::Dispatch::new()
        .level(level)
        // Library chatter (rustls, ureq) only at debug and below.
        .level_for("rustls", level.min(log::LevelFilter::Warn))
        .level_for("ureq", level.min(log::LevelFilter::Warn))
        .level_for("ureq_proto", level.min(log::LevelFilter::Warn))
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
}
