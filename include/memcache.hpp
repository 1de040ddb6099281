/*
 * MemCache C++ API: a header-only wrapper over the C API of memcache.h
 * (link with libmemcache: `pkg-config --cflags --libs memcache`).
 *
 *     mmc::ObjectStore store;                 // RAII: TearDown() in the destructor
 *     mmc::SetupOptions opts;
 *     opts.metaAddr = "127.0.0.1:5000";
 *     if (store.Setup("", opts) != 0 || store.Init(0, true) != 0) { ... mmc::LastError() ... }
 *     store.PutFrom("key", data.data(), data.size());
 *     store.GetInto("key", out.data(), out.size());
 *
 * Every method returns the integer result codes of memcache.h (MMC_OK = 0,
 * negative on failure); batch methods return one code per key. Unlike the C
 * API, the put methods report an existing key as success (0): objects are
 * immutable, the value stored is the one asked for. Host memory only: the
 * `direct` arguments accept 2 (pool -> host), 3 (host -> pool) and 9
 * (auto); 0 and 1 (device memory) return MMC_INVALID_PARAM.
 *
 * The library holds one client per process: use one ObjectStore. The object
 * that initialized the client tears it down when it is destroyed.
 *
 * The original MemCache's spelling works too (only the include changes):
 *
 *     #include "memcache.hpp"
 *     using namespace ock::mmc;
 *     auto store = ObjectStore::CreateObjectStore();  // std::shared_ptr<ObjectStore>
 *     store->Init(deviceId);  // without Setup: reads $MMC_LOCAL_CONFIG_PATH
 *
 * `ock::mmc` is a namespace that makes every name of `mmc` visible, so
 * code may also open namespaces inside it (`namespace ock::mmc::app {}`).
 */

#ifndef MEMCACHE_HPP
#define MEMCACHE_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "memcache.h"

namespace mmc {

/// Copy directions (the `direct` argument), as in the original MemCache API.
enum Direct : int32_t {
    DIRECT_DEVICE_TO_POOL = 0,
    DIRECT_POOL_TO_DEVICE = 1,
    DIRECT_POOL_TO_HOST = 2,
    DIRECT_HOST_TO_POOL = 3,
    DIRECT_AUTO = 9,
};

/// Replica placement of a put.
struct ReplicateConfig {
    /// Number of replicas, 1..=8, each on a different LocalService.
    uint32_t replicaNum = 1;
    /// Service ids to place replicas on first (at most 8).
    std::vector<uint32_t> preferredLocalServiceIDs;
};

/// Overrides applied on top of the configuration file by Setup(); an empty
/// string (or 0) keeps the file's / the default value.
struct SetupOptions {
    std::string metaAddr;        ///< local.meta_addr, e.g. "127.0.0.1:5000"
    std::string dramSize;        ///< local.dram_size, e.g. "64MB"
    std::string protocol;        ///< local.protocol: "auto" or "tcp"
    std::string transferListen;  ///< local.transfer_listen
    std::string hostId;          ///< local.host_id
    std::string logLevel;        ///< local.log_level
    uint32_t workerThreads = 0;  ///< local.worker_threads
};

/// Size and replica locations of an object (GetKeyInfo).
class KeyInfo {
public:
    KeyInfo() = default;
    explicit KeyInfo(int status) : status_(status) {}
    KeyInfo(int status, const mmc_data_info &info) : status_(status), size_(info.size)
    {
        uint32_t n = info.replica_num < MMC_MAX_REPLICAS ? info.replica_num : MMC_MAX_REPLICAS;
        for (uint32_t i = 0; i < n; ++i) {
            locs_.push_back(info.service_ids[i]);
            types_.push_back(info.media[i]);
        }
    }

    /// MMC_OK, or why the query failed (e.g. MMC_OBJECT_NOT_EXISTS).
    int Status() const { return status_; }
    bool Ok() const { return status_ == MMC_OK; }
    /// Object size in bytes (0 when the query failed).
    uint64_t Size() const { return size_; }
    /// Number of replicas.
    size_t GetBlobNum() const { return locs_.size(); }
    /// Service id of the LocalService holding each replica.
    const std::vector<uint32_t> &LocList() const { return locs_; }
    /// Medium of each replica (MMC_MEDIUM_DRAM, ...).
    const std::vector<uint32_t> &TypeList() const { return types_; }

    std::string ToString() const
    {
        std::ostringstream os;
        os << "KeyInfo(status=" << status_ << ", size=" << size_ << ", replicas=[";
        for (size_t i = 0; i < locs_.size(); ++i) {
            os << (i ? ", " : "") << locs_[i] << ":" << MediumName(types_[i]);
        }
        os << "])";
        return os.str();
    }

