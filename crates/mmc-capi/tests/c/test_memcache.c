/*
 * C test of libmemcache against a live cluster (started by scripts/test-c.sh:
 * a MetaService and two memory-providing `mmc local` processes).
 *
 *   test_memcache_c META_ADDR CONFIG_PATH [--small]
 *
 * CONFIG_PATH is a TOML file with a [local] section; $MMC_LOCAL_CONFIG_PATH
 * should name it too (phase 2 calls mmc_setup(NULL, ...)). --small shrinks
 * the values and batches (for the valgrind run).
 *
 * Covers every exported function, the batch and layered forms, byte-for-byte
 * verification of what is read back, and the bad-argument cases.
 * Exit status 0 when every check passed.
 */

#define _POSIX_C_SOURCE 200112L /* setenv, unsetenv */

#include "memcache.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        g_checks++;                                                                              \
        if (!(cond)) {                                                                           \
            g_failures++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__,    \
                    #cond, mmc_last_error());                                                    \
        }                                                                                        \
    } while (0)

#define CHECK_RC(expr, want)                                                                     \
    do {                                                                                         \
        int32_t rc_ = (expr);                                                                    \
        g_checks++;                                                                              \
        if (rc_ != (int32_t)(want)) {                                                            \
            g_failures++;                                                                        \
            fprintf(stderr, "%s:%d: %s returned %d, expected %d (last error: %s)\n", __FILE__,   \
                    __LINE__, #expr, (int)rc_, (int)(want), mmc_last_error());                   \
        }                                                                                        \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static void fill_random(uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        p[i] = (uint8_t)(g_rng >> 24);
    }
}

static uint8_t *xmalloc(size_t n)
{
    uint8_t *p = (uint8_t *)malloc(n);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static uint8_t *random_buf(size_t n)
{
    uint8_t *p = xmalloc(n);
    fill_random(p, n);
    return p;
}

static mmc_buffer host_buf(void *addr, size_t len)
{
    mmc_buffer b;
    b.addr = addr;
    b.len = (uint64_t)len;
    b.mem_type = MMC_MEM_HOST;
    return b;
}

static mmc_put_options replicas(uint32_t n)
{
    mmc_put_options o;
    memset(&o, 0, sizeof(o));
    o.replica_num = n;
    return o;
}

static int contains(const uint32_t *ids, uint32_t n, uint32_t id)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

/* Reads `key` back (its size known) and compares it with `want`. */
static int read_back_equals(const char *key, const uint8_t *want, size_t n)
{
    uint8_t *got = xmalloc(n);
    mmc_buffer b = host_buf(got, n);
    int ok;
    memset(got, 0, n);
    ok = mmcc_get(key, &b, 0) == MMC_OK && memcmp(got, want, n) == 0;
    free(got);
    return ok;
}

/* ---- phase 0: before setup / init ---------------------------------------- */

static void test_before_init(void)
{
    uint8_t byte = 7;
    mmc_buffer b = host_buf(&byte, 1);
    mmc_layers layers;
    mmc_data_info info;
    const char *keys[2] = {"a", "b"};
    int32_t results[2] = {1, 1};
    uint32_t sid = 0;
    uint64_t removed = 0;

    layers.bufs = &b;
    layers.count = 1;

    {
        /* Without mmc_setup, mmc_init reads $MMC_LOCAL_CONFIG_PATH; with
         * the variable unset there is nothing to start from. */
        const char *env = getenv("MMC_LOCAL_CONFIG_PATH");
        char *saved = env ? strcpy((char *)xmalloc(strlen(env) + 1), env) : NULL;
        unsetenv("MMC_LOCAL_CONFIG_PATH");
        CHECK_RC(mmc_init(0, 1), MMC_NOT_INITIALIZED); /* no mmc_setup yet */
        CHECK(strlen(mmc_last_error()) > 0);
        if (saved) {
            setenv("MMC_LOCAL_CONFIG_PATH", saved, 1);
            free(saved);
        }
    }
    CHECK_RC(mmc_uninit(), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_put("a", &b, NULL, 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_get("a", &b, 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_put_layers("a", &b, 1, NULL, 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_get_layers("a", &b, 1, 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_exist("a", 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_query("a", &info, 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_remove("a", 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_remove_all(0, &removed), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_local_service_id(&sid), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_batch_put(keys, 2, &b, NULL, 0, results), MMC_NOT_INITIALIZED);
    CHECK(results[0] == MMC_NOT_INITIALIZED && results[1] == MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_batch_get(keys, 2, &b, 0, results), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_batch_put_layers(keys, 1, &layers, NULL, 0, results), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_batch_get_layers(keys, 1, &layers, 0, results), MMC_NOT_INITIALIZED);
    results[1] = 1;
    CHECK_RC(mmcc_batch_exist(keys, 2, 0, results), MMC_NOT_INITIALIZED);
    CHECK(results[1] == MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_batch_query(keys, 2, &info, 0, results), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_batch_remove(keys, 2, 0, results), MMC_NOT_INITIALIZED);

    CHECK_RC(mmc_set_log_level("warn"), MMC_OK);
    CHECK(strcmp(mmc_last_error(), "") == 0);
    CHECK_RC(mmc_set_log_level("loud"), MMC_INVALID_PARAM);
    CHECK_RC(mmc_set_log_level(NULL), MMC_INVALID_PARAM);
}

/* ---- phase 1: setup, init as a memory provider ------------------------------ */

static void test_setup(const char *meta, const char *config_path)
{
    mmc_setup_options o;

    CHECK_RC(mmc_setup("/nonexistent/memcache.toml", NULL), MMC_INVALID_PARAM);
    memset(&o, 0, sizeof(o));
    o.dram_size = "12XB";
    CHECK_RC(mmc_setup(config_path, &o), MMC_INVALID_PARAM);
    memset(&o, 0, sizeof(o));
    o.protocol = "udp";
    CHECK_RC(mmc_setup(config_path, &o), MMC_INVALID_PARAM);
    memset(&o, 0, sizeof(o));
    o.meta_addr = "";
    CHECK_RC(mmc_setup(config_path, &o), MMC_INVALID_PARAM);
    CHECK(strstr(mmc_last_error(), "meta_addr") != NULL);
    memset(&o, 0, sizeof(o));
    o.transfer_listen = "not-an-address";
    CHECK_RC(mmc_setup(config_path, &o), MMC_INVALID_PARAM);
    memset(&o, 0, sizeof(o));
    o.log_level = "loud";
    CHECK_RC(mmc_setup(config_path, &o), MMC_INVALID_PARAM);
    memset(&o, 0, sizeof(o));
    o.dram_size = "\xff\xfe";
    CHECK_RC(mmc_setup(config_path, &o), MMC_INVALID_PARAM);
    CHECK_RC(mmc_init(0, 1), MMC_NOT_INITIALIZED); /* every setup above failed */

    /* a MetaService nobody listens for */
    memset(&o, 0, sizeof(o));
    o.meta_addr = "127.0.0.1:1";
    o.log_level = "off";
    CHECK_RC(mmc_setup(config_path, &o), MMC_OK);
    CHECK_RC(mmc_init(0, 0), MMC_NOT_CONNECTED_META);
    CHECK(strstr(mmc_last_error(), "127.0.0.1:1") != NULL);
    CHECK_RC(mmcc_exist("c/single", 0), MMC_NOT_INITIALIZED);

    memset(&o, 0, sizeof(o));
    o.meta_addr = meta;
    o.log_level = "warn";
    CHECK_RC(mmc_setup(config_path, &o), MMC_OK);
    CHECK_RC(mmc_init(0, 1), MMC_OK);
    CHECK_RC(mmc_init(0, 1), MMC_OK); /* already initialized: no-op */
    CHECK_RC(mmc_setup(config_path, &o), MMC_ERROR); /* not while initialized */
}

static void test_single(size_t size, uint32_t me)
{
    uint8_t *v = random_buf(size);
    uint8_t *out = xmalloc(size + 1);
    mmc_buffer b = host_buf(v, size);
    mmc_buffer ob;
    mmc_data_info info;
    mmc_put_options o = replicas(0); /* 0 means 1 */

    CHECK_RC(mmcc_put("c/single", &b, &o, 0), MMC_OK);
    CHECK_RC(mmcc_put("c/single", &b, NULL, 0), MMC_DUPLICATED_OBJECT);
    CHECK(read_back_equals("c/single", v, size));

    ob = host_buf(out, size - 1);
    CHECK_RC(mmcc_get("c/single", &ob, 0), MMC_INVALID_PARAM); /* too small */
    ob = host_buf(out, size + 1);
    CHECK_RC(mmcc_get("c/single", &ob, 0), MMC_INVALID_PARAM); /* too large */
    ob = host_buf(out, size);
    CHECK_RC(mmcc_get("c/absent", &ob, 0), MMC_OBJECT_NOT_EXISTS);

    CHECK_RC(mmcc_exist("c/single", 0), 1);
    CHECK_RC(mmcc_exist("c/absent", 0), 0);

    memset(&info, 0xab, sizeof(info));
    CHECK_RC(mmcc_query("c/single", &info, 0), MMC_OK);
    CHECK(info.size == size);
    CHECK(info.replica_num == 1);
    CHECK(info.service_ids[0] == me); /* the writer's own segment comes first */
    CHECK(info.media[0] == MMC_MEDIUM_DRAM);
    CHECK(info.service_ids[1] == 0);
    memset(&info, 0xab, sizeof(info));
    CHECK_RC(mmcc_query("c/absent", &info, 0), MMC_OBJECT_NOT_EXISTS);
    CHECK(info.size == 0 && info.replica_num == 0);

    free(v);
    free(out);
}

/* Returns the two other LocalServices' ids through `others`, and the value
 * stored under c/remote (for phase 2; the caller frees it). */
static uint8_t *test_replicas(size_t size, uint32_t me, uint32_t others[2])
{
    uint8_t *v = random_buf(size);
    mmc_buffer b = host_buf(v, size);
    mmc_data_info info;
    mmc_put_options o = replicas(3);
    uint32_t i, n = 0;

    others[0] = others[1] = 0;
    CHECK_RC(mmcc_put("c/rep3", &b, &o, 0), MMC_OK);
    CHECK_RC(mmcc_query("c/rep3", &info, 0), MMC_OK);
    CHECK(info.size == size);
    CHECK(info.replica_num == 3);
    CHECK(contains(info.service_ids, info.replica_num, me));
    for (i = 0; i < info.replica_num && i < 3; i++) {
        CHECK(info.media[i] == MMC_MEDIUM_DRAM);
        if (info.service_ids[i] != me && n < 2) {
            others[n++] = info.service_ids[i];
        }
    }
    CHECK(n == 2 && others[0] != others[1] && others[0] != 0 && others[1] != 0);
    CHECK(read_back_equals("c/rep3", v, size));

    /* a preferred service id goes first: the replica lands in another process */
    o = replicas(1);
    o.preferred_count = 1;
    o.preferred_service_ids[0] = others[0];
    CHECK_RC(mmcc_put("c/pref", &b, &o, 0), MMC_OK);
    CHECK_RC(mmcc_query("c/pref", &info, 0), MMC_OK);
    CHECK(info.replica_num == 1 && info.service_ids[0] == others[0]);
    CHECK(read_back_equals("c/pref", v, size)); /* shm mapping of that process */

    /* kept for phase 2: replicas only in the two `mmc local` processes */
    o = replicas(2);
    o.preferred_count = 2;
    o.preferred_service_ids[0] = others[0];
    o.preferred_service_ids[1] = others[1];
    CHECK_RC(mmcc_put("c/remote", &b, &o, 0), MMC_OK);
    CHECK_RC(mmcc_query("c/remote", &info, 0), MMC_OK);
    CHECK(info.replica_num == 2 && !contains(info.service_ids, 2, me));

    o = replicas(4); /* only three LocalServices provide memory */
    CHECK_RC(mmcc_put("c/rep4", &b, &o, 0), MMC_NO_PROVIDER); /* retryable */
    CHECK_RC(mmcc_exist("c/rep4", 0), 0);
    o = replicas(9);
    CHECK_RC(mmcc_put("c/rep9", &b, &o, 0), MMC_INVALID_PARAM);
    o = replicas(1);
    o.preferred_count = 9;
    CHECK_RC(mmcc_put("c/pref9", &b, &o, 0), MMC_INVALID_PARAM);
    return v;
}

static void test_layers(size_t size)
{
    size_t sizes[4];
    size_t total, i, off;
    uint8_t *layer[4];
    uint8_t *flat, *p1, *p2, *p3;
    mmc_buffer lb[4], ob[3];
    mmc_data_info info;

    sizes[0] = size / 4 + 1;
    sizes[1] = size / 8;
    sizes[2] = 3;
    sizes[3] = size / 2 + 17;
    total = sizes[0] + sizes[1] + sizes[2] + sizes[3];
    flat = xmalloc(total);
    for (i = 0, off = 0; i < 4; i++) {
        layer[i] = random_buf(sizes[i]);
        memcpy(flat + off, layer[i], sizes[i]);
        off += sizes[i];
        lb[i] = host_buf(layer[i], sizes[i]);
    }

    CHECK_RC(mmcc_put_layers("c/layers", lb, 4, NULL, 0), MMC_OK);
    CHECK_RC(mmcc_put_layers("c/layers", lb, 4, NULL, 0), MMC_DUPLICATED_OBJECT);
    CHECK_RC(mmcc_query("c/layers", &info, 0), MMC_OK);
    CHECK(info.size == total);
    CHECK(read_back_equals("c/layers", flat, total)); /* stored as the concatenation */

    /* scatter into a different split */
    p1 = xmalloc(7);
    p2 = xmalloc(total - 7 - 5);
    p3 = xmalloc(5);
    ob[0] = host_buf(p1, 7);
    ob[1] = host_buf(p2, total - 12);
    ob[2] = host_buf(p3, 5);
    CHECK_RC(mmcc_get_layers("c/layers", ob, 3, 0), MMC_OK);
    CHECK(memcmp(p1, flat, 7) == 0);
    CHECK(memcmp(p2, flat + 7, total - 12) == 0);
    CHECK(memcmp(p3, flat + total - 5, 5) == 0);

    ob[2].len = 4; /* sizes no longer sum to the object size */
    CHECK_RC(mmcc_get_layers("c/layers", ob, 3, 0), MMC_INVALID_PARAM);
    ob[2].len = 5;
    CHECK_RC(mmcc_get_layers("c/layers", ob, 0, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_get_layers("c/layers", NULL, 3, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_put_layers("c/layers2", lb, 0, NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_put_layers("c/layers2", NULL, 4, NULL, 0), MMC_INVALID_PARAM);
    lb[2].addr = NULL;
    CHECK_RC(mmcc_put_layers("c/layers2", lb, 4, NULL, 0), MMC_INVALID_PARAM);
    lb[2].addr = layer[2];
    lb[2].len = 0;
    CHECK_RC(mmcc_put_layers("c/layers2", lb, 4, NULL, 0), MMC_INVALID_PARAM);
    lb[2].len = sizes[2];
    lb[2].mem_type = MMC_MEM_DEVICE;
    CHECK_RC(mmcc_put_layers("c/layers2", lb, 4, NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_exist("c/layers2", 0), 0);

    for (i = 0; i < 4; i++) {
        free(layer[i]);
    }
    free(flat);
    free(p1);
    free(p2);
    free(p3);
}

#define MAX_N 16

static void test_batch(size_t size, uint32_t n)
{
    char names[MAX_N][32];
    const char *keys[MAX_N + 4];
    uint8_t *vals[MAX_N], *outs[MAX_N];
    size_t lens[MAX_N];
    mmc_buffer bufs[MAX_N + 4], obufs[MAX_N + 4];
    int32_t results[MAX_N + 4];
    uint32_t i;
    uint8_t byte = 1;
    char long_key[MMC_MAX_KEY_LEN + 2];
    mmc_put_options o = replicas(2);

    memset(keys, 0, sizeof(keys));
    memset(bufs, 0, sizeof(bufs));
    memset(obufs, 0, sizeof(obufs));
    memset(results, 0, sizeof(results));
    for (i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "c/batch/%u", (unsigned)i);
        keys[i] = names[i];
        lens[i] = size / (i + 1) + i; /* different sizes */
        vals[i] = random_buf(lens[i]);
        outs[i] = xmalloc(lens[i]);
        bufs[i] = host_buf(vals[i], lens[i]);
        obufs[i] = host_buf(outs[i], lens[i]);
    }
    CHECK_RC(mmcc_batch_put(keys, n, bufs, &o, 0, results), MMC_OK);
    for (i = 0; i < n; i++) {
        CHECK_RC(results[i], MMC_OK);
    }
    CHECK_RC(mmcc_batch_put(keys, n, bufs, &o, 0, results), MMC_OK);
    for (i = 0; i < n; i++) {
        CHECK_RC(results[i], MMC_DUPLICATED_OBJECT);
    }
    CHECK(strstr(mmc_last_error(), "already exists") != NULL);
    CHECK_RC(mmcc_batch_get(keys, n, obufs, 0, results), MMC_OK);
    for (i = 0; i < n; i++) {
        CHECK_RC(results[i], MMC_OK);
        CHECK(memcmp(outs[i], vals[i], lens[i]) == 0);
    }

    /* per-key argument errors do not stop the rest of the batch */
    memset(long_key, 'k', sizeof(long_key));
    long_key[MMC_MAX_KEY_LEN + 1] = '\0';
    {
        const char *mk[8] = {"c/mixed/ok", NULL, "\xff\xfe", "", long_key, "c/mixed/null", "c/mixed/zero",
                             "c/mixed/device"};
        mmc_buffer mb[8];
        for (i = 0; i < 8; i++) {
            mb[i] = bufs[0];
        }
        mb[5].addr = NULL;
        mb[6].len = 0;
        mb[7].mem_type = MMC_MEM_DEVICE;
        CHECK_RC(mmcc_batch_put(mk, 8, mb, NULL, 0, results), MMC_OK);
        CHECK_RC(results[0], MMC_OK);
        for (i = 1; i < 8; i++) {
            CHECK_RC(results[i], MMC_INVALID_PARAM);
        }
        CHECK(strstr(mmc_last_error(), "7 of 8 keys failed") != NULL);
        CHECK_RC(mmcc_exist("c/mixed/null", 0), 0);
    }
    {
        const char *gk[4] = {names[0], "c/absent", names[1], NULL};
        mmc_buffer gb[4];
        gb[0] = obufs[0];
        gb[1] = obufs[0];
        gb[2] = host_buf(outs[1], lens[1] - 1); /* wrong size */
        gb[3] = obufs[0];
        memset(outs[0], 0, lens[0]);
        CHECK_RC(mmcc_batch_get(gk, 4, gb, 0, results), MMC_OK);
        CHECK_RC(results[0], MMC_OK);
        CHECK_RC(results[1], MMC_OBJECT_NOT_EXISTS);
        CHECK_RC(results[2], MMC_INVALID_PARAM);
        CHECK_RC(results[3], MMC_INVALID_PARAM);
        CHECK(memcmp(outs[0], vals[0], lens[0]) == 0);
    }

    /* whole-batch argument errors: every result slot gets the code */
    results[0] = results[1] = 1;
    CHECK_RC(mmcc_batch_put(NULL, 2, bufs, NULL, 0, results), MMC_INVALID_PARAM);
    CHECK(results[0] == MMC_INVALID_PARAM && results[1] == MMC_INVALID_PARAM);
    CHECK_RC(mmcc_batch_put(keys, 2, NULL, NULL, 0, results), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_batch_put(keys, 2, bufs, NULL, 0, NULL), MMC_INVALID_PARAM);
    CHECK(strstr(mmc_last_error(), "results is a null pointer") != NULL);
    CHECK_RC(mmcc_batch_put(keys, 2, bufs, NULL, 1, results), MMC_INVALID_PARAM);
    o = replicas(9);
    CHECK_RC(mmcc_batch_put(keys, 2, bufs, &o, 0, results), MMC_INVALID_PARAM);
    results[0] = 1;
    CHECK_RC(mmcc_batch_put(keys, 0, bufs, NULL, 0, results), MMC_INVALID_PARAM);
    CHECK(results[0] == 1); /* keys_count out of range: results untouched */
    CHECK(strstr(mmc_last_error(), "batch is empty") != NULL);
    CHECK_RC(mmcc_batch_put(keys, MMC_MAX_BATCH + 1, bufs, NULL, 0, results), MMC_INVALID_PARAM);
    CHECK(results[0] == 1);
    CHECK_RC(mmcc_batch_get(keys, 2, NULL, 0, results), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_batch_get(NULL, 2, obufs, 0, results), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_batch_get(keys, 2, obufs, 0, NULL), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_batch_get(keys, 0, obufs, 0, results), MMC_INVALID_PARAM);

    /* exist / query / remove in batch */
    {
        const char *ek[5] = {names[0], "c/absent", NULL, "", "c/rep3"};
        mmc_data_info infos[5];
        CHECK_RC(mmcc_batch_exist(ek, 5, 0, results), MMC_OK);
        CHECK_RC(results[0], 1);
        CHECK_RC(results[1], 0);
        CHECK_RC(results[2], MMC_INVALID_PARAM);
        CHECK_RC(results[3], MMC_INVALID_PARAM);
        CHECK_RC(results[4], 1);
        CHECK_RC(mmcc_batch_exist(ek, 5, 0, NULL), MMC_INVALID_PARAM);
        CHECK_RC(mmcc_batch_exist(NULL, 5, 0, results), MMC_INVALID_PARAM);
        CHECK_RC(mmcc_batch_exist(ek, 0, 0, results), MMC_INVALID_PARAM);

        memset(infos, 0xab, sizeof(infos));
        CHECK_RC(mmcc_batch_query(ek, 5, infos, 0, results), MMC_OK);
        CHECK_RC(results[0], MMC_OK);
        CHECK(infos[0].size == lens[0] && infos[0].replica_num == 2);
        CHECK(infos[0].service_ids[0] != infos[0].service_ids[1]);
        CHECK_RC(results[1], MMC_OBJECT_NOT_EXISTS);
        CHECK(infos[1].size == 0 && infos[1].replica_num == 0);
        CHECK_RC(results[2], MMC_INVALID_PARAM);
        CHECK_RC(results[3], MMC_INVALID_PARAM);
        CHECK_RC(results[4], MMC_OK);
        CHECK(infos[4].replica_num == 3 && infos[4].media[2] == MMC_MEDIUM_DRAM);
        CHECK_RC(mmcc_batch_query(ek, 5, NULL, 0, results), MMC_INVALID_PARAM);
        CHECK_RC(mmcc_batch_query(ek, 5, infos, 0, NULL), MMC_INVALID_PARAM);

        ek[4] = "c/mixed/ok";
        CHECK_RC(mmcc_batch_remove(ek, 5, 0, results), MMC_OK);
        CHECK_RC(results[0], MMC_OK);
        CHECK_RC(results[1], MMC_UNMATCHED_KEY);
        CHECK_RC(results[2], MMC_INVALID_PARAM);
        CHECK_RC(results[3], MMC_INVALID_PARAM);
        CHECK_RC(results[4], MMC_OK);
        CHECK_RC(mmcc_exist(names[0], 0), 0);
        CHECK_RC(mmcc_batch_remove(ek, 5, 0, NULL), MMC_INVALID_PARAM);
        CHECK_RC(mmcc_batch_remove(NULL, 5, 0, results), MMC_INVALID_PARAM);
        CHECK_RC(mmcc_batch_remove(ek, 5, 2, results), MMC_INVALID_PARAM);
    }
    {
        mmc_buffer one = host_buf(&byte, 1);
        mmc_layers l;
        l.bufs = &one;
        l.count = 1;
        CHECK_RC(mmcc_batch_put_layers(keys, 1, NULL, NULL, 0, results), MMC_INVALID_PARAM);
        CHECK_RC(mmcc_batch_get_layers(keys, 1, NULL, 0, results), MMC_INVALID_PARAM);
        CHECK_RC(mmcc_batch_get_layers(keys, 1, &l, 0, NULL), MMC_INVALID_PARAM);
    }

    for (i = 0; i < n; i++) {
        free(vals[i]);
        free(outs[i]);
    }
}

static void test_batch_layers(size_t size, uint32_t n)
{
    char names[MAX_N][32];
    const char *keys[MAX_N];
    uint8_t *src[MAX_N][3], *dst[MAX_N][2], *flat[MAX_N];
    mmc_buffer sb[MAX_N][3], db[MAX_N][2];
    mmc_layers sv[MAX_N], dv[MAX_N];
    size_t ls[3], total = 0;
    int32_t results[MAX_N];
    uint32_t i, j;

    memset(keys, 0, sizeof(keys));
    memset(sv, 0, sizeof(sv));
    memset(dv, 0, sizeof(dv));
    memset(results, 0, sizeof(results));
    ls[0] = size / 3;
    ls[1] = 11;
    ls[2] = size / 5 + 1;
    total = ls[0] + ls[1] + ls[2];
    for (i = 0; i < n; i++) {
        size_t off = 0;
        snprintf(names[i], sizeof(names[i]), "c/blayers/%u", (unsigned)i);
        keys[i] = names[i];
        flat[i] = xmalloc(total);
        for (j = 0; j < 3; j++) {
            src[i][j] = random_buf(ls[j]);
            memcpy(flat[i] + off, src[i][j], ls[j]);
            off += ls[j];
            sb[i][j] = host_buf(src[i][j], ls[j]);
        }
        sv[i].bufs = sb[i];
        sv[i].count = 3;
        dst[i][0] = xmalloc(total / 2);
        dst[i][1] = xmalloc(total - total / 2);
        db[i][0] = host_buf(dst[i][0], total / 2);
        db[i][1] = host_buf(dst[i][1], total - total / 2);
        dv[i].bufs = db[i];
        dv[i].count = 2;
    }
    sv[n - 1].count = 0; /* one bad value: only that key fails */
    CHECK_RC(mmcc_batch_put_layers(keys, n, sv, NULL, 0, results), MMC_OK);
    for (i = 0; i + 1 < n; i++) {
        CHECK_RC(results[i], MMC_OK);
    }
    CHECK_RC(results[n - 1], MMC_INVALID_PARAM);
    sv[n - 1].count = 3;
    CHECK_RC(mmcc_batch_put_layers(keys, n, sv, NULL, 0, results), MMC_OK);
    for (i = 0; i + 1 < n; i++) {
        CHECK_RC(results[i], MMC_DUPLICATED_OBJECT);
    }
    CHECK_RC(results[n - 1], MMC_OK);

    CHECK_RC(mmcc_batch_get_layers(keys, n, dv, 0, results), MMC_OK);
    for (i = 0; i < n; i++) {
        CHECK_RC(results[i], MMC_OK);
        CHECK(memcmp(dst[i][0], flat[i], total / 2) == 0);
        CHECK(memcmp(dst[i][1], flat[i] + total / 2, total - total / 2) == 0);
    }
    db[0][1].len -= 1; /* wrong total for key 0 only */
    CHECK_RC(mmcc_batch_get_layers(keys, n, dv, 0, results), MMC_OK);
    CHECK_RC(results[0], MMC_INVALID_PARAM);
    for (i = 1; i < n; i++) {
        CHECK_RC(results[i], MMC_OK);
    }

    for (i = 0; i < n; i++) {
        for (j = 0; j < 3; j++) {
            free(src[i][j]);
        }
        free(dst[i][0]);
        free(dst[i][1]);
        free(flat[i]);
    }
}

static void test_bad_args(void)
{
    uint8_t byte = 1;
    mmc_buffer b = host_buf(&byte, 1);
    mmc_data_info info;
    char long_key[MMC_MAX_KEY_LEN + 2];
    char max_key[MMC_MAX_KEY_LEN + 1];

    memset(long_key, 'k', sizeof(long_key));
    long_key[MMC_MAX_KEY_LEN + 1] = '\0';
    memset(max_key, 'm', sizeof(max_key));
    max_key[MMC_MAX_KEY_LEN] = '\0';

    CHECK_RC(mmcc_put(NULL, &b, NULL, 0), MMC_INVALID_PARAM);
    CHECK(strstr(mmc_last_error(), "null") != NULL);
    CHECK_RC(mmcc_put("", &b, NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_put(long_key, &b, NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_put("\xc3\x28", &b, NULL, 0), MMC_INVALID_PARAM); /* invalid UTF-8 */
    CHECK(strstr(mmc_last_error(), "UTF-8") != NULL);
    CHECK_RC(mmcc_put(max_key, &b, NULL, 0), MMC_OK); /* 256 bytes is fine */
    CHECK_RC(mmcc_remove(max_key, 0), MMC_OK);
    CHECK_RC(mmcc_put("c/bad", NULL, NULL, 0), MMC_INVALID_PARAM);
    b.addr = NULL;
    CHECK_RC(mmcc_put("c/bad", &b, NULL, 0), MMC_INVALID_PARAM);
    b.addr = &byte;
    b.len = 0;
    CHECK_RC(mmcc_put("c/bad", &b, NULL, 0), MMC_INVALID_PARAM);
    b.len = 1;
    b.mem_type = MMC_MEM_DEVICE;
    CHECK_RC(mmcc_put("c/bad", &b, NULL, 0), MMC_INVALID_PARAM);
    b.mem_type = 77;
    CHECK_RC(mmcc_get("c/rep3", &b, 0), MMC_INVALID_PARAM);
    b.mem_type = MMC_MEM_HOST;
    CHECK_RC(mmcc_put("c/bad", &b, NULL, 1), MMC_INVALID_PARAM); /* reserved flags */
    CHECK_RC(mmcc_exist("c/bad", 0), 0);
    CHECK_RC(mmcc_get(NULL, &b, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_get("c/rep3", NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_get("c/rep3", &b, 4), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_exist(NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_exist("", 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_exist(long_key, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_exist("c/rep3", 8), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_query("c/rep3", NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_query(NULL, &info, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_remove(NULL, 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_remove("\xff", 0), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_remove_all(1, NULL), MMC_INVALID_PARAM);
    CHECK_RC(mmcc_local_service_id(NULL), MMC_INVALID_PARAM);
}

static void test_remove(void)
{
    uint8_t byte = 1;
    mmc_buffer b = host_buf(&byte, 1);
    CHECK_RC(mmcc_remove("c/single", 0), MMC_OK);
    CHECK_RC(mmcc_remove("c/single", 0), MMC_UNMATCHED_KEY);
    CHECK_RC(mmcc_exist("c/single", 0), 0);
    CHECK_RC(mmcc_get("c/single", &b, 0), MMC_OBJECT_NOT_EXISTS);
}

/* ---- phase 2: pure client over TCP ------------------------------------------ */

static void test_pure_client(const char *meta, size_t size, uint32_t old_id, uint32_t others[2],
                             const uint8_t *remote_val)
{
    mmc_setup_options so;
    mmc_data_info info;
    uint32_t me = 0;
    uint64_t removed = 0;
    uint8_t *v = random_buf(size);
    mmc_buffer b = host_buf(v, size);
    mmc_put_options o = replicas(2);
    int32_t results[2];
    const char *keys[2] = {"c/tcp", "c/remote"};
    uint8_t *o1 = xmalloc(size), *o2 = xmalloc(size);
    mmc_buffer ob[2];

    memset(&so, 0, sizeof(so));
    so.meta_addr = meta; /* the rest comes from $MMC_LOCAL_CONFIG_PATH */
    so.protocol = "tcp";
    so.log_level = "warn";
    so.worker_threads = 2;
    CHECK_RC(mmc_setup(NULL, &so), MMC_OK);
    CHECK_RC(mmc_init(3, 0), MMC_OK);
    CHECK_RC(mmcc_local_service_id(&me), MMC_OK);
    CHECK(me != 0 && me != old_id);

    /* written in phase 1 to the two `mmc local` processes; read over TCP now */
    CHECK(read_back_equals("c/remote", remote_val, size));
    /* c/rep3 lost the replica in our old segment but is still readable */
    CHECK_RC(mmcc_query("c/rep3", &info, 0), MMC_OK);
    CHECK(info.replica_num == 2 && !contains(info.service_ids, 2, old_id));
    CHECK(info.size == size);

    /* a pure client writes to the memory providers over TCP */
    CHECK_RC(mmcc_put("c/tcp", &b, &o, 0), MMC_OK);
    CHECK_RC(mmcc_query("c/tcp", &info, 0), MMC_OK);
    CHECK(info.replica_num == 2 && contains(info.service_ids, 2, others[0]) &&
          contains(info.service_ids, 2, others[1]));
    ob[0] = host_buf(o1, size);
    ob[1] = host_buf(o2, size);
    CHECK_RC(mmcc_batch_get(keys, 2, ob, 0, results), MMC_OK);
    CHECK_RC(results[0], MMC_OK);
    CHECK_RC(results[1], MMC_OK);
    CHECK(memcmp(o1, v, size) == 0);
    CHECK(memcmp(o2, remote_val, size) == 0);

    CHECK_RC(mmcc_remove_all(0, &removed), MMC_OK);
    CHECK(removed >= 4);
    CHECK_RC(mmcc_exist("c/remote", 0), 0);
    CHECK_RC(mmcc_batch_exist(keys, 2, 0, results), MMC_OK);
    CHECK(results[0] == 0 && results[1] == 0);
    CHECK_RC(mmc_uninit(), MMC_OK);

    free(v);
    free(o1);
    free(o2);
}

int main(int argc, char **argv)
{
    const char *meta, *config_path;
    int small;
    size_t size;
    uint32_t n, me = 0, others[2] = {0, 0};
    uint8_t *remote_val;
    uint8_t byte = 1;
    mmc_buffer b = host_buf(&byte, 1);

    if (argc < 3) {
        fprintf(stderr, "usage: %s META_ADDR CONFIG_PATH [--small]\n", argv[0]);
        return 2;
    }
    meta = argv[1];
    config_path = argv[2];
    small = argc > 3 && strcmp(argv[3], "--small") == 0;
    size = small ? 64 * 1024 : 1024 * 1024 + 123;
    n = small ? 4 : MAX_N;

    test_before_init();
    test_setup(meta, config_path);
    CHECK_RC(mmcc_local_service_id(&me), MMC_OK);
    CHECK(me != 0);
    CHECK_RC(mmcc_remove_all(0, NULL), MMC_OK); /* start from an empty cluster */
    printf("c test: service id %u, values of %zu bytes, batches of %u\n", (unsigned)me, size, (unsigned)n);

    test_single(size, me);
    remote_val = test_replicas(size, me, others);
    test_layers(size);
    test_batch(size, n);
    test_batch_layers(size, n);
    test_bad_args();
    test_remove();

    /* phase 1 ends: leave the cluster (our segment goes with us) */
    CHECK_RC(mmc_uninit(), MMC_OK);
    CHECK_RC(mmc_uninit(), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_put("c/after", &b, NULL, 0), MMC_NOT_INITIALIZED);
    CHECK_RC(mmcc_local_service_id(&me), MMC_NOT_INITIALIZED);

    test_pure_client(meta, size, me, others, remote_val);
    free(remote_val);
    CHECK_RC(mmcc_exist("c/remote", 0), MMC_NOT_INITIALIZED);

    if (g_failures != 0) {
        printf("c test: %d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    printf("c test: all %d checks passed\n", g_checks);
    return 0;
}
