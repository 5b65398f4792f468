//! Every service runs with its soft open-files limit raised to the hard
//! one. Its own test binary: it changes the limit of the whole process.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::sync::{Arc, Mutex};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use spanway_service_kit::logging::LogConfig;
use spanway_service_kit::runtime::RuntimeConfig;
use spanway_service_kit::startup;

/// Opens `count` files at once, or says at which one the system refused.
fn open_many(count: usize) -> Result<Vec<File>, (usize, std::io::Error)> {
    (0..count)
        .map(|n| File::open("/dev/null").map_err(|error| (n, error)))
        .collect()
}

#[test]
fn a_service_runs_with_its_soft_open_files_limit_raised_to_the_hard_one() {
    const LOW: u64 = 256;
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(1 << 20);
    assert!(
        hard >= 4 * LOW,
        "this test needs a hard limit above {LOW}: {limit:?}"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(LOW),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let (at, error) = open_many(2 * LOW as usize).unwrap_err();
    assert!(at < LOW as usize, "refused at file {at}");
    assert_eq!(
        error.raw_os_error(),
        Some(rustix::io::Errno::MFILE.raw_os_error())
    );

    let seen = Arc::new(Mutex::new(None));
    let inside = seen.clone();
    startup::serve(
        &LogConfig::default(),
        &RuntimeConfig::default(),
        |_shutdown| async move {
            *inside.lock().unwrap() = Some((
                getrlimit(Resource::Nofile).current,
                open_many(2 * LOW as usize).map(|files| files.len()),
            ));
            Ok(())
        },
    )
    .unwrap();
    let (current, opened) = seen.lock().unwrap().take().unwrap();
    assert_eq!(current, Some(hard));
    assert_eq!(opened.unwrap(), 2 * LOW as usize);
}