    static const char *MediumName(uint32_t m)
    {
        switch (m) {
            case MMC_MEDIUM_DRAM: return "dram";
            case MMC_MEDIUM_HBM: return "hbm";
            case MMC_MEDIUM_SSD: return "ssd";
            default: return "unknown";
        }
    }

private:
    int status_ = MMC_OBJECT_NOT_EXISTS;
    uint64_t size_ = 0;
    std::vector<uint32_t> locs_;
    std::vector<uint32_t> types_;
};

/// The message of the last failed call made by this thread ("" if none).
inline std::string LastError() { return std::string(mmc_last_error()); }

/// Sets the library's log level: off, error, warn, info, debug, trace.
inline int SetLogLevel(const std::string &level) { return mmc_set_log_level(level.c_str()); }

class ObjectStore {
public:
    ObjectStore() = default;
    ~ObjectStore() { TearDown(); }

    ObjectStore(const ObjectStore &) = delete;
    ObjectStore &operator=(const ObjectStore &) = delete;

    ObjectStore(ObjectStore &&other) noexcept : owner_(other.owner_) { other.owner_ = false; }
    ObjectStore &operator=(ObjectStore &&other) noexcept
    {
        if (this != &other) {
            TearDown();
            owner_ = other.owner_;
            other.owner_ = false;
        }
        return *this;
    }

    /// A new store object, shared (the original MemCache's factory).
    static std::shared_ptr<ObjectStore> CreateObjectStore() { return std::make_shared<ObjectStore>(); }

    /// Configuration: the TOML file `configPath` ("" = $MMC_LOCAL_CONFIG_PATH,
    /// else the defaults), then `options` on top.
    int Setup(const std::string &configPath = std::string(), const SetupOptions &options = SetupOptions())
    {
        mmc_setup_options o{};
        o.meta_addr = OrNull(options.metaAddr);
        o.dram_size = OrNull(options.dramSize);
        o.protocol = OrNull(options.protocol);
        o.transfer_listen = OrNull(options.transferListen);
        o.host_id = OrNull(options.hostId);
        o.log_level = OrNull(options.logLevel);
        o.worker_threads = options.workerThreads;
        return mmc_setup(OrNull(configPath), &o);
    }

    /// Starts the client; `initBm` also contributes a DRAM segment to the pool.
    /// Without Setup it reads the file named by $MMC_LOCAL_CONFIG_PATH (TOML
    /// or the original's `ock.mmc.*` format); with that unset it returns
    /// MMC_NOT_INITIALIZED.
    int Init(int32_t deviceId = 0, bool initBm = true)
    {
        int rc = mmc_init(deviceId, initBm ? 1 : 0);
        if (rc == MMC_OK) {
            owner_ = true;
        }
        return rc;
    }

    /// Leaves the cluster; safe to call more than once. Returns MMC_OK, or
    /// MMC_NOT_INITIALIZED when this object did not initialize the client.
    int TearDown()
    {
        if (!owner_) {
            return MMC_NOT_INITIALIZED;
        }
        owner_ = false;
        return mmc_uninit();
    }

    int GetLocalServiceId(uint32_t &localServiceId) { return mmcc_local_service_id(&localServiceId); }

    // ---- put / get ------------------------------------------------------------

    int PutFrom(const std::string &key, const void *buffer, size_t size, int32_t direct = DIRECT_HOST_TO_POOL,
                const ReplicateConfig &replicateConfig = ReplicateConfig())
    {
        mmc_put_options opts = mmc_put_options();
        uint32_t type = MMC_MEM_HOST;
        int rc = PutArgs(key, direct, replicateConfig, opts, type);
        if (rc != MMC_OK) {
            return rc;
        }
        mmc_buffer buf = Buf(buffer, size, type);
        return PutResult(mmcc_put(key.c_str(), &buf, &opts, 0));
    }

    int GetInto(const std::string &key, void *buffer, size_t size, int32_t direct = DIRECT_POOL_TO_HOST)
    {
        uint32_t type = MMC_MEM_HOST;
        int rc = GetArgs(key, direct, type);
        if (rc != MMC_OK) {
            return rc;
        }
        mmc_buffer buf = Buf(buffer, size, type);
        return mmcc_get(key.c_str(), &buf, 0);
    }

