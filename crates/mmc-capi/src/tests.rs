//! Unit tests of the C API: result codes and constants against the wire
//! crate, the checks of keys, options and buffers, and the per-key results
//! of a batch keeping their positions.

use super::*;
use crate::args::*;
use mmc_local::PutOptions;
use mmc_wire::error::code;
use mmc_wire::Result;
use mmc_wire::{Error, ErrorKind};
use std::ffi::CString;

#[test]
fn codes_match_the_wire_crate() {
    use mmc_result::*;
    let pairs = [
        (MMC_OK, code::OK),
        (MMC_ERROR, code::ERROR),
        (MMC_INVALID_PARAM, code::INVALID_PARAM),
        (MMC_NOT_STARTED, code::NOT_STARTED),
        (MMC_TIMEOUT, code::TIMEOUT),
        (MMC_DUPLICATED_OBJECT, code::DUPLICATED_OBJECT),
        (MMC_OBJECT_NOT_EXISTS, code::OBJECT_NOT_EXISTS),
        (MMC_NOT_INITIALIZED, code::NOT_INITIALIZED),
        (MMC_NOT_ENOUGH_MEMORY, code::NOT_ENOUGH_MEMORY),
        (MMC_NOT_CONNECTED_META, code::NOT_CONNECTED_META),
        (MMC_NOT_CONNECTED_LOCAL, code::NOT_CONNECTED_LOCAL),
        (MMC_NO_PROVIDER, code::NO_PROVIDER),
        (MMC_NOT_LEADER, code::NOT_LEADER),
        (MMC_UNMATCHED_KEY, code::UNMATCHED_KEY),
        (MMC_LEASE_EXPIRED, code::LEASE_EXPIRED),
    ];
    for (c, w) in pairs {
        assert_eq!(c as i32, w, "{c:?}");
    }
    assert_eq!(MMC_MAX_KEY_LEN, mmc_wire::MAX_KEY_LEN);
    assert_eq!(MMC_MAX_BATCH as usize, mmc_wire::MAX_BATCH);
    assert_eq!(MMC_MAX_REPLICAS, mmc_wire::MAX_REPLICAS as usize);
    for m in mmc_wire::Medium::ALL {
        let c = match m {
            mmc_wire::Medium::Dram => MMC_MEDIUM_DRAM,
            mmc_wire::Medium::Hbm => MMC_MEDIUM_HBM,
            mmc_wire::Medium::Ssd => MMC_MEDIUM_SSD,
        };
        assert_eq!(m.as_u8() as u32, c);
    }
}

#[test]
fn keys_are_checked() {
    // SAFETY: every pointer is NULL or a live CString's, NUL-terminated.
    unsafe {
        assert!(key_arg(std::ptr::null()).is_err());
        let k = CString::new("abc").unwrap();
        assert_eq!(key_arg(k.as_ptr()).unwrap(), "abc");
        let empty = CString::new("").unwrap();
        assert!(key_arg(empty.as_ptr()).is_err());
        let bad = CString::new(vec![0xffu8, 0xfe]).unwrap();
        assert!(key_arg(bad.as_ptr()).is_err());
        let max = CString::new("k".repeat(256)).unwrap();
        assert!(key_arg(max.as_ptr()).is_ok());
        let long = CString::new("k".repeat(257)).unwrap();
        assert!(key_arg(long.as_ptr()).is_err());
    }
}

#[test]
fn options_and_buffers_are_checked() {
    // SAFETY: every pointer is NULL or a live local's.
    unsafe {
        assert_eq!(options_arg(std::ptr::null()).unwrap(), PutOptions::default());
        let mut o = mmc_put_options {
            replica_num: 9,
            ..Default::default()
        };
        assert!(options_arg(&o).is_err());
        o.replica_num = 2;
        o.preferred_count = 9;
        assert!(options_arg(&o).is_err());
        o.preferred_count = 2;
        o.preferred_service_ids[..2].copy_from_slice(&[5, 6]);
        assert_eq!(
            options_arg(&o).unwrap(),
            PutOptions {
                replicas: 2,
                preferred: vec![5, 6]
            }
        );
    }
    let mut x = [0u8; 4];
    let ok = mmc_buffer {
        addr: x.as_mut_ptr().cast(),
        len: 4,
        mem_type: MMC_MEM_HOST,
    };
    assert_eq!(piece(&ok).unwrap().len, 4);
    assert!(piece(&mmc_buffer {
        mem_type: MMC_MEM_DEVICE,
        ..ok
    })
    .is_err());
    assert!(piece(&mmc_buffer { len: 0, ..ok }).is_err());
    assert!(piece(&mmc_buffer {
        addr: std::ptr::null_mut(),
        ..ok
    })
    .is_err());
    // SAFETY: `&ok` is one valid descriptor (and a count of 0 reads none).
    unsafe {
        assert!(layers_arg(&ok, 0).is_err());
        assert!(layers_arg(std::ptr::null(), 1).is_err());
        assert_eq!(layers_arg(&ok, 1).unwrap().len(), 1);
    }
}

#[test]
fn run_valid_keeps_positions() {
    let items: Vec<Result<u32>> = vec![Ok(1), Err(Error::invalid("x")), Ok(3)];
    let out = run_valid(items, |v| Ok(v.into_iter().map(|x| Ok(x * 10)).collect())).unwrap();
    assert_eq!(out[0], Ok(10));
    assert!(matches!(out[1], Err(ref e) if e.kind() == ErrorKind::InvalidParam));
    assert_eq!(out[2], Ok(30));
    let none: Vec<Result<u32>> = vec![Err(Error::from(ErrorKind::UnmatchedKey))];
    let out = run_valid(none, |_| -> Result<Vec<Result<u32>>> { panic!("not called") }).unwrap();
    assert_eq!(out, vec![Err(Error::from(ErrorKind::UnmatchedKey))]);
}
