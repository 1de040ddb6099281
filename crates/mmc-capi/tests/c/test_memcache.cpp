// C++ test of the header-only wrapper memcache.hpp against a live cluster
// (started by scripts/test-c.sh: a MetaService and two memory-providing
// `mmc local` processes).
//
//   test_memcache_cpp META_ADDR
//
// Exercises every ObjectStore method, the batch and layered forms with
// byte-for-byte verification, the argument checks and RAII teardown.

#include "memcache.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

int g_checks = 0;
int g_failures = 0;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        g_checks++;                                                                              \
        if (!(cond)) {                                                                           \
            g_failures++;                                                                        \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,         \
                         __LINE__, #cond, mmc::LastError().c_str());                             \
        }                                                                                        \
    } while (0)

#define CHECK_EQ(expr, want)                                                                     \
    do {                                                                                         \
        long long got_ = static_cast<long long>(expr);                                           \
        long long want_ = static_cast<long long>(want);                                          \
        g_checks++;                                                                              \
        if (got_ != want_) {                                                                     \
            g_failures++;                                                                        \
            std::fprintf(stderr, "%s:%d: %s is %lld, expected %lld (last error: %s)\n",          \
                         __FILE__, __LINE__, #expr, got_, want_, mmc::LastError().c_str());      \
        }                                                                                        \
    } while (0)

using Bytes = std::vector<uint8_t>;

std::mt19937_64 g_rng(42);

Bytes Random(size_t n)
{
    Bytes b(n);
    for (auto &x : b) {
        x = static_cast<uint8_t>(g_rng());
    }
    return b;
}

bool AllEqual(const std::vector<int> &v, int want)
{
    for (int x : v) {
        if (x != want) {
            return false;
        }
    }
    return true;
}

void TestBeforeInit()
{
    mmc::ObjectStore s;
    uint8_t byte = 1;
    uint32_t id = 0;
    {
        // Without Setup, Init reads $MMC_LOCAL_CONFIG_PATH (as the original
        // does); with the variable unset there is nothing to start from.
        const char *env = std::getenv("MMC_LOCAL_CONFIG_PATH");
        std::string saved = env ? env : "";
        unsetenv("MMC_LOCAL_CONFIG_PATH");
        CHECK_EQ(s.Init(0, true), MMC_NOT_INITIALIZED);  // no Setup yet
        if (env) {
            setenv("MMC_LOCAL_CONFIG_PATH", saved.c_str(), 1);
        }
    }
    CHECK_EQ(s.TearDown(), MMC_NOT_INITIALIZED);
    CHECK_EQ(s.PutFrom("k", &byte, 1), MMC_NOT_INITIALIZED);
    CHECK_EQ(s.GetInto("k", &byte, 1), MMC_NOT_INITIALIZED);
    CHECK_EQ(s.IsExist("k"), MMC_NOT_INITIALIZED);
    CHECK_EQ(s.Remove("k"), MMC_NOT_INITIALIZED);
    CHECK_EQ(s.RemoveAll(), MMC_NOT_INITIALIZED);
    CHECK_EQ(s.GetLocalServiceId(id), MMC_NOT_INITIALIZED);
    CHECK_EQ(s.GetKeyInfo("k").Status(), MMC_NOT_INITIALIZED);
    CHECK(AllEqual(s.BatchIsExist({"a", "b"}), MMC_NOT_INITIALIZED));
    CHECK(AllEqual(s.BatchRemove({"a", "b"}), MMC_NOT_INITIALIZED));
    CHECK(AllEqual(s.BatchPutFrom({"a"}, {&byte}, {1}), MMC_NOT_INITIALIZED));
    CHECK(!mmc::LastError().empty());
    CHECK_EQ(mmc::SetLogLevel("warn"), MMC_OK);
    CHECK_EQ(mmc::SetLogLevel("chatty"), MMC_INVALID_PARAM);
}

void TestSingle(mmc::ObjectStore &store, uint32_t me, size_t size)
{
    Bytes v = Random(size);
    Bytes out(size);
    CHECK_EQ(store.PutFrom("cpp/one", v.data(), v.size()), MMC_OK);
    CHECK_EQ(store.PutFrom("cpp/one", v.data(), v.size()), MMC_OK);  // duplicate: success in C++
    CHECK_EQ(store.GetInto("cpp/one", out.data(), out.size()), MMC_OK);
    CHECK(out == v);
    std::fill(out.begin(), out.end(), 0);
    CHECK_EQ(store.GetInto("cpp/one", out.data(), out.size(), mmc::DIRECT_AUTO), MMC_OK);
    CHECK(out == v);
    CHECK_EQ(store.GetInto("cpp/one", out.data(), size - 1), MMC_INVALID_PARAM);
    CHECK_EQ(store.GetInto("cpp/absent", out.data(), size), MMC_OBJECT_NOT_EXISTS);
    CHECK_EQ(store.GetInto("cpp/one", out.data(), size, mmc::DIRECT_POOL_TO_DEVICE), MMC_INVALID_PARAM);
    CHECK_EQ(store.GetInto("cpp/one", out.data(), size, 42), MMC_INVALID_PARAM);
    CHECK_EQ(store.GetInto("cpp/one", nullptr, size), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFrom("cpp/dev", v.data(), size, mmc::DIRECT_DEVICE_TO_POOL), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFrom("cpp/dir", v.data(), size, 5), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFrom("cpp/zero", v.data(), 0), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFrom("", v.data(), size), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFrom(std::string(257, 'k'), v.data(), size), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFrom(std::string("a\0b", 3), v.data(), size), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFrom("\xff\xfe", v.data(), size), MMC_INVALID_PARAM);
    CHECK_EQ(store.IsExist("cpp/dev"), 0);

    CHECK_EQ(store.IsExist("cpp/one"), 1);
    CHECK_EQ(store.IsExist("cpp/absent"), 0);
    CHECK_EQ(store.IsExist(std::string("x\0y", 3)), MMC_INVALID_PARAM);

    mmc::KeyInfo info = store.GetKeyInfo("cpp/one");
    CHECK(info.Ok());
    CHECK_EQ(info.Size(), size);
    CHECK_EQ(info.GetBlobNum(), 1);
    CHECK_EQ(info.LocList().at(0), me);
    CHECK_EQ(info.TypeList().at(0), MMC_MEDIUM_DRAM);
    CHECK(info.ToString().find("dram") != std::string::npos);
    mmc::KeyInfo absent = store.GetKeyInfo("cpp/absent");
    CHECK_EQ(absent.Status(), MMC_OBJECT_NOT_EXISTS);
    CHECK_EQ(absent.GetBlobNum(), 0);
    CHECK_EQ(store.GetKeyInfo("").Status(), MMC_INVALID_PARAM);

    // replicas and preferred placement
    mmc::ReplicateConfig rc;
    rc.replicaNum = 3;
    CHECK_EQ(store.PutFrom("cpp/rep3", v.data(), size, mmc::DIRECT_HOST_TO_POOL, rc), MMC_OK);
    mmc::KeyInfo r3 = store.GetKeyInfo("cpp/rep3");
    CHECK_EQ(r3.GetBlobNum(), 3);
    uint32_t other = 0;
    for (uint32_t id : r3.LocList()) {
        if (id != me) {
            other = id;
        }
    }
    CHECK(other != 0);
    mmc::ReplicateConfig pref;
    pref.preferredLocalServiceIDs = {other};
    CHECK_EQ(store.PutFrom("cpp/pref", v.data(), size, mmc::DIRECT_HOST_TO_POOL, pref), MMC_OK);
    CHECK_EQ(store.GetKeyInfo("cpp/pref").LocList().at(0), other);
    std::fill(out.begin(), out.end(), 0);
    CHECK_EQ(store.GetInto("cpp/pref", out.data(), size), MMC_OK);
    CHECK(out == v);
    rc.replicaNum = 0;
    CHECK_EQ(store.PutFrom("cpp/rep0", v.data(), size, mmc::DIRECT_HOST_TO_POOL, rc), MMC_INVALID_PARAM);
    rc.replicaNum = 9;
    CHECK_EQ(store.PutFrom("cpp/rep9", v.data(), size, mmc::DIRECT_HOST_TO_POOL, rc), MMC_INVALID_PARAM);
    pref.preferredLocalServiceIDs.assign(9, other);
    CHECK_EQ(store.PutFrom("cpp/pref9", v.data(), size, mmc::DIRECT_HOST_TO_POOL, pref), MMC_INVALID_PARAM);
}

void TestLayers(mmc::ObjectStore &store, size_t size)
{
    std::vector<Bytes> layers = {Random(size / 3), Random(5), Random(size / 2 + 1)};
    Bytes flat;
    std::vector<void *> ptrs;
    std::vector<size_t> sizes;
    for (auto &l : layers) {
        flat.insert(flat.end(), l.begin(), l.end());
        ptrs.push_back(l.data());
        sizes.push_back(l.size());
    }
    CHECK_EQ(store.PutFromLayers("cpp/layers", ptrs, sizes), MMC_OK);
    CHECK_EQ(store.PutFromLayers("cpp/layers", ptrs, sizes), MMC_OK);  // duplicate
    CHECK_EQ(store.GetKeyInfo("cpp/layers").Size(), flat.size());
    Bytes whole(flat.size());
    CHECK_EQ(store.GetInto("cpp/layers", whole.data(), whole.size()), MMC_OK);
    CHECK(whole == flat);

    Bytes a(1), b(flat.size() - 1 - 9), c(9);
    CHECK_EQ(store.GetIntoLayers("cpp/layers", {a.data(), b.data(), c.data()}, {a.size(), b.size(), c.size()}), MMC_OK);
    Bytes joined;
    joined.insert(joined.end(), a.begin(), a.end());
    joined.insert(joined.end(), b.begin(), b.end());
    joined.insert(joined.end(), c.begin(), c.end());
    CHECK(joined == flat);

    CHECK_EQ(store.GetIntoLayers("cpp/layers", {a.data(), b.data()}, {a.size(), b.size()}), MMC_INVALID_PARAM);
    CHECK_EQ(store.GetIntoLayers("cpp/layers", {a.data()}, {1, 2}), MMC_INVALID_PARAM);
    CHECK_EQ(store.GetIntoLayers("cpp/layers", {}, {}), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFromLayers("cpp/layers2", {}, {}), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFromLayers("cpp/layers2", ptrs, {1, 2}), MMC_INVALID_PARAM);
    CHECK_EQ(store.PutFromLayers("cpp/layers2", {ptrs[0], nullptr}, {1, 2}), MMC_INVALID_PARAM);
    CHECK_EQ(store.IsExist("cpp/layers2"), 0);
}

void TestBatch(mmc::ObjectStore &store, size_t size)
{
    const size_t n = 12;
    std::vector<std::string> keys;
    std::vector<Bytes> vals, outs;
    std::vector<void *> in_ptrs, out_ptrs;
    std::vector<size_t> sizes;
    for (size_t i = 0; i < n; ++i) {
        keys.push_back("cpp/batch/" + std::to_string(i));
        vals.push_back(Random(size / (i + 1) + i));
        outs.emplace_back(vals.back().size());
        sizes.push_back(vals.back().size());
    }
    for (size_t i = 0; i < n; ++i) {
        in_ptrs.push_back(vals[i].data());
        out_ptrs.push_back(outs[i].data());
    }
    mmc::ReplicateConfig rc;
    rc.replicaNum = 2;
    CHECK(AllEqual(store.BatchPutFrom(keys, in_ptrs, sizes, mmc::DIRECT_HOST_TO_POOL, rc), MMC_OK));
    CHECK(AllEqual(store.BatchPutFrom(keys, in_ptrs, sizes), MMC_OK));  // duplicates: success
    CHECK(AllEqual(store.BatchGetInto(keys, out_ptrs, sizes), MMC_OK));
    for (size_t i = 0; i < n; ++i) {
        CHECK(outs[i] == vals[i]);
    }
    CHECK_EQ(store.GetKeyInfo(keys[0]).GetBlobNum(), 2);

    // mismatched vectors reject the whole batch
    CHECK(AllEqual(store.BatchPutFrom(keys, in_ptrs, {1, 2}), MMC_INVALID_PARAM));
    CHECK(AllEqual(store.BatchGetInto(keys, {out_ptrs[0]}, sizes), MMC_INVALID_PARAM));
    CHECK(AllEqual(store.BatchGetInto(keys, out_ptrs, sizes, mmc::DIRECT_POOL_TO_DEVICE), MMC_INVALID_PARAM));
    CHECK(store.BatchGetInto({}, {}, {}).empty());

    // per-key outcomes
    std::vector<int> r = store.BatchGetInto({keys[0], "cpp/absent", keys[1], ""}, {out_ptrs[0], out_ptrs[0], out_ptrs[1], out_ptrs[0]},
                                            {sizes[0], sizes[0], sizes[1] + 1, sizes[0]});
    CHECK_EQ(r.size(), 4);
    CHECK_EQ(r[0], MMC_OK);
    CHECK_EQ(r[1], MMC_OBJECT_NOT_EXISTS);
    CHECK_EQ(r[2], MMC_INVALID_PARAM);
    CHECK_EQ(r[3], MMC_INVALID_PARAM);
    r = store.BatchPutFrom({"cpp/batch/new", std::string("n\0l", 3)}, {in_ptrs[0], in_ptrs[0]}, {sizes[0], sizes[0]});
    CHECK_EQ(r[0], MMC_OK);
    CHECK_EQ(r[1], MMC_INVALID_PARAM);

    r = store.BatchIsExist({keys[0], "cpp/absent", "", keys[n - 1]});
    CHECK_EQ(r[0], 1);
    CHECK_EQ(r[1], 0);
    CHECK_EQ(r[2], MMC_INVALID_PARAM);
    CHECK_EQ(r[3], 1);
    CHECK(store.BatchIsExist({}).empty());

    std::vector<mmc::KeyInfo> infos = store.BatchGetKeyInfo({keys[1], "cpp/absent", "cpp/rep3"});
    CHECK_EQ(infos.size(), 3);
    CHECK(infos[0].Ok());
    CHECK_EQ(infos[0].Size(), sizes[1]);
    CHECK_EQ(infos[0].GetBlobNum(), 2);
    CHECK_EQ(infos[1].Status(), MMC_OBJECT_NOT_EXISTS);
    CHECK_EQ(infos[2].GetBlobNum(), 3);

    CHECK_EQ(store.Remove(keys[0]), MMC_OK);
    CHECK_EQ(store.Remove(keys[0]), MMC_UNMATCHED_KEY);
    CHECK_EQ(store.IsExist(keys[0]), 0);
    r = store.BatchRemove({keys[1], keys[0], ""});
    CHECK_EQ(r[0], MMC_OK);
    CHECK_EQ(r[1], MMC_UNMATCHED_KEY);
    CHECK_EQ(r[2], MMC_INVALID_PARAM);
}

void TestBatchLayers(mmc::ObjectStore &store, size_t size)
{
    const size_t n = 6;
    std::vector<std::string> keys;
    std::vector<std::vector<Bytes>> src(n);
    std::vector<Bytes> flat(n), dst_a(n), dst_b(n);
    std::vector<std::vector<void *>> in(n), out(n);
    std::vector<std::vector<size_t>> in_sizes(n), out_sizes(n);
    for (size_t i = 0; i < n; ++i) {
        keys.push_back("cpp/blayers/" + std::to_string(i));
        src[i] = {Random(size / 4), Random(size / 8 + i), Random(33)};
        for (auto &l : src[i]) {
            flat[i].insert(flat[i].end(), l.begin(), l.end());
            in[i].push_back(l.data());
            in_sizes[i].push_back(l.size());
        }
        dst_a[i].resize(flat[i].size() / 2);
        dst_b[i].resize(flat[i].size() - dst_a[i].size());
        out[i] = {dst_a[i].data(), dst_b[i].data()};
        out_sizes[i] = {dst_a[i].size(), dst_b[i].size()};
    }
    CHECK(AllEqual(store.BatchPutFromLayers(keys, in, in_sizes), MMC_OK));
    CHECK(AllEqual(store.BatchPutFromLayers(keys, in, in_sizes), MMC_OK));
    CHECK(AllEqual(store.BatchGetIntoLayers(keys, out, out_sizes), MMC_OK));
    for (size_t i = 0; i < n; ++i) {
        Bytes joined(dst_a[i]);
        joined.insert(joined.end(), dst_b[i].begin(), dst_b[i].end());
        CHECK(joined == flat[i]);
        CHECK_EQ(store.GetKeyInfo(keys[i]).Size(), flat[i].size());
    }
    // one bad entry (layer vectors of different lengths) fails alone
    out_sizes[2].pop_back();
    std::vector<int> r = store.BatchGetIntoLayers(keys, out, out_sizes);
    for (size_t i = 0; i < n; ++i) {
        CHECK_EQ(r[i], i == 2 ? MMC_INVALID_PARAM : MMC_OK);
    }
    CHECK(AllEqual(store.BatchGetIntoLayers(keys, {out[0]}, out_sizes), MMC_INVALID_PARAM));
    CHECK(AllEqual(store.BatchPutFromLayers({"cpp/bl/x"}, in, in_sizes), MMC_INVALID_PARAM));
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s META_ADDR\n", argv[0]);
        return 2;
    }
    const std::string meta = argv[1];
    const size_t size = 512 * 1024 + 7;

    TestBeforeInit();

    uint32_t first_id = 0;
    {
        mmc::ObjectStore store;
        mmc::SetupOptions bad;
        bad.protocol = "udp";
        CHECK_EQ(store.Setup("", bad), MMC_INVALID_PARAM);
        CHECK_EQ(store.Setup("/nonexistent/memcache.toml"), MMC_INVALID_PARAM);

        mmc::SetupOptions opts;
        opts.metaAddr = meta;
        opts.dramSize = "32MB";
        opts.logLevel = "warn";
        CHECK_EQ(store.Setup("", opts), MMC_OK);
        CHECK_EQ(store.Init(0, true), MMC_OK);
        CHECK_EQ(store.GetLocalServiceId(first_id), MMC_OK);
        CHECK(first_id != 0);
        CHECK_EQ(store.RemoveAll(), MMC_OK);
        std::printf("c++ test: service id %u\n", first_id);

        TestSingle(store, first_id, size);
        TestLayers(store, size);
        TestBatch(store, size);
        TestBatchLayers(store, size);

        // moving hands over the teardown duty
        mmc::ObjectStore moved(std::move(store));
        CHECK_EQ(store.TearDown(), MMC_NOT_INITIALIZED);  // NOLINT(bugprone-use-after-move)
        CHECK_EQ(moved.IsExist("cpp/rep3"), 1);
        CHECK_EQ(moved.RemoveAll(), MMC_OK);
        CHECK_EQ(moved.IsExist("cpp/rep3"), 0);
    }  // RAII: the destructor of `moved` tore the client down
    CHECK_EQ(mmcc_exist("cpp/one", 0), MMC_NOT_INITIALIZED);

    {
        // second life, as a pure client over TCP
        mmc::ObjectStore store;
        mmc::SetupOptions opts;
        opts.metaAddr = meta;
        opts.protocol = "tcp";
        opts.logLevel = "warn";
        CHECK_EQ(store.Setup("", opts), MMC_OK);
        CHECK_EQ(store.Init(1, false), MMC_OK);
        uint32_t id = 0;
        CHECK_EQ(store.GetLocalServiceId(id), MMC_OK);
        CHECK(id != 0 && id != first_id);
        Bytes v = Random(size), out(size);
        CHECK_EQ(store.PutFrom("cpp/tcp", v.data(), v.size()), MMC_OK);
        CHECK_EQ(store.GetInto("cpp/tcp", out.data(), out.size()), MMC_OK);
        CHECK(out == v);
        mmc::KeyInfo info = store.GetKeyInfo("cpp/tcp");
        CHECK(info.Ok() && info.GetBlobNum() == 1 && info.LocList()[0] != id);
        CHECK_EQ(store.RemoveAll(), MMC_OK);
        CHECK_EQ(store.TearDown(), MMC_OK);
        CHECK_EQ(store.TearDown(), MMC_NOT_INITIALIZED);
        CHECK_EQ(store.IsExist("cpp/tcp"), MMC_NOT_INITIALIZED);
    }

    if (g_failures != 0) {
        std::printf("c++ test: %d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    std::printf("c++ test: all %d checks passed\n", g_checks);
    return 0;
}