    std::vector<int> BatchPutFrom(const std::vector<std::string> &keys, const std::vector<void *> &buffers,
                                  const std::vector<size_t> &sizes, int32_t direct = DIRECT_HOST_TO_POOL,
                                  const ReplicateConfig &replicateConfig = ReplicateConfig())
    {
        std::vector<int> results(keys.size(), MMC_INVALID_PARAM);
        mmc_put_options opts = mmc_put_options();
        uint32_t type = MMC_MEM_HOST;
        if (keys.empty() || buffers.size() != keys.size() || sizes.size() != keys.size() ||
            keys.size() > MMC_MAX_BATCH || PutArgs(std::string("-"), direct, replicateConfig, opts, type) != MMC_OK) {
            return results;
        }
        std::vector<const char *> ks = KeyPtrs(keys);
        std::vector<mmc_buffer> bufs(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            bufs[i] = Buf(buffers[i], sizes[i], type);
        }
        std::vector<int32_t> rs(keys.size(), MMC_ERROR);
        mmcc_batch_put(ks.data(), Count(keys), bufs.data(), &opts, 0, rs.data());
        return Codes(rs, true);
    }

    std::vector<int> BatchGetInto(const std::vector<std::string> &keys, const std::vector<void *> &buffers,
                                  const std::vector<size_t> &sizes, int32_t direct = DIRECT_POOL_TO_HOST)
    {
        std::vector<int> results(keys.size(), MMC_INVALID_PARAM);
        uint32_t type = MMC_MEM_HOST;
        if (keys.empty() || buffers.size() != keys.size() || sizes.size() != keys.size() ||
            keys.size() > MMC_MAX_BATCH || GetArgs(std::string("-"), direct, type) != MMC_OK) {
            return results;
        }
        std::vector<const char *> ks = KeyPtrs(keys);
        std::vector<mmc_buffer> bufs(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            bufs[i] = Buf(buffers[i], sizes[i], type);
        }
        std::vector<int32_t> rs(keys.size(), MMC_ERROR);
        mmcc_batch_get(ks.data(), Count(keys), bufs.data(), 0, rs.data());
        return Codes(rs, false);
    }

    /// Stores the concatenation of `buffers` (one per layer) as one object.
    int PutFromLayers(const std::string &key, const std::vector<void *> &buffers, const std::vector<size_t> &sizes,
                      int32_t direct = DIRECT_HOST_TO_POOL, const ReplicateConfig &replicateConfig = ReplicateConfig())
    {
        mmc_put_options opts = mmc_put_options();
        uint32_t type = MMC_MEM_HOST;
        int rc = PutArgs(key, direct, replicateConfig, opts, type);
        if (rc != MMC_OK) {
            return rc;
        }
        std::vector<mmc_buffer> layers;
        if (!Layers(buffers, sizes, type, layers)) {
            return MMC_INVALID_PARAM;
        }
        return PutResult(mmcc_put_layers(key.c_str(), layers.data(), Count(layers), &opts, 0));
    }

    /// Scatters the object into `buffers`, in order; sizes must sum to its size.
    int GetIntoLayers(const std::string &key, const std::vector<void *> &buffers, const std::vector<size_t> &sizes,
                      int32_t direct = DIRECT_POOL_TO_HOST)
    {
        uint32_t type = MMC_MEM_HOST;
        int rc = GetArgs(key, direct, type);
        if (rc != MMC_OK) {
            return rc;
        }
        std::vector<mmc_buffer> layers;
        if (!Layers(buffers, sizes, type, layers)) {
            return MMC_INVALID_PARAM;
        }
        return mmcc_get_layers(key.c_str(), layers.data(), Count(layers), 0);
    }

    std::vector<int> BatchPutFromLayers(const std::vector<std::string> &keys,
                                        const std::vector<std::vector<void *>> &buffers,
                                        const std::vector<std::vector<size_t>> &sizes,
                                        int32_t direct = DIRECT_HOST_TO_POOL,
                                        const ReplicateConfig &replicateConfig = ReplicateConfig())
    {
        std::vector<int> results(keys.size(), MMC_INVALID_PARAM);
        mmc_put_options opts = mmc_put_options();
        uint32_t type = MMC_MEM_HOST;
        if (keys.empty() || buffers.size() != keys.size() || sizes.size() != keys.size() ||
            keys.size() > MMC_MAX_BATCH || PutArgs(std::string("-"), direct, replicateConfig, opts, type) != MMC_OK) {
            return results;
        }
        std::vector<const char *> ks = KeyPtrs(keys);
        std::vector<std::vector<mmc_buffer>> all(keys.size());
        std::vector<mmc_layers> values(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            if (!Layers(buffers[i], sizes[i], type, all[i])) {
                all[i].clear();  // the library reports MMC_INVALID_PARAM for this key
            }
            values[i].bufs = all[i].data();
            values[i].count = Count(all[i]);
        }
        std::vector<int32_t> rs(keys.size(), MMC_ERROR);
        mmcc_batch_put_layers(ks.data(), Count(keys), values.data(), &opts, 0, rs.data());
        return Codes(rs, true);
    }

