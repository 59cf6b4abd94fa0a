// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/fleet_summary.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace sluice::sim {

namespace {

template <typename F>
uint64_t Sum(const std::vector<DeviceSummary>& devices, F field) {
  uint64_t n = 0;
  for (const DeviceSummary& d : devices) n += field(d);
  return n;
}

double Rate(uint64_t n, double seconds) {
  return seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
}

std::string Format(const char* fmt, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

}  // namespace

uint64_t FleetSummary::generated() const {
  return Sum(devices, [](const DeviceSummary& d) { return d.generated; });
}
uint64_t FleetSummary::sent() const {
  return Sum(devices, [](const DeviceSummary& d) { return d.sent; });
}
uint64_t FleetSummary::dropped() const {
  return Sum(devices, [](const DeviceSummary& d) { return d.dropped; });
}
uint64_t FleetSummary::dropped_overflow() const {
  return Sum(devices, [](const DeviceSummary& d) { return d.dropped_overflow; });
}

std::string FleetSummary::ToJson() const {
  nlohmann::ordered_json j;
  j["devices"] = nlohmann::ordered_json::array();
  for (const DeviceSummary& d : devices) {
    nlohmann::ordered_json dj;
    dj["device"] = d.device;
    dj["profile"] = d.profile;
    dj["boots"] = nlohmann::ordered_json::array();
    for (const BootSummary& b : d.boots) {
      nlohmann::ordered_json bj;
      bj["boot"] = b.boot;
      bj["first_seq"] = b.first_seq;
      bj["last_seq"] = b.last_seq;
      bj["dropped_by_device"] = nlohmann::ordered_json::array();
      for (const auto& [first, last] : b.dropped) bj["dropped_by_device"].push_back({first, last});
      dj["boots"].push_back(std::move(bj));
    }
    dj["sent"] = d.sent;
    // Beyond the verifier's fields: what a reader needs to account for every generated event.
    dj["qos"] = d.qos;
    dj["generated"] = d.generated;
    dj["dropped"] = d.dropped;
    dj["dropped_overflow"] = d.dropped_overflow;
    j["devices"].push_back(std::move(dj));
  }
  nlohmann::ordered_json t;
  t["devices"] = devices.size();
  t["generated"] = generated();
  t["sent"] = sent();
  t["dropped"] = dropped();
  t["dropped_overflow"] = dropped_overflow();
  t["reboots"] = reboots;
  t["connection_losses"] = connection_losses;
  t["elapsed_s"] = elapsed_s;
  t["target_rate"] = target_rate;
  t["generated_rate"] = Rate(generated(), generating_s);
  t["sent_rate"] = Rate(sent(), elapsed_s);
  t["interrupted"] = interrupted;
  j["totals"] = std::move(t);
  j["seed"] = seed;
  return j.dump(2) + "\n";
}

Status FleetSummary::WriteJsonFile(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  const std::string text = ToJson();
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    return Status::IoError("cannot create " + tmp + ": " + std::strerror(errno));
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const int write_errno = errno;
  if (std::fclose(f) != 0 || !written) {
    std::remove(tmp.c_str());
    return Status::IoError("cannot write " + tmp + ": " +
                           std::strerror(written ? errno : write_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return Status::IoError("cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
  }
  return Status::Ok();
}

std::string FleetSummary::Table() const {
  std::string out = Format("%-12s %-10s %3s %5s %10s %10s  %s\n", "device", "profile", "qos",
                           "boots", "sent", "dropped", "last seq per boot (boot:seq)");
  for (const DeviceSummary& d : devices) {
    std::string seqs;
    for (const BootSummary& b : d.boots) {
      if (!seqs.empty()) seqs += ' ';
      seqs += std::to_string(b.boot) + ":" + std::to_string(b.last_seq);
    }
    const std::string dropped_col =
        d.dropped == d.dropped_overflow
            ? std::to_string(d.dropped)
            : std::to_string(d.dropped_overflow) + "/" + std::to_string(d.dropped);
    out += Format("%-12s %-10s %3d %5zu %10llu %10s  %s\n", d.device.c_str(), d.profile.c_str(),
                  d.qos, d.boots.size(), static_cast<unsigned long long>(d.sent),
                  dropped_col.c_str(), seqs.c_str());
  }
  out +=
      "(dropped: by the device's bounded queue; \"a/b\" = a on overflow of b in all, the rest\n"
      " lost to a reboot or unsent at exit)\n";
  return out;
}

std::string FleetSummary::TotalsLine() const {
  return Format(
      "total: %zu devices, generated %llu, sent %llu, dropped %llu (overflow %llu), reboots %llu, "
      "connection losses %llu, %.1f s, target %.1f ev/s, generated %.1f ev/s, sent %.1f ev/s, "
      "seed %llu%s",
      devices.size(), static_cast<unsigned long long>(generated()),
      static_cast<unsigned long long>(sent()), static_cast<unsigned long long>(dropped()),
      static_cast<unsigned long long>(dropped_overflow()), static_cast<unsigned long long>(reboots),
      static_cast<unsigned long long>(connection_losses), elapsed_s, target_rate,
      Rate(generated(), generating_s), Rate(sent(), elapsed_s),
      static_cast<unsigned long long>(seed), interrupted ? " (interrupted)" : "");
}

}  // namespace sluice::sim
