/*
 * The C client of `mmc-bench small-ops` (crates/mmc-bench/src/small_ops.rs
 * owns the loop; this is its copy on the C API): a pure client configured
 * by $MMC_LOCAL_CONFIG_PATH puts 256 keys of 4 KiB, times one exist, one
 * 4 KiB get, and both as 32-key batches (median of --rounds rounds of at
 * least --round-s seconds after one warm-up round), checks the bytes of
 * the last batch read, removes its keys and prints one JSON line.
 *
 * Usage: small_ops_c [--round-s S] [--rounds N]
 */
#include <memcache.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEYS 256
#define VALUE 4096
#define BATCH 32
#define MAX_ROUNDS 64

static char key_text[KEYS][64];
static const char *keys[KEYS];
static unsigned char values[KEYS][VALUE];
/* Page-aligned, as an engine's KV pool is and as the Rust and Python loops use. */
static _Alignas(4096) unsigned char one[VALUE];
static _Alignas(4096) unsigned char batch_buf[BATCH][VALUE];
static struct mmc_buffer batch_bufs[BATCH];
static int32_t results[BATCH];
static size_t last_window;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(const char *what, int32_t code) {
    fprintf(stderr, "small_ops_c: %s failed: %d (%s)\n", what, code, mmc_last_error());
    exit(1);
}

typedef void (*op_fn)(size_t i);

static void exist1(size_t i) {
    int32_t r = mmcc_exist(keys[i % KEYS], 0);
    if (r != 1) fail("mmcc_exist", r);
}

static void get1(size_t i) {
    struct mmc_buffer b = {one, VALUE, 0};
    int32_t r = mmcc_get(keys[i % KEYS], &b, 0);
    if (r != MMC_OK) fail("mmcc_get", r);
}

static size_t window(size_t i) { return (i * BATCH) % KEYS; }

static void exist32(size_t i) {
    int32_t r = mmcc_batch_exist(&keys[window(i)], BATCH, 0, results);
    if (r != MMC_OK) fail("mmcc_batch_exist", r);
    for (int k = 0; k < BATCH; k++)
        if (results[k] != 1) fail("mmcc_batch_exist (a key absent)", results[k]);
}

static void get32(size_t i) {
    last_window = window(i);
    int32_t r = mmcc_batch_get(&keys[last_window], BATCH, batch_bufs, 0, results);
    if (r != MMC_OK) fail("mmcc_batch_get", r);
    for (int k = 0; k < BATCH; k++)
        if (results[k] != MMC_OK) fail("mmcc_batch_get (one key)", results[k]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over `rounds` timed rounds (after a warm-up round) of us per call. */
static double timed(op_fn op, double round_s, int rounds) {
    double per_call[MAX_ROUNDS];
    size_t i = 0;
    for (int round = 0; round <= rounds; round++) {
        double start = now_s(), elapsed;
        uint64_t calls = 0;
        do {
            for (int k = 0; k < 16; k++) op(i++);
            calls += 16;
            elapsed = now_s() - start;
        } while (elapsed < round_s);
        if (round > 0) per_call[round - 1] = elapsed * 1e6 / (double)calls;
    }
    qsort(per_call, (size_t)rounds, sizeof(double), cmp_double);
    return per_call[rounds / 2];
}

int main(int argc, char **argv) {
    double round_s = 0.3;
    int rounds = 5;
    for (int a = 1; a + 1 < argc; a += 2) {
        if (strcmp(argv[a], "--round-s") == 0) round_s = atof(argv[a + 1]);
        else if (strcmp(argv[a], "--rounds") == 0) rounds = atoi(argv[a + 1]);
        else {
            fprintf(stderr, "small_ops_c: unknown argument %s\n", argv[a]);
            return 2;
        }
    }
    if (!(round_s > 0) || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "small_ops_c: --round-s must be > 0 and --rounds 1..%d\n", MAX_ROUNDS);
        return 2;
    }
    int32_t r = mmc_setup(NULL, NULL);
    if (r != MMC_OK) fail("mmc_setup", r);
    r = mmc_init(0, 0);
    if (r != MMC_OK) fail("mmc_init", r);

    struct mmc_buffer put_bufs[KEYS];
    for (int j = 0; j < KEYS; j++) {
        snprintf(key_text[j], sizeof key_text[j], "small-ops-c-%d-%d", (int)getpid(), j);
        keys[j] = key_text[j];
        memset(values[j], (unsigned char)j, VALUE);
        uint64_t idx = (uint64_t)j; /* little-endian hosts only, as the Rust loop */
        memcpy(values[j], &idx, sizeof idx);
        put_bufs[j] = (struct mmc_buffer){values[j], VALUE, 0};
    }
    for (int j = 0; j < KEYS; j += BATCH) {
        r = mmcc_batch_put(&keys[j], BATCH, &put_bufs[j], NULL, 0, results);
        if (r != MMC_OK) fail("mmcc_batch_put", r);
    }
    for (int k = 0; k < BATCH; k++) batch_bufs[k] = (struct mmc_buffer){batch_buf[k], VALUE, 0};

    double e1 = timed(exist1, round_s, rounds);
    double g1 = timed(get1, round_s, rounds);
    double e32 = timed(exist32, round_s, rounds);
    double g32 = timed(get32, round_s, rounds);
    for (int k = 0; k < BATCH; k++) {
        if (memcmp(batch_buf[k], values[last_window + (size_t)k], VALUE) != 0) {
            fprintf(stderr, "small_ops_c: %s returned other bytes than were put\n", keys[last_window + (size_t)k]);
            return 1;
        }
    }
    int32_t removed[KEYS];
    for (int j = 0; j < KEYS; j += BATCH) mmcc_batch_remove(&keys[j], BATCH, 0, removed);
    mmc_uninit();
    printf("{\"client\": \"c\", \"exist1_us\": %.4f, \"get1_us\": %.4f, \"exist32_us\": %.4f, \"get32_us\": %.4f}\n", e1,
           g1, e32, g32);
    return 0;
}