    std::vector<int> BatchGetIntoLayers(const std::vector<std::string> &keys,
                                        const std::vector<std::vector<void *>> &buffers,
                                        const std::vector<std::vector<size_t>> &sizes,
                                        int32_t direct = DIRECT_POOL_TO_HOST)
    {
        std::vector<int> results(keys.size(), MMC_INVALID_PARAM);
        uint32_t type = MMC_MEM_HOST;
        if (keys.empty() || buffers.size() != keys.size() || sizes.size() != keys.size() ||
            keys.size() > MMC_MAX_BATCH || GetArgs(std::string("-"), direct, type) != MMC_OK) {
            return results;
        }
        std::vector<const char *> ks = KeyPtrs(keys);
        std::vector<std::vector<mmc_buffer>> all(keys.size());
        std::vector<mmc_layers> values(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            if (!Layers(buffers[i], sizes[i], type, all[i])) {
                all[i].clear();  // the library reports MMC_INVALID_PARAM for this key
            }
            values[i].bufs = all[i].data();
            values[i].count = Count(all[i]);
        }
        std::vector<int32_t> rs(keys.size(), MMC_ERROR);
        mmcc_batch_get_layers(ks.data(), Count(keys), values.data(), 0, rs.data());
        return Codes(rs, false);
    }

    // ---- metadata ---------------------------------------------------------------

    /// 1 if the key exists, 0 if not, negative on failure.
    int IsExist(const std::string &key)
    {
        if (!ValidKey(key)) {
            return MMC_INVALID_PARAM;
        }
        return mmcc_exist(key.c_str(), 0);
    }

    std::vector<int> BatchIsExist(const std::vector<std::string> &keys)
    {
        std::vector<int> results(keys.size(), MMC_INVALID_PARAM);
        if (keys.empty() || keys.size() > MMC_MAX_BATCH) {
            return results;
        }
        std::vector<const char *> ks = KeyPtrs(keys);
        std::vector<int32_t> rs(keys.size(), MMC_ERROR);
        mmcc_batch_exist(ks.data(), Count(keys), 0, rs.data());
        return Codes(rs, false);
    }

    KeyInfo GetKeyInfo(const std::string &key)
    {
        if (!ValidKey(key)) {
            return KeyInfo(MMC_INVALID_PARAM);
        }
        mmc_data_info info{};
        int rc = mmcc_query(key.c_str(), &info, 0);
        return rc == MMC_OK ? KeyInfo(rc, info) : KeyInfo(rc);
    }

    std::vector<KeyInfo> BatchGetKeyInfo(const std::vector<std::string> &keys)
    {
        std::vector<KeyInfo> out;
        if (keys.empty() || keys.size() > MMC_MAX_BATCH) {
            out.assign(keys.size(), KeyInfo(MMC_INVALID_PARAM));
            return out;
        }
        std::vector<const char *> ks = KeyPtrs(keys);
        std::vector<int32_t> rs(keys.size(), MMC_ERROR);
        std::vector<mmc_data_info> infos(keys.size());
        mmcc_batch_query(ks.data(), Count(keys), infos.data(), 0, rs.data());
        out.reserve(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            out.push_back(rs[i] == MMC_OK ? KeyInfo(rs[i], infos[i]) : KeyInfo(rs[i]));
        }
        return out;
    }

    /// MMC_OK, or MMC_UNMATCHED_KEY when the key is absent.
    int Remove(const std::string &key)
    {
        if (!ValidKey(key)) {
            return MMC_INVALID_PARAM;
        }
        return mmcc_remove(key.c_str(), 0);
    }

    std::vector<int> BatchRemove(const std::vector<std::string> &keys)
    {
        std::vector<int> results(keys.size(), MMC_INVALID_PARAM);
        if (keys.empty() || keys.size() > MMC_MAX_BATCH) {
            return results;
        }
        std::vector<const char *> ks = KeyPtrs(keys);
        std::vector<int32_t> rs(keys.size(), MMC_ERROR);
        mmcc_batch_remove(ks.data(), Count(keys), 0, rs.data());
        return Codes(rs, false);
    }

