//! The exported functions called from Rust against an in-process
//! MetaService: the library's lifecycle, data round trips and argument
//! checks, without a C compiler. (scripts/test-c.sh runs the C and C++ test
//! programs against a multi-process cluster.) One test function: the library
//! state is process-wide.

use memcache::*;
use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

const OK: i32 = mmc_result::MMC_OK as i32;
const INVALID: i32 = mmc_result::MMC_INVALID_PARAM as i32;
const NOT_INIT: i32 = mmc_result::MMC_NOT_INITIALIZED as i32;

fn start_meta() -> String {
    start_meta_with(None)
}

/// A MetaService requiring `token` when given.
fn start_meta_with(token: Option<&str>) -> String {
    let token = token.map(str::to_owned);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cfg = mmc_config::MetaConfig {
                listen: "127.0.0.1:0".into(),
                http_listen: String::new(),
                ..Default::default()
            };
            cfg.security.token = token;
            let svc = mmc_meta::MetaService::bind(&cfg).await.unwrap();
            tx.send(svc.local_addr().to_string()).unwrap();
            svc.run(std::future::pending()).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn buf(v: &mut [u8]) -> mmc_buffer {
    mmc_buffer {
        addr: v.as_mut_ptr().cast(),
        len: v.len() as u64,
        mem_type: MMC_MEM_HOST,
    }
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(mmc_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn lifecycle_and_round_trips() {
    let meta = CString::new(start_meta()).unwrap();
    let key = CString::new("rs/one").unwrap();
    let mut value = pattern(300_000, 1);
    unsafe {
        // before setup / init
        assert_eq!(mmcc_exist(key.as_ptr(), 0), NOT_INIT);
        assert_eq!(mmc_init(0, 1), NOT_INIT);
        assert!(last_error().contains("not initialized"), "{}", last_error());
        assert_eq!(mmc_uninit(), NOT_INIT);

        let size = CString::new("8MB").unwrap();
        let level = CString::new("warn").unwrap();
        let opts = mmc_setup_options {
            meta_addr: meta.as_ptr(),
            dram_size: size.as_ptr(),
            protocol: null(),
            transfer_listen: null(),
            host_id: null(),
            log_level: level.as_ptr(),
            worker_threads: 0,
        };
        assert_eq!(mmc_setup(null(), &opts), OK, "{}", last_error());
        assert_eq!(mmc_init(0, 1), OK, "{}", last_error());
        let mut me = 0u32;
        assert_eq!(mmcc_local_service_id(&mut me), OK);
        assert_ne!(me, 0);

        // single put / get / query
        let b = buf(&mut value);
        assert_eq!(mmcc_put(key.as_ptr(), &b, null(), 0), OK, "{}", last_error());
        assert_eq!(
            mmcc_put(key.as_ptr(), &b, null(), 0),
            mmc_result::MMC_DUPLICATED_OBJECT as i32
        );
        let mut out = vec![0u8; value.len()];
        assert_eq!(mmcc_get(key.as_ptr(), &buf(&mut out), 0), OK);
        assert_eq!(out, value);
        assert_eq!(mmcc_exist(key.as_ptr(), 0), 1);
        let mut info = mmc_data_info::default();
        assert_eq!(mmcc_query(key.as_ptr(), &mut info, 0), OK);
        assert_eq!(
            (info.size, info.replica_num, info.service_ids[0]),
            (value.len() as u64, 1, me)
        );

        // layered: three layers in, two buffers out
        let lkey = CString::new("rs/layers").unwrap();
        let mut l = [pattern(1000, 2), pattern(7, 3), pattern(5000, 4)];
        let flat: Vec<u8> = l.concat();
        let lb: Vec<mmc_buffer> = l.iter_mut().map(|x| buf(x)).collect();
        assert_eq!(mmcc_put_layers(lkey.as_ptr(), lb.as_ptr(), 3, null(), 0), OK);
        let (mut a, mut c) = (vec![0u8; 10], vec![0u8; flat.len() - 10]);
        let ob = [buf(&mut a), buf(&mut c)];
        assert_eq!(mmcc_get_layers(lkey.as_ptr(), ob.as_ptr(), 2, 0), OK);
        assert_eq!([a, c].concat(), flat);

        // batch with one null key
        let k1 = CString::new("rs/b1").unwrap();
        let keys: [*const c_char; 2] = [k1.as_ptr(), null()];
        let mut v1 = pattern(4096, 9);
        let bufs = [buf(&mut v1), buf(&mut v1)];
        let mut results = [1i32; 2];
        assert_eq!(
            mmcc_batch_put(keys.as_ptr(), 2, bufs.as_ptr(), null(), 0, results.as_mut_ptr()),
            OK
        );
        assert_eq!(results, [OK, INVALID]);
        assert!(last_error().contains("1 of 2 keys failed"), "{}", last_error());
        let mut o1 = vec![0u8; 4096];
        let obufs = [buf(&mut o1), buf(&mut o1)];
        assert_eq!(
            mmcc_batch_get(keys.as_ptr(), 2, obufs.as_ptr(), 0, results.as_mut_ptr()),
            OK
        );
        assert_eq!(results, [OK, INVALID]);
        assert_eq!(o1, v1);
        assert_eq!(mmcc_batch_exist(keys.as_ptr(), 2, 0, results.as_mut_ptr()), OK);
        assert_eq!(results, [1, INVALID]);
        let mut infos = [mmc_data_info::default(); 2];
        assert_eq!(
            mmcc_batch_query(keys.as_ptr(), 2, infos.as_mut_ptr(), 0, results.as_mut_ptr()),
            OK
        );
        assert_eq!((results, infos[0].size), ([OK, INVALID], 4096));
        assert_eq!(mmcc_batch_remove(keys.as_ptr(), 2, 0, results.as_mut_ptr()), OK);
        assert_eq!(results, [OK, INVALID]);
        assert_eq!(
            mmcc_batch_put(keys.as_ptr(), 2, bufs.as_ptr(), null(), 0, null_mut()),
            INVALID
        );
        assert_eq!(
            mmcc_batch_put(null(), 2, bufs.as_ptr(), null(), 0, results.as_mut_ptr()),
            INVALID
        );
        assert_eq!(results, [INVALID, INVALID]);

        // bad arguments
        assert_eq!(mmcc_put(null(), &b, null(), 0), INVALID);
        assert_eq!(mmcc_put(key.as_ptr(), null(), null(), 0), INVALID);
        assert_eq!(mmcc_get(key.as_ptr(), &buf(&mut out[..10]), 0), INVALID);
        let bad = CString::new(vec![0xc3u8, 0x28]).unwrap();
        assert_eq!(mmcc_exist(bad.as_ptr(), 0), INVALID);
        assert_eq!(mmcc_query(key.as_ptr(), null_mut(), 0), INVALID);
        assert_eq!(mmcc_remove(key.as_ptr(), 1), INVALID);

        // remove, remove_all, uninit
        assert_eq!(mmcc_remove(key.as_ptr(), 0), OK);
        assert_eq!(mmcc_remove(key.as_ptr(), 0), mmc_result::MMC_UNMATCHED_KEY as i32);
        let mut removed = 0u64;
        assert_eq!(mmcc_remove_all(0, &mut removed), OK);
        assert_eq!(removed, 1); // rs/layers
        assert_eq!(mmc_uninit(), OK);
        assert_eq!(mmcc_exist(lkey.as_ptr(), 0), NOT_INIT);

        // The cluster token reaches the C API through the config file
        // (`[cluster]`, as `$MMC_LOCAL_CONFIG_PATH` would name it).
        const TOKEN: &str = "ffi-cluster-token-0123456789";
        let secure = start_meta_with(Some(TOKEN));
        let dir = std::env::temp_dir().join(format!("mmc-ffi-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_token = dir.join("with.toml");
        std::fs::write(
            &with_token,
            format!("[cluster]\ntoken = \"{TOKEN}\"\n[local]\nmeta_addr = \"{secure}\"\ndram_size = \"8MB\"\n"),
        )
        .unwrap();
        let without = dir.join("without.toml");
        std::fs::write(
            &without,
            format!("[local]\nmeta_addr = \"{secure}\"\ndram_size = \"8MB\"\n"),
        )
        .unwrap();
        let without_c = CString::new(without.display().to_string()).unwrap();
        assert_eq!(mmc_setup(without_c.as_ptr(), null()), OK, "{}", last_error());
        assert_eq!(mmc_init(0, 1), mmc_result::MMC_NOT_CONNECTED_META as i32);
        assert!(last_error().contains("security.token"), "{}", last_error());
        let with_c = CString::new(with_token.display().to_string()).unwrap();
        assert_eq!(mmc_setup(with_c.as_ptr(), null()), OK, "{}", last_error());
        assert_eq!(mmc_init(0, 1), OK, "{}", last_error());
        let mut v = pattern(10_000, 7);
        assert_eq!(mmcc_put(key.as_ptr(), &buf(&mut v), null(), 0), OK, "{}", last_error());
        let mut back = vec![0u8; v.len()];
        assert_eq!(mmcc_get(key.as_ptr(), &buf(&mut back), 0), OK);
        assert_eq!(back, v);
        assert_eq!(mmc_uninit(), OK);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
