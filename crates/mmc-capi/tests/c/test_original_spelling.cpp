// C++ test of the original MemCache's spelling of the C++ API, written the
// way its example program is: `using namespace ock::mmc`, code in a
// namespace nested inside `ock::mmc`, `ObjectStore::CreateObjectStore()`,
// and `Init(deviceId)` without `Setup`, so the configuration comes from the
// file named by $MMC_LOCAL_CONFIG_PATH (scripts/test-c.sh writes one in the
// original's `ock.mmc.<key> = value` format). Only the include differs from
// code written for the original.
//
//   test_original_spelling
//
// Exit status 0 when every step worked.

#include "memcache.hpp"

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace ock::mmc;

namespace ock::mmc::compat::test {

constexpr size_t kValueSize = 2U << 20;

/// A buffer filled with a pattern that depends on `seed`.
std::vector<uint8_t> Pattern(size_t size, uint8_t seed)
{
    std::vector<uint8_t> v(size);
    for (size_t i = 0; i < size; ++i) {
        v[i] = static_cast<uint8_t>((i * 31U + seed) % 251U);
    }
    return v;
}

void Expect(bool ok, const std::string &what)
{
    if (!ok) {
        throw std::runtime_error(what);
    }
}

class Session {
public:
    explicit Session(std::shared_ptr<ObjectStore> store) : store_(std::move(store)) {}

    void Run() const
    {
        const std::string key = "original-spelling/one";
        auto value = Pattern(kValueSize, 7);
        Expect(store_->IsExist(key) == 0, "the key exists before the put");
        Expect(store_->PutFrom(key, value.data(), value.size()) == 0, "PutFrom");
        Expect(store_->IsExist(key) == 1, "IsExist after PutFrom");

        std::vector<uint8_t> back(kValueSize);
        Expect(store_->GetInto(key, back.data(), back.size()) == 0, "GetInto");
        Expect(back == value, "GetInto returned other bytes");

        // Braced lists, as the original's example passes them.
        auto other = Pattern(kValueSize, 9);
        auto batch = store_->BatchPutFrom({"original-spelling/batch"}, {other.data()}, {other.size()});
        Expect(batch.size() == 1 && batch[0] == 0, "BatchPutFrom");
        Expect(store_->Remove("original-spelling/batch") == 0, "Remove");
        Expect(store_->IsExist("original-spelling/batch") == 0, "IsExist after Remove");

        // ReplicateConfig with two replicas (the cluster has two providers).
        ReplicateConfig replicas{};
        replicas.replicaNum = 2;
        Expect(store_->PutFrom("original-spelling/two", value.data(), value.size(), 3, replicas) == 0,
               "PutFrom with two replicas");
        KeyInfo info = store_->GetKeyInfo("original-spelling/two");
        Expect(info.Size() == kValueSize && info.GetBlobNum() == 2, "GetKeyInfo: " + info.ToString());

        uint32_t id = 0;
        Expect(store_->GetLocalServiceId(id) == 0 && id > 0, "GetLocalServiceId");
        for (const char *k : {"original-spelling/one", "original-spelling/two"}) {
            Expect(store_->Remove(k) == 0, std::string("Remove ") + k);
        }
    }

private:
    std::shared_ptr<ObjectStore> store_;
};

}  // namespace ock::mmc::compat::test

int main()
{
    using ock::mmc::compat::test::Session;
    try {
        if (std::getenv("MMC_LOCAL_CONFIG_PATH") == nullptr) {
            std::cerr << "MMC_LOCAL_CONFIG_PATH is not set" << std::endl;
            return 2;
        }
        const std::shared_ptr<ObjectStore> store = ObjectStore::CreateObjectStore();
        if (!store) {
            std::cerr << "CreateObjectStore returned null" << std::endl;
            return 1;
        }
        const uint32_t deviceId = 0;
        if (store->Init(deviceId) != 0) {
            std::cerr << "Init failed: " << ock::mmc::LastError() << std::endl;
            return 1;
        }
        Session(store).Run();
        if (store->TearDown() != 0) {
            std::cerr << "TearDown failed" << std::endl;
            return 1;
        }
        std::cout << "original spelling: ok" << std::endl;
        return 0;
    } catch (const std::exception &e) {
        std::cerr << "original spelling: " << e.what() << " (last error: " << ock::mmc::LastError() << ")"
                  << std::endl;
        return 1;
    }
}