    /// Removes every key of the cluster.
    int RemoveAll() { return mmcc_remove_all(0, nullptr); }

private:
    bool owner_ = false;

    static const char *OrNull(const std::string &s) { return s.empty() ? nullptr : s.c_str(); }

    /// A std::string holding a NUL would silently name another key in C.
    static bool ValidKey(const std::string &key) { return key.find('\0') == std::string::npos; }

    template <typename T>
    static uint32_t Count(const std::vector<T> &v) { return static_cast<uint32_t>(v.size()); }

    static mmc_buffer Buf(const void *p, size_t size, uint32_t type)
    {
        mmc_buffer b;
        b.addr = const_cast<void *>(p);
        b.len = static_cast<uint64_t>(size);
        b.mem_type = type;
        return b;
    }

    static bool Layers(const std::vector<void *> &buffers, const std::vector<size_t> &sizes, uint32_t type,
                       std::vector<mmc_buffer> &out)
    {
        if (buffers.empty() || buffers.size() != sizes.size() || buffers.size() > UINT32_MAX) {
            return false;
        }
        out.resize(buffers.size());
        for (size_t i = 0; i < buffers.size(); ++i) {
            out[i] = Buf(buffers[i], sizes[i], type);
        }
        return true;
    }

    /// Memory type of the caller buffer for a put: host (3, 9) or device (0).
    static bool PutType(int32_t direct, uint32_t &type)
    {
        switch (direct) {
            case DIRECT_HOST_TO_POOL:
            case DIRECT_AUTO: type = MMC_MEM_HOST; return true;
            case DIRECT_DEVICE_TO_POOL: type = MMC_MEM_DEVICE; return true;
            default: return false;
        }
    }

    /// Memory type of the caller buffer for a get: host (2, 9) or device (1).
    static bool GetType(int32_t direct, uint32_t &type)
    {
        switch (direct) {
            case DIRECT_POOL_TO_HOST:
            case DIRECT_AUTO: type = MMC_MEM_HOST; return true;
            case DIRECT_POOL_TO_DEVICE: type = MMC_MEM_DEVICE; return true;
            default: return false;
        }
    }

    static int PutArgs(const std::string &key, int32_t direct, const ReplicateConfig &rc, mmc_put_options &opts,
                       uint32_t &type)
    {
        opts = mmc_put_options();
        if (!ValidKey(key) || !PutType(direct, type) || rc.replicaNum == 0 ||
            rc.preferredLocalServiceIDs.size() > MMC_MAX_REPLICAS) {
            return MMC_INVALID_PARAM;
        }
        opts.replica_num = rc.replicaNum;
        opts.preferred_count = static_cast<uint32_t>(rc.preferredLocalServiceIDs.size());
        for (size_t i = 0; i < rc.preferredLocalServiceIDs.size(); ++i) {
            opts.preferred_service_ids[i] = rc.preferredLocalServiceIDs[i];
        }
        return MMC_OK;
    }

    static int GetArgs(const std::string &key, int32_t direct, uint32_t &type)
    {
        return ValidKey(key) && GetType(direct, type) ? MMC_OK : MMC_INVALID_PARAM;
    }

    /// Objects are immutable: storing an existing key is a success here.
    static int PutResult(int rc) { return rc == MMC_DUPLICATED_OBJECT ? MMC_OK : rc; }

    /// C string pointers of `keys`; a key holding a NUL is passed as NULL,
    /// which the library reports as MMC_INVALID_PARAM for that key.
    static std::vector<const char *> KeyPtrs(const std::vector<std::string> &keys)
    {
        std::vector<const char *> ks(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            ks[i] = ValidKey(keys[i]) ? keys[i].c_str() : nullptr;
        }
        return ks;
    }

    /// The per-key codes written by the library (which fills every slot,
    /// also when the whole batch fails); duplicates count as success for puts.
    static std::vector<int> Codes(const std::vector<int32_t> &rs, bool put)
    {
        std::vector<int> out(rs.size());
        for (size_t i = 0; i < rs.size(); ++i) {
            out[i] = put ? PutResult(rs[i]) : rs[i];
        }
        return out;
    }
};

}  // namespace mmc

/// The original MemCache's namespace: `ock::mmc::ObjectStore`,
/// `ock::mmc::ReplicateConfig`, ... name the classes above.
namespace ock {
namespace mmc {
using namespace ::mmc;
}  // namespace mmc
}  // namespace ock

#endif  // MEMCACHE_HPP
